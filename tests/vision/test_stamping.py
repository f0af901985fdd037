"""Signed heads timestamped by a real TSA (OpenSSL's, on loopback): tokens that verify, a TSA that
does not answer stopping nothing and the head timestamped later, tokens that lie caught."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sitl.tsa import LocalTsa, TsaMode, openssl_available
from vision.evidence import EvidenceLog
from vision.evidence_verify import Problem, verify
from vision.signing import Signer, TrustStore
from vision.stamping import TIMESTAMPS_NAME, HeadStamper
from vision.timestamps import load_tsa_roots

pytestmark = pytest.mark.skipif(not openssl_available(), reason="needs openssl on PATH for the local TSA")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")


def write_log(directory: Path, signer: Signer, stamper: HeadStamper, records: int = 3) -> None:
    with EvidenceLog.open(directory, signer=signer) as log:
        log.on_head = stamper
        for n in range(1, records + 1):
            log.append("alert", {"alert": {"alert_id": f"a{n}"}})
        log.sign_head()  # one while the run goes on
        log.append("alert", {"alert": {"alert_id": "last"}})
    # and one at close


def test_every_signed_head_gets_a_token_that_verifies(tmp_path: Path, signer: Signer, trust: TrustStore) -> None:
    with LocalTsa() as tsa:
        stamper = HeadStamper(tmp_path / "evidence", tsa.url)
        write_log(tmp_path / "evidence", signer, stamper)
        stamper.close()
        roots = load_tsa_roots(tsa.ca_cert_path)
    assert stamper.stamped == 2
    report = verify(tmp_path / "evidence", trust, roots)
    assert report.ok and report.tokens_checked and report.heads_without_token == ()
    lines = [json.loads(line) for line in (tmp_path / "evidence" / TIMESTAMPS_NAME).read_text().splitlines()]
    assert [line["seq"] for line in lines] == [3, 4] and all(line["tsa"] == tsa.url for line in lines)


def test_a_tsa_that_does_not_answer_stops_nothing_and_the_head_is_timestamped_later(
    tmp_path: Path, signer: Signer, trust: TrustStore
) -> None:
    said: list[str] = []
    with LocalTsa(mode=TsaMode.SILENT) as tsa:
        stamper = HeadStamper(tmp_path / "evidence", tsa.url, timeout_s=0.5, retry_s=0.5, say=said.append)
        started = time.monotonic()
        with EvidenceLog.open(tmp_path / "evidence", signer=signer) as log:
            log.on_head = stamper
            log.append("alert", {"alert": {"alert_id": "a1"}})
            log.sign_head()
            assert time.monotonic() - started < 0.5  # the log never waits for the TSA
            deadline = time.monotonic() + 5
            while not said and time.monotonic() < deadline:
                time.sleep(0.05)
            tsa.mode = TsaMode.GRANT
            deadline = time.monotonic() + 10
            while stamper.stamped < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
        stamper.close()
        roots = load_tsa_roots(tsa.ca_cert_path)
    assert said[0].startswith(tsa.url) and "head 1 will be timestamped later" in said[0], said
    assert len([line for line in said if "timestamped later" in line]) == 1
    assert stamper.stamped >= 1
    assert verify(tmp_path / "evidence", trust, roots).ok


def test_heads_still_without_a_token_at_close_are_named(tmp_path: Path, signer: Signer, trust: TrustStore) -> None:
    said: list[str] = []
    with LocalTsa(mode=TsaMode.HTTP_ERROR) as tsa:
        stamper = HeadStamper(tmp_path / "evidence", tsa.url, timeout_s=1.0, say=said.append)
        write_log(tmp_path / "evidence", signer, stamper)
        stamper.close()
        roots = load_tsa_roots(tsa.ca_cert_path)
    report = verify(tmp_path / "evidence", trust, roots)
    assert report.ok and report.heads_without_token == (3, 4)
    assert "head(s) at record 3, 4 have no timestamp token" in said[-1]


def test_a_token_from_an_untrusted_tsa_or_for_another_head_fails(
    tmp_path: Path, signer: Signer, trust: TrustStore
) -> None:
    with LocalTsa() as tsa, LocalTsa(name="someone else") as other:
        stamper = HeadStamper(tmp_path / "evidence", tsa.url)
        write_log(tmp_path / "evidence", signer, stamper)
        stamper.close()
        roots, other_roots = load_tsa_roots(tsa.ca_cert_path), load_tsa_roots(other.ca_cert_path)

    report = verify(tmp_path / "evidence", trust, other_roots)
    assert not report.ok and report.problem is Problem.BAD_TOKEN and "trusted TSA roots" in report.reason

    path = tmp_path / "evidence" / TIMESTAMPS_NAME
    lines = path.read_text().splitlines()
    first, second = json.loads(lines[0]), json.loads(lines[1])
    first["token_b64"] = second["token_b64"]  # the token of one head put on another
    path.write_text(json.dumps(first) + "\n" + lines[1] + "\n")
    report = verify(tmp_path / "evidence", trust, roots)
    assert not report.ok and report.problem is Problem.BAD_TOKEN and "record 3 does not verify" in report.reason
