"""AIS in the report: the vessels seen and what AIS said of them, dark vessels and unseen AIS positions standing out."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from test_runfolder import SOURCE, START_S, ZONE, FakeClock, algeciras, make_alert, record_patrol, snapshot

from groundstation.runs.kpis import compute_run_kpis, format_run_kpis
from groundstation.runs.reader import read_run
from groundstation.runs.recorder import RunRecorder
from groundstation.runs.report import write_report
from groundstation.runs.vessels import AisStatus, ais_kpis, verified_ais_reports, vessel_rows
from vision.alerts import Alert, RuleKind
from vision.camera import Intrinsics
from vision.detections import Detection, Detections, ObjectClass

AIS_LINE = "AIS: 3 vessel track(s) seen: 1 bound, 1 dark, 1 unidentified; 1 AIS position(s) not seen"
SENTENCE = "!AIVDM,1,1,,A,13u?etPv2;0n:dDPwUM1U1Cb069D,0*24"


def ais_report(mmsi: int, time_s: float, lat: float, lon: float, name: str | None) -> dict:
    """A report as vision.ais.watch keeps it in an evidence record."""
    return {
        "mmsi": mmsi,
        "time_s": time_s,
        "lat_deg": lat,
        "lon_deg": lon,
        "sog_kn": 4.2,
        "cog_deg": 87.0,
        "heading_deg": None,
        "class": "A",
        "msg_type": 1,
        "sentences": [SENTENCE],
        "name": name,
        "dead_reckoned": {"x_m": 0.0, "y_m": 0.0, "error_m": 12.0, "time_s": time_s},
    }


def ais_alert(site, rule: RuleKind, time_s: float, lat: float, lon: float, **fields) -> Alert:
    return replace(
        make_alert(site, time_s, lat, lon),
        alert_id=f"{SOURCE}:{rule.value}-{fields.get('track_id') or fields.get('mmsi')}",
        rule=rule,
        message=f"{rule.value} in {ZONE}",
        **fields,
    )


def record_ais_run(run_dir: Path) -> None:
    """Three vessels seen over 30 s: #1 bound (to 224000001 ALPHA, then 224000002 BRAVO), #2 called dark,
    #3 never named; an enter alert on #1 and an AIS target 224000009 GHOST whose position showed nothing."""
    site = algeciras()
    clock = FakeClock()
    recorder = RunRecorder.create(run_dir, site, [("vehicle 1", "udp://")], Intrinsics(), clock=clock)
    centre = site.local(next(z for z in site.watch if z.name == ZONE)).centroid

    def at(dx: float) -> tuple[float, float]:
        lon, lat = site.frame.lonlat(centre.x + dx, centre.y)
        return lat, lon

    def keep(alert: Alert, ais: list[dict] | None = None) -> None:
        recorder.emit(alert)
        payload = {"alert": alert.to_json_dict(), **({} if ais is None else {"ais": ais})}
        recorder.evidence.append("alert", payload, snapshot(), time_s=alert.time_s)

    for i in range(1, 31):
        clock.now = START_S + i
        mmsi, name = (None, None) if i < 5 else (224000001, "ALPHA") if i < 20 else (224000002, "BRAVO")
        items = tuple(
            Detection(ObjectClass.VESSEL, 0.9, (10, 10, 40, 30), track, lat_deg=lat, lon_deg=lon, **ais)
            for track, ais in ((1, {"mmsi": mmsi, "vessel_name": name}), (2, {}), (3, {}))
            for lat, lon in [at(60 * track - 120)]
        )
        recorder.emit_detections(Detections(SOURCE, clock.now, i, items))
        if i == 6:
            keep(replace(make_alert(site, clock.now, *at(-60), track=1), mmsi=224000001, vessel_name="ALPHA"))
        if i == 25:
            keep(
                ais_alert(site, RuleKind.DARK_VESSEL, clock.now, *at(0), track_id=2),
                [ais_report(224000002, clock.now - 3, *at(-55), "BRAVO")],
            )
        if i == 28:
            where = at(150)
            ghost = ais_alert(site, RuleKind.AIS_NOT_SEEN, clock.now, *where, track_id=None, mmsi=224000009)
            keep(replace(ghost, vessel_name="GHOST"), [ais_report(224000009, clock.now - 2, *where, "GHOST")])
    recorder.close()


def popups(page: str) -> list[str]:
    """The HTML of every popup on the map."""
    return [json.loads(m) for m in re.findall(r'bindPopup\(("(?:[^"\\]|\\.)*")', page)]


def vessel_table(page: str) -> list[tuple[str, list[str]]]:
    """The "Vessels seen" table's rows: (row class, cells' text)."""
    table = page[page.index("<h2>Vessels seen</h2>") :]
    table = table[: table.index("</table>")]
    rows = re.findall(r'<tr(?: class="([^"]*)")?>(<td>.*?)</tr>', table)
    return [(css, re.findall(r"<td>(.*?)</td>", cells)) for css, cells in rows]


def test_the_report_lists_each_vessel_with_what_ais_said_of_it(tmp_path: Path) -> None:
    record_ais_run(tmp_path / "run")
    run = read_run(tmp_path / "run")
    kpis = compute_run_kpis(run)

    page = write_report(run, tmp_path / "report" / "report.html", kpis).read_text(encoding="utf-8")

    assert f"  {AIS_LINE}\n" in format_run_kpis(kpis)
    assert f'<p class="ais">{AIS_LINE}</p>' in page
    assert kpis.to_dict()["ais"] == {"tracks": 3, "bound": 1, "dark": 1, "unidentified": 1, "not_seen": 1}
    assert page.index("<h2>Alerts") < page.index("<h2>Vessels seen</h2>")
    rows = vessel_table(page)
    assert [(css, cells[:4]) for css, cells in rows] == [
        ("", [f"{SOURCE}#1", "bound", "224000001, 224000002", "ALPHA, BRAVO"]),
        ("dark", [f"{SOURCE}#2", "dark", "—", "—"]),
        ("", [f"{SOURCE}#3", "unidentified", "—", "—"]),
        ("not-seen", [rows[3][1][0], "not seen", "224000009", "GHOST"]),
    ]
    assert rows[3][1][0].startswith("MMSI 224000009 at 36.")
    assert [cells[4:6] for _, cells in rows] == [["22:13:21", "22:13:50"]] * 3 + [["22:13:48", "22:13:48"]]
    assert rows[0][1][6] == f"enter in {ZONE} at 22:13:26"
    assert rows[1][1][6] == f"dark-vessel in {ZONE} at 22:13:45"
    assert rows[2][1][6] == "—"
    assert rows[3][1][6] == f"ais-not-seen in {ZONE} at 22:13:48"


def test_dark_vessels_and_unseen_ais_positions_stand_out_on_the_map_with_the_ais_reports(tmp_path: Path) -> None:
    record_ais_run(tmp_path / "run")
    run = read_run(tmp_path / "run")

    page = write_report(run, tmp_path / "report" / "report.html").read_text(encoding="utf-8")

    assert page.count("borderwatch-ais-marker dark") == 1 and page.count("borderwatch-ais-marker not-seen") == 1
    assert "Dark vessel (no AIS)" in page and "AIS position not seen" in page  # the legend and the layer control
    assert "rotate(45deg)" in page  # a diamond, where other alerts are discs
    # The detections' tooltips name the vessel the track was bound to at the time.
    assert "vessel #1 (0.90) at 22:13:31 — MMSI 224000001 ALPHA" in page
    assert "vessel #1 (0.90) at 22:13:41 — MMSI 224000002 BRAVO" in page
    assert re.search(r"vessel #2 \(0\.90\) at 22:13:31\s*</div>", page)  # never bound: no vessel named
    # Popups: the MMSI and name an alert carries, and the AIS reports its verified record holds, without sentences.
    enter, dark, ghost = (next(p for p in popups(page) if f"— {what}" in p) for what in ("vessel 1", "dark", "ais-not"))
    assert "<b>MMSI 224000001 ALPHA</b>" in enter and "AIS reports" not in enter
    assert "MMSI" not in dark.split("AIS reports")[0]  # a dark vessel has none of its own
    assert "<td>224000002 BRAVO</td><td>22:13:42</td>" in dark and "<td>4.2 kn</td><td>87°</td>" in dark
    assert "<b>MMSI 224000009 GHOST</b>" in ghost and "<td>224000009 GHOST</td><td>22:13:46</td>" in ghost
    assert "AIS reports in the evidence (1)" in dark and "AIS reports in the evidence (1)" in ghost
    assert "AIVDM" not in page
    reports = verified_ais_reports(run)
    assert sorted(reports) == [f"{SOURCE}:ais-not-seen-224000009", f"{SOURCE}:dark-vessel-2"]
    [ghost] = reports[f"{SOURCE}:ais-not-seen-224000009"]
    assert (ghost.mmsi, ghost.name, ghost.sog_kn, ghost.cog_deg) == (224000009, "GHOST", 4.2, 87.0)


def test_a_run_without_ais_reads_as_before(tmp_path: Path) -> None:
    record_patrol(tmp_path / "run", step_m=20.0)
    run = read_run(tmp_path / "run")
    kpis = compute_run_kpis(run)

    page = write_report(run, tmp_path / "report" / "report.html", kpis).read_text(encoding="utf-8")

    assert kpis.ais is None and ais_kpis(run) is None and "ais" not in kpis.to_dict()
    assert "AIS" not in format_run_kpis(kpis)
    assert "AIS" not in page and "Vessels seen" not in page and "borderwatch-ais-marker" not in page
    assert verified_ais_reports(run) == {}


def test_a_track_called_dark_stays_dark_once_bound_and_a_dark_track_unrecorded_is_still_listed(tmp_path: Path) -> None:
    record_ais_run(tmp_path / "run")
    run = read_run(tmp_path / "run")
    site = run.site
    later = Detections(SOURCE, START_S + 40, 40, (Detection(ObjectClass.VESSEL, 0.8, (0, 0, 1, 1), 2, mmsi=224000005),))
    unrecorded = ais_alert(site, RuleKind.DARK_VESSEL, START_S + 45, 36.13, -5.42, track_id=9)
    run = replace(run, detections=(*run.detections, later), alerts=(*run.alerts, unrecorded))

    rows = {r.what: r for r in vessel_rows(run)}

    assert rows[f"{SOURCE}#2"].status is AisStatus.DARK and rows[f"{SOURCE}#2"].mmsis == (224000005,)
    assert rows[f"{SOURCE}#2"].last_s == START_S + 40
    assert rows[f"{SOURCE}#9"].status is AisStatus.DARK
    assert (rows[f"{SOURCE}#9"].first_s, rows[f"{SOURCE}#9"].last_s) == (START_S + 45, START_S + 45)
    assert ais_kpis(run).summary == (
        "AIS: 4 vessel track(s) seen: 1 bound, 2 dark, 1 unidentified; 1 AIS position(s) not seen"
    )
