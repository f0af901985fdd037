"""A run folder's evidence signed by the station and timestamped by a TSA as the run goes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groundstation.commands.cli import main
from groundstation.runs.kpis import compute_run_kpis
from groundstation.runs.reader import read_run
from groundstation.runs.recorder import EVIDENCE, RunRecorder
from groundstation.runs.report import write_report
from missions.formats import load_site
from sitl.testdata import SITES_DIR
from sitl.tsa import LocalTsa, TsaMode, openssl_available
from vision.evidence_verify import verify
from vision.signing import TrustStore, default_trust_dir
from vision.timestamps import load_tsa_roots


@pytest.mark.skipif(not openssl_available(), reason="needs openssl on PATH for the local TSA")
def test_a_run_with_a_tsa_has_every_signed_head_timestamped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with LocalTsa() as tsa:
        recorder = RunRecorder.create(tmp_path / "run", load_site(SITES_DIR / "algeciras-port.geojson"),
                                      [("vehicle 1", "udp://")], tsa_url=tsa.url)  # fmt: skip
        for n in range(3):
            recorder.evidence.append("alert", {"alert": {"alert_id": f"a{n}"}})
        recorder.close()
        roots = load_tsa_roots(tsa.ca_cert_path)
    report = verify(tmp_path / "run" / EVIDENCE, TrustStore.load(default_trust_dir()), roots)
    assert report.ok and report.tokens_checked and report.heads_without_token == ()
    assert report.last_signed_head is not None and report.last_signed_head.seq == 3
    assert json.loads((tmp_path / "run" / "run.json").read_text())["tsa"] == tsa.url
    evidence = compute_run_kpis(read_run(tmp_path / "run")).evidence
    assert evidence.ok and f"every signed head has a timestamp token from {tsa.url}" in evidence.verdict


@pytest.mark.skipif(not openssl_available(), reason="needs openssl on PATH for the local TSA")
def test_the_report_names_the_heads_a_tsa_that_did_not_answer_left_without_a_token(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with LocalTsa(mode=TsaMode.HTTP_ERROR) as tsa:
        recorder = RunRecorder.create(tmp_path / "run", load_site(SITES_DIR / "algeciras-port.geojson"),
                                      [("vehicle 1", "udp://")], tsa_url=tsa.url)  # fmt: skip
        for n in range(3):
            recorder.evidence.append("alert", {"alert": {"alert_id": f"a{n}"}})
        recorder.close()
    run = read_run(tmp_path / "run")
    assert run.heads_without_token == (3,)
    evidence = compute_run_kpis(run).evidence
    # The records are intact and signed: what is missing is the third party's word on when.
    assert evidence.ok
    assert (
        f"NO TIMESTAMP TOKEN for the head(s) signed at record 3: the TSA {tsa.url} did not answer" in evidence.verdict
    )
    page = write_report(run, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "NO TIMESTAMP TOKEN for the head(s) signed at record 3" in page


def test_evidence_is_readable_by_its_owner_only_and_no_private_key_is_in_the_run(tmp_path: Path) -> None:
    site = load_site(SITES_DIR / "algeciras-port.geojson")
    recorder = RunRecorder.create(tmp_path / "run", site, [("vehicle 1", "udp://")])
    for n in range(3):
        recorder.evidence.append("alert", {"alert": {"alert_id": f"a{n}"}}, b"\xff\xd8 a snapshot")
    recorder.close()
    evidence = tmp_path / "run" / EVIDENCE
    folders = [evidence, *(p for p in evidence.rglob("*") if p.is_dir())]
    files = [p for p in evidence.rglob("*") if p.is_file()]
    assert len(files) >= 5  # the log, its heads, three snapshots
    assert {oct(p.stat().st_mode & 0o777) for p in folders} == {"0o700"}
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o600"}
    for path in (tmp_path / "run").rglob("*"):
        assert not path.is_file() or b"PRIVATE KEY" not in path.read_bytes(), path


def test_a_run_without_a_tsa_says_nothing_of_tokens(tmp_path: Path) -> None:
    recorder = RunRecorder.create(tmp_path / "run", load_site(SITES_DIR / "algeciras-port.geojson"),
                                  [("vehicle 1", "udp://")])  # fmt: skip
    recorder.evidence.append("alert", {"alert": {"alert_id": "a0"}})
    recorder.close()
    run = read_run(tmp_path / "run")
    assert run.tsa is None and run.heads_without_token == ()
    assert "timestamp" not in compute_run_kpis(run).evidence.verdict.lower()


def test_a_tsa_that_is_not_a_url_is_refused_before_anything_starts(capsys) -> None:
    assert main(["demo", "--tsa", "tsa.example.org"]) == 2
    assert "--tsa tsa.example.org: expected an http:// or https:// URL" in capsys.readouterr().err
