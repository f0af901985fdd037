"""The outbox as the publisher and a restarted unit meet it: in order, on disk, each entry forgotten once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vision.bus.outbox import Outbox, OutboxError, OutboxFull

REPO = Path(__file__).resolve().parents[3]


def test_peek_returns_the_oldest_first_and_after_id_skips_what_was_handed_over(tmp_path):
    with Outbox(tmp_path) as box:
        ids = [box.put(f"t/{n}", f"m{n}".encode()) for n in range(5)]

        assert [e.payload for e in box.peek(3)] == [b"m0", b"m1", b"m2"]
        assert [e.id for e in box.peek(10, after_id=ids[2])] == ids[3:]
        assert box.peek(10, after_id=ids[-1]) == []


def test_an_acked_entry_is_gone_and_cannot_be_acked_again(tmp_path):
    with Outbox(tmp_path) as box:
        first, second = box.put("t", b"a"), box.put("t", b"b", qos=0)
        box.ack(first)

        assert [(e.id, e.qos) for e in box.peek(10)] == [(second, 0)]
        assert len(box) == 1
        with pytest.raises(ValueError, match=f"outbox entry {first}: not pending"):
            box.ack(first)
        with pytest.raises(ValueError, match="not pending"):
            box.ack(12345)


def test_what_was_not_acked_survives_a_restart_in_order_and_ids_are_never_reused(tmp_path):
    with Outbox(tmp_path) as box:
        ids = [box.put("t", f"m{n}".encode()) for n in range(4)]
        box.ack(ids[0])
        box.ack(ids[3])  # the newest, so a reusing store would hand its id out again

    with Outbox(tmp_path) as box:
        assert [e.payload for e in box.peek(10)] == [b"m1", b"m2"]
        assert box.put("t", b"m4") > ids[3]
        assert box.pending_bytes == 6


def test_a_kill_9_after_put_returns_loses_nothing(tmp_path):
    # A separate process killed without any chance to close or flush: what put returned is on disk.
    script = textwrap.dedent(f"""
        import os, signal
        from vision.bus.outbox import Outbox
        box = Outbox({str(tmp_path)!r})
        for n in range(20):
            box.put("t", str(n).encode(), mark=("n", n))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=60, check=False)

    assert done.returncode == -9
    with Outbox(tmp_path) as box:
        assert [e.payload for e in box.peek(100)] == [str(n).encode() for n in range(20)]
        assert box.mark("n") == 19


def test_a_mark_is_stored_with_its_put(tmp_path):
    with Outbox(tmp_path) as box:
        assert box.mark("evidence") is None
        box.put("t", b"x", mark=("evidence", 7))
        box.put("t", b"y")
    with Outbox(tmp_path) as box:
        assert box.mark("evidence") == 7


@pytest.mark.parametrize(
    ("bounds", "payloads", "full_at"),
    [({"max_entries": 3}, [b"a"] * 4, 3), ({"max_bytes": 10}, [b"12345", b"12345", b"1"], 2)],
    ids=["entries", "bytes"],
)
def test_a_full_outbox_refuses_saying_so_and_takes_more_once_acked(tmp_path, bounds, payloads, full_at):
    with Outbox(tmp_path, **bounds) as box:
        ids = [box.put("t", p) for p in payloads[:full_at]]
        with pytest.raises(OutboxFull, match=r"outbox full .* is the broker reachable\?"):
            box.put("t", payloads[full_at])
        box.ack(ids[0])
        box.put("t", payloads[full_at])


def test_a_second_process_on_the_same_outbox_is_refused(tmp_path):
    with Outbox(tmp_path), pytest.raises(OutboxError, match="another process is sending from this outbox"):
        Outbox(tmp_path)


def test_a_file_that_is_not_an_outbox_is_named(tmp_path):
    (tmp_path / "outbox.sqlite3").write_bytes(b"not a database at all, " * 100)
    with pytest.raises(OutboxError, match=r"outbox\.sqlite3: not a readable outbox"):
        Outbox(tmp_path)
