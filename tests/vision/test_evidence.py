"""The evidence log as an investigator meets it: every kind of tampering is named, a crash is not tampering."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from groundstation.commands.cli import main
from vision.evidence import (
    LOG_NAME,
    SNAPSHOTS,
    EvidenceError,
    EvidenceLog,
    canonical_json,
    record_sha256,
)
from vision.evidence_verify import Problem, verify

REPO = Path(__file__).resolve().parents[2]
RECORDS = 20


def fake_jpeg(i: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + f"frame {i}".encode() + bytes(range(256)) + b"\xff\xd9"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("evidence") / "patrol"
    with EvidenceLog.open(directory) as log:
        for i in range(1, RECORDS + 1):
            jpeg = fake_jpeg(i) if i % 2 else None  # every other alert has a snapshot
            payload = {"track": i, "class": "boat", "lat_deg": 36.1 + i / 1000, "lon_deg": -5.4, "note": "café"}
            log.append("alert", payload, snapshot_jpeg=jpeg, time_s=1_700_000_000 + i)
    return directory


@pytest.fixture
def copy(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "copy"))


def lines(directory: Path) -> list[bytes]:
    return (directory / LOG_NAME).read_bytes().splitlines(keepends=True)


def write_lines(directory: Path, new: list[bytes]) -> None:
    (directory / LOG_NAME).write_bytes(b"".join(new))


def record(directory: Path, line: int) -> dict:
    return json.loads(lines(directory)[line - 1])


def encode(obj: dict) -> bytes:
    return (canonical_json(obj) + "\n").encode()


# --- tampering: each returns nothing; the case's expectations say what verify must name ---------------------


def edit_payload(d: Path) -> None:
    ls = lines(d)
    obj = json.loads(ls[6])
    obj["payload"]["class"] = "kayak"
    ls[6] = encode(obj)
    write_lines(d, ls)


def edit_and_rehash(d: Path) -> None:
    ls = lines(d)
    obj = json.loads(ls[9])
    obj["payload"]["lat_deg"] = 0.0
    obj["sha256"] = record_sha256(obj)
    ls[9] = encode(obj)
    write_lines(d, ls)


def edit_and_rehash_first(d: Path) -> None:
    ls = lines(d)
    obj = json.loads(ls[0])
    obj["kind"] = "test"
    obj["sha256"] = record_sha256(obj)
    ls[0] = encode(obj)
    write_lines(d, ls)


def delete_middle(d: Path) -> None:
    ls = lines(d)
    del ls[5]
    write_lines(d, ls)


def delete_two(d: Path) -> None:
    ls = lines(d)
    del ls[5:7]
    write_lines(d, ls)


def delete_first(d: Path) -> None:
    write_lines(d, lines(d)[1:])


def insert_forged(d: Path) -> None:
    """A careful forger: the record takes seq 11, chains to record 10 and carries a correct hash."""
    ls = lines(d)
    forged = {
        "seq": 11,
        "time": "2023-11-14T22:13:30.000000Z",
        "kind": "alert",
        "payload": {"track": 99, "class": "none"},
        "snapshot": None,
        "snapshot_sha256": None,
        "prev_sha256": json.loads(ls[9])["sha256"],
    }
    forged["sha256"] = record_sha256(forged)
    ls.insert(10, encode(forged))
    write_lines(d, ls)


def insert_naive(d: Path) -> None:
    """A careless forger: a plausible record with a made-up chain link."""
    ls = lines(d)
    forged = json.loads(ls[3])
    forged.update(seq=42, prev_sha256="ab" * 32)
    forged["sha256"] = record_sha256(forged)
    ls.insert(4, encode(forged))
    write_lines(d, ls)


def insert_before_first(d: Path) -> None:
    ls = lines(d)
    forged = json.loads(ls[0])
    forged["payload"] = {"track": 0}
    forged["sha256"] = record_sha256(forged)
    write_lines(d, [encode(forged), *ls])


def swap(d: Path) -> None:
    ls = lines(d)
    ls[7], ls[8] = ls[8], ls[7]
    write_lines(d, ls)


def move_back(d: Path) -> None:
    ls = lines(d)
    moved = ls.pop(2)
    ls.insert(12, moved)
    write_lines(d, ls)


def replace_snapshot(d: Path) -> None:
    name = record(d, 5)["snapshot"]
    (d / SNAPSHOTS / name).write_bytes(fake_jpeg(1000))


def delete_snapshot(d: Path) -> None:
    (d / SNAPSHOTS / record(d, 9)["snapshot"]).unlink()


def truncate_middle_line(d: Path) -> None:
    ls = lines(d)
    ls[11] = ls[11][:40] + b"\n"
    write_lines(d, ls)


def truncate_middle_line_joined(d: Path) -> None:
    ls = lines(d)
    ls[11] = ls[11][:40]  # its newline gone too: what is left runs into the next record
    write_lines(d, ls)


def garbage_line(d: Path) -> None:
    ls = lines(d)
    ls.insert(3, b"hello\n")
    write_lines(d, ls)


def missing_field(d: Path) -> None:
    ls = lines(d)
    obj = json.loads(ls[2])
    del obj["prev_sha256"]
    ls[2] = encode(obj)
    write_lines(d, ls)


TAMPERING = [
    # (tamper, first bad line, seq that line claims, problem, words a user must see)
    (edit_payload, 7, 7, Problem.EDITED, "record 7 was edited"),
    (edit_and_rehash, 10, 10, Problem.REHASHED, "record 10 was edited and its sha256 recomputed"),
    (edit_and_rehash_first, 1, 1, Problem.REHASHED, "record 1 was edited and its sha256 recomputed"),
    (delete_middle, 6, 7, Problem.DELETED, "record 7 follows record 5: record 6 was deleted"),
    (delete_two, 6, 8, Problem.DELETED, "records 6–7 were deleted"),
    (delete_first, 1, 2, Problem.DELETED, "record 1 was deleted"),
    (insert_forged, 11, 11, Problem.INSERTED, "record 11 (line 11) was inserted"),
    (insert_naive, 5, 42, Problem.INSERTED, "record 42 (line 5) was inserted"),
    (insert_before_first, 1, 1, Problem.INSERTED, "was inserted"),
    (swap, 8, 9, Problem.REORDERED, "record 9 is out of order"),
    (move_back, 3, 4, Problem.REORDERED, "record 4 is out of order"),
    (replace_snapshot, 5, 5, Problem.SNAPSHOT_ALTERED, "was altered"),
    (delete_snapshot, 9, 9, Problem.SNAPSHOT_MISSING, "is missing"),
    (truncate_middle_line, 12, None, Problem.MALFORMED, "line 12 is malformed"),
    (truncate_middle_line_joined, 12, None, Problem.MALFORMED, "line 12 is malformed"),
    (garbage_line, 4, None, Problem.MALFORMED, "not a JSON record"),
    (missing_field, 3, None, Problem.MALFORMED, "missing field(s) prev_sha256"),
]


def test_pristine_log_verifies(pristine, capsys):
    report = verify(pristine)
    assert report.ok and not report.torn_tail and not report.warnings
    assert (report.records, report.snapshots_verified) == (RECORDS, RECORDS // 2)
    assert main(["evidence", "verify", "--unsigned", str(pristine)]) == 0
    assert capsys.readouterr().out == (
        f"{pristine}: {RECORDS} records, chain intact (snapshots: 10 verified; hashes and links only, "
        "signatures not checked)\n"
    )
    assert main(["evidence", "verify", str(pristine)]) == 1  # by default every record must be signed
    assert capsys.readouterr().out == f"{pristine}: record 1 (line 1): record 1 is not signed\n"


@pytest.mark.parametrize(
    ("tamper", "line", "seq", "problem", "words"), TAMPERING, ids=[t[0].__name__ for t in TAMPERING]
)
def test_verify_names_first_bad_record(copy, capsys, tamper, line, seq, problem, words):
    tamper(copy)
    report = verify(copy)
    assert not report.ok
    assert (report.first_bad, report.first_bad_seq, report.problem) == (line, seq, problem), report.reason
    assert words in report.reason
    assert main(["evidence", "verify", "--unsigned", str(copy)]) == 1
    where = f"record {seq} (line {line})" if seq is not None else f"line {line}"
    assert capsys.readouterr().out == f"{copy}: {where}: {report.reason}\n"


def test_stray_snapshot_is_a_warning_not_a_failure(copy, capsys):
    (copy / SNAPSHOTS / "00000003-0123456789abcdef.jpg").write_bytes(fake_jpeg(3))
    report = verify(copy)
    assert report.ok and report.records == RECORDS
    assert report.warnings == (f"{SNAPSHOTS}/00000003-0123456789abcdef.jpg: not referenced by any record (injected?)",)
    assert main(["evidence", "verify", "--unsigned", str(copy)]) == 0
    assert "not referenced by any record" in capsys.readouterr().err


def test_empty_log_is_ok(tmp_path, capsys):
    EvidenceLog.open(tmp_path / "new").close()
    report = verify(tmp_path / "new")
    assert report.ok and report.records == 0
    assert main(["evidence", "verify", str(tmp_path / "new")]) == 0
    assert "0 records, chain intact" in capsys.readouterr().out


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.mkdir()], ids=["no-dir", "no-log"])
def test_not_an_evidence_dir_is_a_usage_error(tmp_path, capsys, make):
    target = tmp_path / "nothing"
    make(target)
    assert main(["evidence", "verify", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(target) in err
    with pytest.raises(EvidenceError):
        verify(target)


def test_torn_tail_is_set_aside_and_appends_continue(copy):
    complete = (copy / LOG_NAME).read_bytes()
    with (copy / LOG_NAME).open("ab") as f:
        f.write(b'{"seq":21,"time":"2023-11')
    report = verify(copy)
    assert report.ok and report.torn_tail and report.records == RECORDS
    with EvidenceLog.open(copy) as log:
        added = log.append("alert", {"track": 21}, snapshot_jpeg=fake_jpeg(21))
    assert added.seq == 21
    assert (copy / f"{LOG_NAME}.torn-1").read_bytes() == b'{"seq":21,"time":"2023-11'
    assert (copy / LOG_NAME).read_bytes().startswith(complete)
    report = verify(copy)
    assert report.ok and not report.torn_tail and report.records == RECORDS + 1


def test_orphan_snapshot_of_an_unwritten_record_is_set_aside(copy):
    (copy / SNAPSHOTS / "00000021-0123456789abcdef.jpg").write_bytes(fake_jpeg(21))
    (copy / SNAPSHOTS / ".00000021-0123456789abcdef.jpg.tmp").write_bytes(b"\xff\xd8half")
    EvidenceLog.open(copy).close()
    report = verify(copy)
    assert report.ok and not report.warnings
    assert len(list((copy / "torn-snapshots").iterdir())) == 2


def test_record_round_trip_and_payload_is_read_only(tmp_path):
    with EvidenceLog.open(tmp_path / "e") as log:
        rec = log.append("alert", {"bbox": (1, 2, 3, 4), "nested": {"a": [1.5]}}, time_s=0.0)
        assert rec.time == "1970-01-01T00:00:00.000000Z"
        assert rec.prev_sha256 == "0" * 64 and rec.snapshot is None
        assert rec.payload["bbox"] == (1, 2, 3, 4)
        with pytest.raises(TypeError):
            rec.payload["nested"]["a"] = 2  # type: ignore[index]
        with pytest.raises(ValueError, match="not a JPEG"):
            log.append("alert", {}, snapshot_jpeg=b"\x89PNG")
        with pytest.raises(EvidenceError, match="another process"):
            EvidenceLog.open(tmp_path / "e")
    assert json.loads((tmp_path / "e" / LOG_NAME).read_text())["sha256"] == rec.sha256


def test_appends_from_many_threads_chain(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with EvidenceLog.open(tmp_path / "e") as log, ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: log.append("alert", {"i": i}, fake_jpeg(i)), range(64)))
    report = verify(tmp_path / "e")
    assert report.ok and report.records == 64 and report.snapshots_verified == 64


def test_show_lists_records(pristine, capsys):
    assert main(["evidence", "show", str(pristine), "--last", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["SEQ", "TIME", "(UTC)"]
    assert [row.split()[0] for row in out[1:]] == ["18", "19", "20"]
    assert "class=boat, lat_deg=36.119" in out[2] and out[2].endswith(".jpg") and out[1].endswith("-")


WRITER = textwrap.dedent(
    """
    import os, sys
    from vision.evidence import EvidenceLog
    log = EvidenceLog.open(sys.argv[1])
    i = 0
    while True:
        log.append("alert", {"i": i, "pad": "x" * (i % 500)}, snapshot_jpeg=b"\\xff\\xd8" + os.urandom(4096))
        if i == 0:
            print("writing", flush=True)
        i += 1
    """
)


def test_kill_9_mid_write_loses_at_most_the_record_being_written(tmp_path):
    directory = tmp_path / "e"
    rng = random.Random(4)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    expected = 0
    for _ in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(directory)], stdout=subprocess.PIPE, cwd=REPO, env=env
        )
        assert writer.stdout.readline() == b"writing\n"
        time.sleep(rng.uniform(0.2, 0.8))
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
        writer.stdout.close()
        data = (directory / LOG_NAME).read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        assert complete.count(b"\n") > expected  # the writer got somewhere
        with EvidenceLog.open(directory) as log:
            log.append("resumed", {"after": "kill -9"}, snapshot_jpeg=fake_jpeg(0))
        after = (directory / LOG_NAME).read_bytes()
        assert after.startswith(complete), "a complete record was rewritten"
        expected = complete.count(b"\n") + 1
        report = verify(directory)
        assert report.ok, report.reason
        assert report.records == expected and not report.torn_tail and not report.warnings
