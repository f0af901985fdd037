"""One source of truth for a run's alerts: the report shows each alert as its verified evidence record says
it, with the key that signed it, and lists in red every line of alerts.jsonl that the evidence does not bear out."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_runfolder import ZONE, FakeClock, algeciras, make_alert, record_patrol, snapshot

from groundstation.runs.kpis import compute_run_kpis, format_run_kpis
from groundstation.runs.reader import AlertStatus, read_run
from groundstation.runs.recorder import ALERTS, EVIDENCE, RUN_JSON, RunRecorder
from groundstation.runs.report import UNVERIFIED_COLOR, write_report
from vision.alerts import Alert
from vision.camera import Intrinsics
from vision.evidence import EvidenceLog, canonical_json, record_sha256
from vision.signing import Signer, TrustStore, default_trust_dir

EDITED = "nothing to see here"


def alert_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / ALERTS).read_text().splitlines()]


def write_alert_lines(run_dir: Path, alerts: list[dict]) -> None:
    (run_dir / ALERTS).write_text("".join(json.dumps(a) + "\n" for a in alerts))


def evidence_lines(run_dir: Path, log: str = EVIDENCE) -> list[dict]:
    return [json.loads(line) for line in (run_dir / log / "evidence.jsonl").read_text().splitlines()]


def write_evidence_lines(run_dir: Path, records: list[dict], log: str = EVIDENCE) -> None:
    (run_dir / log / "evidence.jsonl").write_text("".join(canonical_json(r) + "\n" for r in records))


def record_alerts(run_dir: Path, n: int) -> list[Alert]:
    """A closed run whose station raised `n` alerts, each in alerts.jsonl and in a signed evidence record."""
    site = algeciras()
    clock = FakeClock()
    recorder = RunRecorder.create(run_dir, site, [("vehicle 1", "udp://")], Intrinsics(), clock=clock)
    centre = site.local(next(z for z in site.watch if z.name == ZONE)).centroid
    lon, lat = site.frame.lonlat(centre.x, centre.y)
    alerts = []
    for track in range(1, n + 1):
        clock.now += 10.0
        alert = make_alert(site, clock.now, lat, lon, track)
        recorder.emit(alert)
        recorder.evidence.append("alert", {"alert": alert.to_json_dict()}, snapshot(), time_s=clock.now)
        alerts.append(alert)
    recorder.close()
    return alerts


def report_page(run_dir: Path, out: Path) -> str:
    return write_report(read_run(run_dir), out / "report.html").read_text(encoding="utf-8")


def table_rows(page: str, css: str | None = None) -> list[str]:
    """The alerts table's rows (of class `css`, or without one), their cells' text joined by |."""
    table = page[page.index("<h2>Alerts") :]
    table = table[: table.index("</table>")]
    pattern = r'<tr class="unverified">(.*?)</tr>' if css else r"<tr>(<td>.*?)</tr>"
    return ["|".join(re.findall(r"<td>(.*?)</td>", row)) for row in re.findall(pattern, table)]


def station_key_id(run_dir: Path) -> str:
    return evidence_lines(run_dir)[0]["signer"]


# ----------------------------------------------------------------------------- the happy path


def test_every_alert_is_shown_as_its_evidence_says_it_with_who_signed_it(tmp_path: Path) -> None:
    recorded = record_patrol(tmp_path / "run", step_m=20.0)
    key = station_key_id(tmp_path / "run")

    run = read_run(tmp_path / "run")
    page = report_page(tmp_path / "run", tmp_path / "report")

    [check] = run.alert_checks
    assert check.status is AlertStatus.VERIFIED and check.line == 1
    record = run.verified_alerts[check.alert.alert_id]
    assert (record.alert, record.signer, record.log, record.seq) == (check.alert, key, "evidence", 1)
    assert run.unverified_alerts == () and run.shown_alerts == (check.alert,)
    [row] = table_rows(page)
    assert check.alert.message in row
    assert f"signed by key {key}: signature verified (evidence record 1)" in row
    assert table_rows(page, "unverified") == [] and "not borne out" not in page
    assert page.count(f"signed by key {key}: signature verified") == 2 * recorded.alerts  # the row and the popup
    assert "alerts: 1 (1 vessel)\n" in format_run_kpis(compute_run_kpis(run)) + "\n"


def test_an_onboard_units_alert_is_signed_by_the_units_key(tmp_path: Path) -> None:
    site = algeciras()
    unit_key = Signer.generate()
    TrustStore.load(default_trust_dir()).trust(unit_key.public)
    recorder = RunRecorder.create(tmp_path / "run", site, [("vehicle 1", "udp://")], Intrinsics(), clock=FakeClock())
    alert = make_alert(site, 1_700_000_010.0, 36.13, -5.425)
    with EvidenceLog.open(recorder.onboard_dir / "unit-1", signer=unit_key) as unit_log:
        unit_log.append("alert", {"alert": alert.to_json_dict()}, snapshot(), time_s=alert.time_s)
    recorder.emit(alert)
    recorder.close()

    run = read_run(tmp_path / "run")

    record = run.verified_alerts[alert.alert_id]
    assert (record.log, record.signer) == ("onboard/unit-1", unit_key.key_id)
    assert [c.status for c in run.alert_checks] == [AlertStatus.VERIFIED]
    [row] = table_rows(report_page(tmp_path / "run", tmp_path / "report"))
    assert f"signed by key {unit_key.key_id}: signature verified (onboard/unit-1 record 1)" in row


# ----------------------------------------------------------------------------- alerts.jsonl edited


def test_an_edited_message_is_shown_as_the_evidence_says_it_and_the_line_as_unverified(tmp_path: Path) -> None:
    record_patrol(tmp_path / "run", step_m=20.0)
    lines = alert_lines(tmp_path / "run")
    original = lines[0]["message"]
    lines[0]["message"] = EDITED
    write_alert_lines(tmp_path / "run", lines + lines)  # a repeated line is listed once

    run = read_run(tmp_path / "run")
    page = report_page(tmp_path / "run", tmp_path / "report")

    assert [(c.line, c.status, c.fields) for c in run.alert_checks] == [
        (1, AlertStatus.DIFFERS, ("message",)),
        (2, AlertStatus.DIFFERS, ("message",)),
    ]
    assert run.verified_alerts[lines[0]["alert_id"]].alert.message == original
    assert [a.message for a in run.shown_alerts] == [original]
    [verified] = table_rows(page)
    assert original in verified and "signature verified" in verified
    [unverified] = table_rows(page, "unverified")
    assert EDITED in unverified
    assert "UNVERIFIED (alerts.jsonl line 1): differs from its evidence record (evidence record 1) in message" in (
        unverified
    )
    assert page.count(EDITED) == 1  # the map's marker and popup are the evidence's
    assert re.search(r"tr\.unverified td \{ color: #c62828;", page)
    assert "1 line of alerts.jsonl is not borne out by the verified evidence" in page
    assert "<h2>Alerts (1, 1 unverified in alerts.jsonl)</h2>" in page
    kpis = compute_run_kpis(run)
    assert (kpis.alerts, kpis.unverified_alerts) == (1, 1)
    assert "alerts: 1 (1 vessel), 1 unverified in alerts.jsonl" in format_run_kpis(kpis)


def test_an_edited_zone_counts_where_the_evidence_says(tmp_path: Path) -> None:
    record_patrol(tmp_path / "run", step_m=20.0)
    lines = alert_lines(tmp_path / "run")
    lines[0].update(zone="Inner harbour", message="vessel 1 entered Inner harbour")
    write_alert_lines(tmp_path / "run", lines)

    run = read_run(tmp_path / "run")
    kpis = compute_run_kpis(run)

    assert run.alert_checks[0].fields == ("zone", "message")
    assert dict(kpis.alerts_per_zone) == {ZONE: 1}
    [row] = table_rows(report_page(tmp_path / "run", tmp_path / "report"), "unverified")
    assert "in zone, message" in row


def test_an_alert_with_no_evidence_record_is_unverified(tmp_path: Path) -> None:
    record_patrol(tmp_path / "run", step_m=20.0)
    lines = alert_lines(tmp_path / "run")
    invented = make_alert(algeciras(), lines[0]["time_s"] + 30, 36.131, -5.424, track=7)
    write_alert_lines(tmp_path / "run", [*lines, invented.to_json_dict()])

    run = read_run(tmp_path / "run")
    page = report_page(tmp_path / "run", tmp_path / "report")

    assert [c.status for c in run.alert_checks] == [AlertStatus.VERIFIED, AlertStatus.NO_RECORD]
    assert invented.alert_id not in run.verified_alerts
    [row] = table_rows(page, "unverified")
    assert invented.message in row and "UNVERIFIED (alerts.jsonl line 2): no evidence record" in row
    assert "Unverified alerts" in page and f"UNVERIFIED {invented.severity.upper()}: {invented.message}" in page
    kpis = compute_run_kpis(run)
    assert (kpis.alerts, kpis.unverified_alerts) == (2, 1)


# ----------------------------------------------------------------------------- the evidence forged too


def resign_untrusted(record: dict) -> None:
    key = Signer.generate()
    record["signer"] = key.key_id
    record["sha256"] = record_sha256(record)
    record["signature"] = key.sign(record["sha256"].encode("ascii"))


def unsign(record: dict) -> None:
    del record["signer"], record["signature"]
    record["sha256"] = record_sha256(record)


def rehash(record: dict) -> None:
    record["sha256"] = record_sha256(record)


@pytest.mark.parametrize(
    ("forge", "problem"),
    [
        (rehash, "its signature does not match key"),
        (unsign, "record 1 is not signed"),
        (resign_untrusted, "which is not trusted"),
    ],
)
def test_evidence_forged_with_the_alert_is_not_verified(tmp_path: Path, forge, problem: str) -> None:
    run_dir = tmp_path / "run"
    record_patrol(run_dir, step_m=20.0)
    records = evidence_lines(run_dir)
    records[0]["payload"]["alert"]["message"] = EDITED
    forge(records[0])
    write_evidence_lines(run_dir, records)
    document = json.loads((run_dir / RUN_JSON).read_text())
    document["evidence_last_sha256"] = records[0]["sha256"]
    (run_dir / RUN_JSON).write_text(json.dumps(document))
    lines = alert_lines(run_dir)
    lines[0]["message"] = EDITED
    write_alert_lines(run_dir, lines)

    run = read_run(run_dir)
    page = report_page(run_dir, tmp_path / "report")

    assert not compute_run_kpis(run).evidence.ok
    assert run.verified_alerts == {}
    [check] = run.alert_checks
    assert check.status is AlertStatus.LOG_NOT_VERIFIED and problem in check.reason
    assert "signature verified" not in page and table_rows(page) == []
    [row] = table_rows(page, "unverified")
    assert EDITED in row and "its evidence record (evidence record 1) is not verified" in row and problem in row
    assert "report_files/snapshots" not in page  # a snapshot no verified record vouches for is not shown


def test_only_records_before_the_first_bad_one_are_verified(tmp_path: Path) -> None:
    alerts = record_alerts(tmp_path / "run", 3)
    records = evidence_lines(tmp_path / "run")
    records[1]["payload"]["alert"]["message"] = EDITED
    rehash(records[1])
    write_evidence_lines(tmp_path / "run", records)

    run = read_run(tmp_path / "run")

    assert list(run.verified_alerts) == [alerts[0].alert_id]
    assert [c.status for c in run.alert_checks] == [AlertStatus.VERIFIED, *[AlertStatus.LOG_NOT_VERIFIED] * 2]
    assert "the log does not verify from line 2: record 2 was edited" in run.alert_checks[2].reason
    rows = table_rows(report_page(tmp_path / "run", tmp_path / "report"), "unverified")
    assert [alerts[1].message in rows[0], alerts[2].message in rows[1]] == [True, True]


def test_records_before_a_break_still_need_a_trusted_signature(tmp_path: Path) -> None:
    site = algeciras()
    stranger = Signer.generate()  # never trusted by this station
    recorder = RunRecorder.create(tmp_path / "run", site, [("vehicle 1", "udp://")], Intrinsics(), clock=FakeClock())
    alerts = [make_alert(site, 1_700_000_000.0 + 10 * n, 36.13, -5.425, n) for n in (1, 2, 3)]
    with EvidenceLog.open(recorder.onboard_dir / "unit-1", signer=stranger) as unit_log:
        for alert in alerts:
            unit_log.append("alert", {"alert": alert.to_json_dict()}, time_s=alert.time_s)
            recorder.emit(alert)
    recorder.close()
    records = evidence_lines(tmp_path / "run", "onboard/unit-1")
    write_evidence_lines(tmp_path / "run", [records[0], records[2]], "onboard/unit-1")  # record 2 deleted

    run = read_run(tmp_path / "run")

    assert run.onboard[0].report.first_bad == 2  # the chain breaks first, so verify never got to the signatures
    assert run.verified_alerts == {}
    assert f"signed by key {stranger.key_id}, which is not trusted" in run.alert_checks[0].reason


# ----------------------------------------------------------------------------- in a browser


def test_a_tampered_report_draws_in_chromium_with_the_unverified_alert_in_red(tmp_path: Path, chromium) -> None:
    record_patrol(tmp_path / "run", step_m=20.0)
    lines = alert_lines(tmp_path / "run")
    invented = make_alert(algeciras(), lines[0]["time_s"] + 30, 36.131, -5.424, track=7)
    lines[0]["message"] = EDITED
    write_alert_lines(tmp_path / "run", [*lines, invented.to_json_dict()])
    out = write_report(read_run(tmp_path / "run"), tmp_path / "report" / "report.html")

    dom = chromium("--dump-dom", out.as_uri()).stdout

    paths = [p for p in re.findall(r"<path\b[^>]*>", dom) if "leaflet-interactive" in p]
    assert sum('stroke="#111111"' in p for p in paths) == 1  # the verified alert
    assert sum(f'stroke="{UNVERIFIED_COLOR}"' in p for p in paths) == 1  # the invented one
    section = dom[dom.index('class="borderwatch-report"') :]
    assert section.count('<tr class="unverified">') == 2
    assert "no evidence record" in section and "in message" in section
