"""Signed evidence: every tampering someone with write access but without the key can do, after
recomputing every hash, is caught and the record named; cutting records off the end is caught
against the last signed head; a kill -9 loses at most the record being written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vision.evidence import HEADS_NAME, LOG_NAME, SNAPSHOTS, ZERO_SHA256, EvidenceLog, canonical_json, record_sha256
from vision.evidence_verify import Problem, verify
from vision.signing import Signer, TrustStore, create_key


def jpeg(n: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + bytes([n]) * 200 + b"\xff\xd9"


@pytest.fixture
def log_dir(tmp_path: Path, signer: Signer) -> Path:
    """Five signed records (snapshots on the odd ones), closed: its head signed."""
    directory = tmp_path / "evidence"
    with EvidenceLog.open(directory, signer=signer) as log:
        for n in range(1, 6):
            alert = {"alert_id": f"cam1:enter-{n}", "zone": "Anchorage", "message": f"vessel {n} entered Anchorage"}
            log.append("alert", {"alert": alert}, snapshot_jpeg=jpeg(n) if n % 2 else None, time_s=1.75e9 + n)
    return directory


def records(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / LOG_NAME).read_text().splitlines()]


def rewrite(directory: Path, docs: list[dict]) -> None:
    """What a forger with write access does: put the records back with every hash and link recomputed."""
    prev = ZERO_SHA256
    for seq, doc in enumerate(docs, 1):
        doc["seq"], doc["prev_sha256"] = seq, prev
        doc["sha256"] = record_sha256(doc)
        prev = doc["sha256"]
    (directory / LOG_NAME).write_text("".join(canonical_json(d) + "\n" for d in docs))


def test_a_signed_log_verifies_with_its_signer_trusted(log_dir: Path, signer: Signer, trust: TrustStore) -> None:
    report = verify(log_dir, trust)
    assert report.ok and report.records == 5 and report.snapshots_verified == 3
    assert report.signers == (signer.key_id,) and report.signatures_checked
    assert report.last_signed_head is not None and report.last_signed_head.seq == 5
    assert all(d["signer"] == signer.key_id for d in records(log_dir))
    assert oct((log_dir / HEADS_NAME).stat().st_mode & 0o777) == "0o600"


def test_an_edit_with_every_hash_recomputed_is_caught_at_the_record(log_dir: Path, trust: TrustStore) -> None:
    docs = records(log_dir)
    docs[1]["payload"]["alert"]["zone"] = "Inner harbour"
    docs[1]["payload"]["alert"]["message"] = "nothing to see"
    rewrite(log_dir, docs)

    assert verify(log_dir).ok  # a chain anyone can recompute: hashes and links alone see nothing
    report = verify(log_dir, trust)
    assert not report.ok and report.problem is Problem.BAD_SIGNATURE and report.first_bad_seq == 2
    assert "record 2: its signature does not match key" in report.reason


@pytest.mark.parametrize(
    ("tamper", "problem", "seq"),
    [
        (lambda docs: docs.pop(2), Problem.BAD_SIGNATURE, 3),  # delete record 3: the next is re-numbered
        (
            lambda docs: docs.insert(1, {**docs[1], "payload": {"alert": {"alert_id": "made-up"}}}),
            Problem.BAD_SIGNATURE,
            2,
        ),
        (lambda docs: docs.insert(1, docs.pop(3)), Problem.BAD_SIGNATURE, 2),  # reorder
        (lambda docs: [d.pop(k) for d in docs for k in ("signer", "signature")], Problem.UNSIGNED, 1),
    ],
    ids=["delete", "insert", "reorder", "strip-signatures"],
)
def test_delete_insert_reorder_and_stripping_signatures_after_rehashing_are_caught(
    log_dir: Path, trust: TrustStore, tamper, problem: Problem, seq: int
) -> None:
    docs = records(log_dir)
    tamper(docs)
    rewrite(log_dir, docs)
    report = verify(log_dir, trust)
    assert not report.ok and report.problem is problem and report.first_bad_seq == seq, report.reason


def test_cutting_records_off_the_end_is_caught_against_the_signed_head(log_dir: Path, trust: TrustStore) -> None:
    lines = (log_dir / LOG_NAME).read_text().splitlines(keepends=True)
    (log_dir / LOG_NAME).write_text("".join(lines[:3]))

    report = verify(log_dir, trust)
    assert not report.ok and report.problem is Problem.TRUNCATED
    assert "the log ends at record 3" in report.reason and "records 4–5 were cut off" in report.reason


def test_a_swapped_snapshot_is_caught_and_so_is_a_rewritten_head(log_dir: Path, trust: TrustStore) -> None:
    first, third = sorted((log_dir / SNAPSHOTS).iterdir())[:2]
    first.write_bytes(third.read_bytes())
    report = verify(log_dir, trust)
    assert not report.ok and report.problem is Problem.SNAPSHOT_ALTERED and report.first_bad_seq == 1

    first.write_bytes(jpeg(1))
    head = json.loads((log_dir / HEADS_NAME).read_text().splitlines()[-1])
    head["seq"] = 3  # the forger's truncation, with a head to match
    (log_dir / HEADS_NAME).write_text(canonical_json(head) + "\n")
    report = verify(log_dir, trust)
    assert not report.ok and report.problem is Problem.BAD_HEAD and "does not match key" in report.reason


def test_a_key_not_in_the_trust_store_is_named(log_dir: Path, signer: Signer) -> None:
    stranger = Signer.generate()
    report = verify(log_dir, TrustStore({stranger.key_id: stranger.public}))
    assert not report.ok and report.problem is Problem.UNTRUSTED and report.first_bad_seq == 1
    assert f"signed by key {signer.key_id}, which is not trusted" in report.reason


def test_re_signing_with_the_forgers_own_key_is_an_unknown_key(log_dir: Path, trust: TrustStore) -> None:
    forger = Signer.generate()
    docs = records(log_dir)
    docs[0]["payload"]["alert"]["zone"] = "Inner harbour"
    prev = ZERO_SHA256
    for doc in docs:
        doc["prev_sha256"], doc["signer"] = prev, forger.key_id
        doc["sha256"] = record_sha256(doc)
        doc["signature"] = forger.sign(doc["sha256"].encode())
        prev = doc["sha256"]
    (log_dir / LOG_NAME).write_text("".join(canonical_json(d) + "\n" for d in docs))

    report = verify(log_dir, trust)
    assert not report.ok and report.problem is Problem.UNTRUSTED and report.first_bad_seq == 1


WRITER = textwrap.dedent(
    """
    import sys, time
    from vision.evidence import EvidenceLog
    from vision.signing import load_key
    log = EvidenceLog.open(sys.argv[1], signer=load_key(sys.argv[2]))
    n = 0
    while True:
        n += 1
        log.append("alert", {"alert": {"alert_id": f"a{n}"}}, snapshot_jpeg=b"\\xff\\xd8" + bytes(5000) + b"\\xff\\xd9")
        if n == 3:
            print("started", flush=True)
    """
)


def test_kill_9_mid_write_loses_at_most_the_record_being_written(tmp_path: Path) -> None:
    key = create_key(tmp_path / "keys" / "signing.key")
    directory = tmp_path / "evidence"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(directory), str(key.path)], stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"started\n"
        time.sleep(0.5)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

    trust = TrustStore({key.key_id: key.public})
    report = verify(directory, trust)
    assert report.ok and report.records >= 3, report.reason
    with EvidenceLog.open(directory, signer=key) as log:  # reopened: a torn line set aside, then going on
        kept = log.last_seq
        log.append("alert", {"alert": {"alert_id": "after"}})
    after = verify(directory, trust)
    assert after.ok and after.records == kept + 1 and after.last_signed_head.seq == kept + 1
