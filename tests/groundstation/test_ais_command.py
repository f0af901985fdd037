"""`borderwatch ais` as a user runs it: a recorded .nmea log replayed into the vessel table."""

from __future__ import annotations

from pathlib import Path

import pyais
import pytest

from groundstation.commands.cli import main
from sitl.testdata import SITES_DIR

SITE = str(SITES_DIR / "algeciras-port.geojson")
T0 = 1_760_000_000


def encode(data: dict) -> list[str]:
    return pyais.encode_dict(data, radio_channel="A", talker_id="AI", sentence_type="VDM")


def write_log(path: Path) -> Path:
    """A minute of two vessels: one making 10 kn east that names itself (message 5), one class B at rest."""
    lines = []
    for k in range(6):
        east = {"type": 1, "mmsi": 224000001, "lat": 36.13, "lon": -5.43 + k * 0.00057, "speed": 10.0,
                "course": 90.0, "heading": 90}  # fmt: skip
        still = {"type": 18, "mmsi": 224000002, "lat": 36.12, "lon": -5.42, "speed": 0.0, "course": 0.0}
        lines += [f"{T0 + 10 * k} {s}" for s in encode(east) + encode(still)]
    static = {"type": 5, "mmsi": 224000001, "shipname": "GUARDIA UNO", "callsign": "EAB1", "ship_type": 55,
              "to_bow": 20, "to_stern": 10}  # fmt: skip
    lines += [f"{T0 + 55} {s}" for s in encode(static)]
    lines.append(f"{T0 + 56} !AIVDM,1,1,,A,13u?etPv2;0n:dDPwUM1U1Cb069D,0*00")  # a bad checksum
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_log_replayed_prints_each_vessel_and_what_was_dropped(tmp_path, capsys):
    log = write_log(tmp_path / "port.nmea")
    assert main(["ais", str(log), "--site", SITE, "--speed", "200"]) == 0
    out = capsys.readouterr().out
    assert f"AIS {log}: ended after 15 line(s), 2 vessel(s), 15 sentence(s), 13 report(s); dropped: 1 bad" in out
    named = next(line for line in out.splitlines() if "224000001" in line)
    assert "GUARDIA UNO" in named and "EAB1" in named and " 55 " in named and " 30 " in named
    assert "10.0" in named and " 90 " in named
    still = next(line for line in out.splitlines() if "224000002" in line)
    assert "0.0" in still
    assert "bad checksum in '!AIVDM,1,1,,A,13u?etPv2;0n:dDPwUM1U1Cb069D,0*00'" in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["ftp://x", "--site", SITE], "ftp://x"),
        (["missing.nmea", "--site", SITE], "missing.nmea"),
        (["x.nmea", "--site", SITE, "--every", "0"], "--every must be positive, not 0"),
        (["x.nmea", "--site", "nowhere.geojson"], "nowhere.geojson"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args, says, capsys):
    assert main(["ais", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err
