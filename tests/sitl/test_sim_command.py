"""`borderwatch sim` starts vehicles on the ports it prints and stops them."""

from __future__ import annotations

import pytest

from groundstation.cli import main
from sitl.ground import GroundLink
from sitl.pytest_plugin import free_port_block
from sitl.testdata import SITES_DIR


def test_sim_prints_each_vehicle_and_stops(capsys):
    base = free_port_block(2)
    with GroundLink(base + 1) as g:
        assert main(["sim", "--vehicles", "2", "--base-port", str(base), "--duration", "1.5"]) == 0
        heartbeats = [m for m in g.collect(0.2) if m.get_type() == "HEARTBEAT"]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"vehicle 1: system id 1, sends to 127.0.0.1:{base}, home 36.128000,-5.438000")
    assert out[1].startswith(f"vehicle 2: system id 2, sends to 127.0.0.1:{base + 1}")
    assert out[-1] == "sim: stopped"
    assert heartbeats and {m.get_srcSystem() for m in heartbeats} == {2}


@pytest.mark.skipif(not (SITES_DIR / "algeciras-port.geojson").exists(), reason="no shared site data")
def test_sim_at_a_site_starts_at_its_launch_point(capsys):
    base = free_port_block(1)
    site = SITES_DIR / "algeciras-port.geojson"
    assert main(["sim", "--site", str(site), "--base-port", str(base), "--duration", "0.2"]) == 0
    assert "home 36.128000,-5.438000" in capsys.readouterr().out


def test_sim_rejects_nonsense_in_one_line(capsys):
    assert main(["sim", "--vehicles", "0"]) == 2
    assert "--vehicles" in capsys.readouterr().err
