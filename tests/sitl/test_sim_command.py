"""`borderwatch sim` starts vehicles on the ports it prints and stops them."""

from __future__ import annotations

import itertools
import json
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from groundstation.commands.cli import main
from groundstation.link.receiver import Handlers, Receiver, station_endpoint
from sitl.ground import GroundLink
from sitl.ports import free_port_block
from sitl.testdata import SITES_DIR
from vision.alerts import Alert, AlertSeverity, RuleKind
from vision.bus.address import credentials_in
from vision.bus.outbox import Outbox
from vision.bus.publisher import Endpoint, Publisher
from vision.detections import ObjectClass
from vision.sources import open_source


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


def test_sim_at_a_site_starts_at_its_launch_point(capsys):
    base = free_port_block(1)
    site = SITES_DIR / "algeciras-port.geojson"
    assert main(["sim", "--site", str(site), "--base-port", str(base), "--duration", "0.2"]) == 0
    assert "home 36.128000,-5.438000" in capsys.readouterr().out


def test_sim_with_cameras_streams_video_of_the_site(tmp_path, capsys):
    base, video = free_port_block(2), free_port_block(4)
    args = ["sim", "--vehicles", "2", "--camera", "--camera-dir", str(tmp_path), "--base-port", str(base),
            "--camera-base-port", str(video), "--camera-fps", "10", "--duration", "4",
            "--pki", str(tmp_path / "pki")]  # fmt: skip
    frames = _run_reading_a_frame(args, tmp_path / "camera-2.sdp", appear_s=5.0, read_s=3.0)
    frame = frames[0] if frames else None
    assert frame is not None and frame.image.shape == (720, 1280, 3)
    out = capsys.readouterr().out
    assert f"camera 2: H.264/RTP to 127.0.0.1:{video + 2}" in out
    truth = [json.loads(line) for line in (tmp_path / "camera-2.truth.jsonl").read_text().splitlines()]
    assert len(truth) >= 20  # 10 fps for 4 s, minus start-up
    # A frame every tenth of a second of the drones' own time, none skipped.
    times = [t["sim_time_s"] for t in truth]
    assert all(b - a == pytest.approx(0.1, abs=1e-3) for a, b in itertools.pairwise(times))


def test_sim_with_cameras_starts_a_broker_the_onboard_units_and_a_station_use(tmp_path, capsys):
    """No --broker: a mosquitto of the simulator's own, the certificates in --pki, a line saying how to start
    each unit; a unit with those certificates reaches a station, and the broker is gone after the sim."""
    base, video, folder = free_port_block(1), free_port_block(2), tmp_path / "pki"
    site = Path(__file__).resolve().parents[1] / "data" / "sites" / "algeciras-north.geojson"
    args = ["sim", "--site", str(site), "--camera", "--camera-dir",
            str(tmp_path), "--base-port", str(base), "--camera-base-port", str(video), "--camera-fps", "2",
            "--duration", "12", "--pki", str(folder)]  # fmt: skip
    heard: list = []
    early: list[str] = []

    def station_and_unit() -> None:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not (folder / "clients" / "unit-algeciras-north-1.crt").exists():
            time.sleep(0.1)
        time.sleep(1.0)  # the broker starts once the certificates are there
        early.append(capsys.readouterr().out)
        port = int(re.search(r"event bus: mqtts://127\.0\.0\.1:(\d+)", early[0])[1])
        heard.append(port)
        station = Receiver(station_endpoint(folder, "algeciras-north", "127.0.0.1", port), "algeciras-north",
                           handlers=Handlers(alert=lambda unit, a: heard.append((unit, a.alert_id))))  # fmt: skip
        c = credentials_in(folder, "unit-algeciras-north-1")
        endpoint = Endpoint("127.0.0.1", port, c.ca, c.cert, c.key)
        with station, Outbox(tmp_path / "outbox") as box, Publisher(endpoint, "algeciras-north", 1, box) as unit:
            assert station.wait_connected(5.0)
            time.sleep(0.3)
            unit.put_alert(make_alert(1))
            unit.wait_drained(5.0)
            time.sleep(0.5)

    worker = threading.Thread(target=station_and_unit)
    worker.start()
    assert main(args) == 0
    worker.join(20.0)
    out = "".join(early) + capsys.readouterr().out
    assert "unit 1: borderwatch onboard --mavlink " in out and "--unit unit-algeciras-north-1" in out
    assert heard[1:] == [(1, make_alert(1).alert_id)]
    with pytest.raises(OSError):  # stopped with the simulator
        socket.create_connection(("127.0.0.1", heard[0]), timeout=1.0).close()


def make_alert(n: int) -> Alert:
    return Alert(
        f"camera-1:enter-anchorage-{n}", 1_750_000_000.0 + n, "2025-06-15T15:06:40.000Z", RuleKind.ENTER, "Anchorage",
        4, AlertSeverity.HIGH, ObjectClass.VESSEL, n, 36.127, -5.4245, 1, f"vessel {n} entered Anchorage", "camera-1",
    )  # fmt: skip


def test_sim_rejects_nonsense_in_one_line(capsys):
    assert main(["sim", "--vehicles", "0"]) == 2
    assert "--vehicles" in capsys.readouterr().err


@pytest.mark.px4
@pytest.mark.timeout(240)
def test_sim_px4_with_cameras_renders_from_px4s_own_pose(tmp_path, capsys):
    """`sim --px4 DIR --camera`: a camera on a real PX4 SIH vehicle, drawn from the state PX4 simulates."""
    from sitl.px4_sitl.launcher import find_build_dir

    build = find_build_dir()
    video = free_port_block(2)
    args = ["sim", "--px4", str(build), "--camera", "--camera-dir", str(tmp_path), "--camera-fps", "4",
            "--camera-base-port", str(video), "--duration", "8", "--pki", str(tmp_path / "pki")]  # fmt: skip
    frames = _run_reading_a_frame(args, tmp_path / "camera-1.sdp", appear_s=90.0, read_s=6.0)  # PX4 starts slowly
    out = capsys.readouterr().out
    assert "camera 1: H.264/RTP to 127.0.0.1:" in out and "rendered from PX4's own state on UDP 19410" in out
    assert frames and frames[0] is not None and frames[0].image.shape == (720, 1280, 3)
    truth = [json.loads(line) for line in (tmp_path / "camera-1.truth.jsonl").read_text().splitlines()]
    assert len(truth) >= 16  # 4 frames a second of PX4's time for 8 s, minus start-up
    # Frames at instants of PX4's own time a quarter second apart; PX4 does not wait for its
    # cameras, so one that falls behind skips an instant now and then, but never repeats or reorders.
    times = [t["sim_time_s"] for t in truth]
    assert all(abs(t * 4 - round(t * 4)) < 4e-3 for t in times), times
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g > 0.2 for g in gaps) and sum(g == pytest.approx(0.25, abs=1e-3) for g in gaps) >= 0.75 * len(gaps)
    home = (36.128, -5.438)  # sim's home without --site
    pose = truth[-1]["pose"]
    # Where PX4 put its vehicle: on the ground at its home, 10 m above the sea, the camera straight down.
    assert abs(pose["lat_deg"] - home[0]) < 1e-4 and abs(pose["lon_deg"] - home[1]) < 1e-4
    assert pose["alt_m"] == pytest.approx(10.0, abs=1.0) and pose["gimbal_pitch_deg"] == -90.0


def _run_reading_a_frame(args: list[str], sdp: Path, appear_s: float, read_s: float) -> list:
    """Runs `borderwatch sim` with `args` (it owns the main thread: it handles Ctrl-C) while another
    thread waits up to `appear_s` for the camera's SDP file and reads one frame; [frame or None]."""
    frames: list = []

    def receive() -> None:
        deadline = time.monotonic() + appear_s
        while not sdp.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        with open_source(str(sdp)) as source:
            frames.append(source.read(read_s))

    receiver = threading.Thread(target=receive)
    receiver.start()
    assert main(args) == 0
    receiver.join(read_s + 10.0)
    return frames
