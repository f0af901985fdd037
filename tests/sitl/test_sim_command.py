"""`borderwatch sim` starts vehicles on the ports it prints and stops them."""

from __future__ import annotations

from groundstation.cli import main
from sitl.ground import GroundLink
from sitl.ports import free_port_block
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


def test_sim_at_a_site_starts_at_its_launch_point(capsys):
    base = free_port_block(1)
    site = SITES_DIR / "algeciras-port.geojson"
    assert main(["sim", "--site", str(site), "--base-port", str(base), "--duration", "0.2"]) == 0
    assert "home 36.128000,-5.438000" in capsys.readouterr().out


def test_sim_with_cameras_streams_video_of_the_site(tmp_path, capsys):
    import threading

    from vision.sources import open_source

    base, video = free_port_block(2), free_port_block(4)
    args = ["sim", "--vehicles", "2", "--camera", "--camera-dir", str(tmp_path), "--base-port", str(base),
            "--camera-base-port", str(video), "--camera-fps", "10", "--duration", "4"]  # fmt: skip
    frames = []

    def receive() -> None:  # the command owns the main thread: it handles Ctrl-C
        for _ in range(50):
            if (tmp_path / "camera-2.sdp").exists():
                break
            threading.Event().wait(0.1)
        with open_source(str(tmp_path / "camera-2.sdp")) as source:
            frames.append(source.read(3.0))

    receiver = threading.Thread(target=receive)
    receiver.start()
    assert main(args) == 0
    receiver.join(10)
    frame = frames[0] if frames else None
    assert frame is not None and frame.image.shape == (720, 1280, 3)
    out = capsys.readouterr().out
    assert f"camera 2: H.264/RTP to 127.0.0.1:{video + 2}" in out
    truth = (tmp_path / "camera-2.truth.jsonl").read_text().splitlines()
    assert len(truth) >= 20  # 10 fps for 4 s, minus start-up


def test_sim_rejects_nonsense_in_one_line(capsys):
    assert main(["sim", "--vehicles", "0"]) == 2
    assert "--vehicles" in capsys.readouterr().err
