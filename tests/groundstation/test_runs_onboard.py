"""A run folder that holds onboard units' evidence as the station received it: the report's verdict
checks each copy's chain and that it ends where the unit said its own log ended."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groundstation.runs.kpis import compute_run_kpis
from groundstation.runs.reader import read_run
from groundstation.runs.recorder import RunRecorder
from missions.formats import load_site
from sitl.testdata import SITES_DIR
from vision.evidence import EvidenceLog
from vision.signing import Signer, TrustStore, default_trust_dir

SITE = SITES_DIR / "algeciras-port.geojson"


def jpeg(n: int) -> bytes:
    return b"\xff\xd8" + bytes([n]) * 64 + b"\xff\xd9"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A closed run whose unit 1 sent all three of its records, and unit 2 two of its three."""
    recorder = RunRecorder.create(tmp_path / "run", load_site(SITE), [("vehicle 1", "udp://"), ("vehicle 2", "udp://")])
    for unit, sent in ((1, 3), (2, 2)):
        key = Signer.generate()  # the unit's, which this station trusts
        TrustStore.load(default_trust_dir()).trust(key.public)
        with (
            EvidenceLog.open(tmp_path / f"onboard-{unit}", signer=key) as onboard,
            EvidenceLog.open(recorder.onboard_dir / f"unit-{unit}") as copy,
        ):
            for n in range(1, 4):
                alert = {"alert_id": f"unit{unit}:enter-{n}", "message": f"vessel {n}"}
                record = onboard.append("alert", {"alert": alert}, snapshot_jpeg=jpeg(n))
                if n <= sent:
                    copy.append_copy(record, jpeg(n))
            recorder.note_onboard_head(unit, onboard.last_seq, onboard.last_sha256)
    recorder.close()
    return tmp_path / "run"


def test_copies_that_end_at_the_onboard_head_are_intact_and_one_cut_short_is_named(run_dir: Path) -> None:
    run = read_run(run_dir)
    assert [(u.name, u.report.records, u.head_seq) for u in run.onboard] == [("unit-1", 3, 3), ("unit-2", 2, 3)]
    assert run.snapshots["unit1:enter-2"].is_file()

    verdict = compute_run_kpis(run).evidence
    assert not verdict.ok
    assert "unit-1: intact, the same chain as onboard (3 record(s), 3 snapshot(s) verified, signed by key" in (
        verdict.verdict
    )
    assert "unit-2: NOT THE ONBOARD CHAIN" in verdict.verdict


def test_a_rewritten_record_in_a_unit_copy_is_named(run_dir: Path) -> None:
    log = run_dir / "onboard" / "unit-1" / "evidence.jsonl"
    lines = log.read_text().splitlines()
    record = json.loads(lines[1])
    record["payload"]["alert"]["message"] = "nothing to see"
    lines[1] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    log.write_text("\n".join(lines) + "\n")

    verdict = compute_run_kpis(read_run(run_dir)).evidence
    assert not verdict.ok
    assert "unit-1: TAMPERED at record 2" in verdict.verdict


def test_append_copy_refuses_a_record_that_does_not_continue_the_chain(tmp_path: Path) -> None:
    with EvidenceLog.open(tmp_path / "onboard") as onboard, EvidenceLog.open(tmp_path / "copy") as copy:
        first = onboard.append("alert", {"n": 1})
        second = onboard.append("alert", {"n": 2}, snapshot_jpeg=jpeg(2))
        with pytest.raises(ValueError, match="record 2 does not follow record 0"):
            copy.append_copy(second, jpeg(2))
        copy.append_copy(first, None)
        with pytest.raises(ValueError, match="the snapshot does not match"):
            copy.append_copy(second, jpeg(3))
        copy.append_copy(second, jpeg(2))
        assert (copy.last_seq, copy.last_sha256) == (onboard.last_seq, onboard.last_sha256)
    assert (tmp_path / "copy" / "evidence.jsonl").read_bytes() == (tmp_path / "onboard" / "evidence.jsonl").read_bytes()
