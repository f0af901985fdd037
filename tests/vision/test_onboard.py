"""`borderwatch onboard` on a companion computer that has neither Qt nor torch: a subprocess in
which importing torch, ultralytics, PyQt6 or MAVSDK fails, reading a simulated drone's camera
over RTP and its pose over MAVLink, sending detections and alerts to a ground station socket.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time

import pytest

from missions.formats import load_site
from sitl.ports import free_port_block
from sitl.synthetic.scenarios import hover_over_zone
from sitl.tak import TakReceiver
from sitl.testdata import SITES_DIR
from vision.alerts import Alert
from vision.cot.model import CotEncoding

pytestmark = pytest.mark.slow

SITE = SITES_DIR / "algeciras-port.geojson"
# What a companion computer does not have: any import of these fails in the child.
WITHOUT = "import sys; sys.modules.update(dict.fromkeys(['torch', 'ultralytics', 'PyQt6', 'mavsdk'], None)); "
ONBOARD = WITHOUT + "from vision.onboard import main; raise SystemExit(main(sys.argv[1:]))"


def run_onboard(args: list[str], timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", ONBOARD, *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )


def datagrams_until_exit(child: subprocess.Popen, ground: socket.socket, timeout_s: float) -> list[dict]:
    """The JSON datagrams the unit sends the ground until it exits (killed after `timeout_s`)."""
    messages = []
    deadline = time.monotonic() + timeout_s
    while child.poll() is None and time.monotonic() < deadline:
        try:
            messages.append(json.loads(ground.recv(65536)))
        except TimeoutError:
            continue
    if child.poll() is None:
        child.kill()
    return messages


def test_onboard_sends_located_detections_and_alerts_without_torch_or_qt(tmp_path):
    site = load_site(SITE)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ground, TakReceiver.tcp() as tak:
        ground.bind(("127.0.0.1", 0))
        ground.settimeout(0.2)
        port = ground.getsockname()[1]
        with hover_over_zone(site, "Eastern anchorage", tmp_path / "video") as hover:
            child = subprocess.Popen(
                [sys.executable, "-c", ONBOARD,
                 "--mavlink", hover.onboard_url, "--source", str(hover.sdp_path), "--site", str(SITE),
                 "--ground", f"127.0.0.1:{port}", "--evidence", str(tmp_path / "evidence"), "--max-frames", "120",
                 "--cot", f"{tak.url}?format=protobuf"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            messages = datagrams_until_exit(child, ground, 90.0)
            drone = hover.fleet.vehicles[0].state()
            drone_lat, drone_lon = drone.lat_deg, drone.lon_deg
            out, err = child.communicate(timeout=10)
    assert child.returncode == 0, err
    assert "120 frames" in out
    frames = [m for m in messages if m.get("type") == "detections"]
    alerts = [Alert.from_json_dict(m) for m in messages if "alert_id" in m]
    vessels = [d for m in frames for d in m["items"] if d["class"] == "vessel" and d["lat_deg"] is not None]
    assert len(frames) > 30 and len(vessels) > 30
    # Every located vessel lies within the camera's footprint around the drone, none somewhere made up.
    cx, cy = site.frame.xy(drone_lon, drone_lat)
    far = [d for d in vessels if math.dist(site.frame.xy(d["lon_deg"], d["lat_deg"]), (cx, cy)) > 90.0]
    assert not far
    assert any(a.zone == "Eastern anchorage" and a.object_class.value == "vessel" for a in alerts)
    # The same picture on a TAK server, in TAK protobuf: the drone where it hovers, its tracks, its alerts.
    cot = tak.received
    assert cot and all(r.encoding is CotEncoding.PROTOBUF for r in cot)
    uids = {r.uid for r in cot}
    [drone_event, *_] = [r.event for r in cot if r.uid == "borderwatch.algeciras-port.drone-1"]
    point = drone_event.find("point")
    assert math.dist(site.frame.xy(float(point.get("lon")), float(point.get("lat"))), (cx, cy)) < 2.0
    assert any(".track-" in u for u in uids) and any(".alert." in u for u in uids)
    assert any(u.endswith(".zone.Eastern-anchorage") for u in uids)


def test_onboard_names_a_bad_source_and_exits_2(tmp_path):
    done = run_onboard(["--mavlink", "udpin:127.0.0.1:0", "--source", str(tmp_path / "nope.sdp")], 60.0)
    assert done.returncode == 2
    assert "nope.sdp" in done.stderr and "no such file" in done.stderr


@pytest.mark.parametrize(
    ("bus", "says"),
    [
        (["--broker", "mqtts://127.0.0.1:8883", "--unit", "unit-algeciras-1"], "--pki missing"),
        (["--broker", "mqtt://127.0.0.1:1883", "--pki", "{pki}", "--unit", "unit-algeciras-1"], "TLS only"),
        (["--broker", "mqtts://127.0.0.1", "--pki", "{pki}", "--unit", "algeciras-1"], "not a unit's identity"),
        (["--broker", "mqtts://127.0.0.1", "--pki", "{pki}", "--unit", "unit-algeciras-1"], ".crt: missing"),
    ],
    ids=["no-pki", "plain-mqtt", "bad-identity", "no-certificate"],
)  # fmt: skip
def test_onboard_names_a_bad_bus_option_and_exits_2(tmp_path, bus, says):
    (tmp_path / "pki" / "clients").mkdir(parents=True)
    (tmp_path / "pki" / "ca.crt").write_text("not checked before the certificate is found\n")
    args = [a.replace("{pki}", str(tmp_path / "pki")) for a in bus]
    done = run_onboard(["--mavlink", "udpin:127.0.0.1:0", "--source", str(tmp_path / "cam.sdp"), *args], 60.0)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr


def test_onboard_with_ais_names_the_vessels_it_sees_and_never_the_dark_one(tmp_path):
    """The companion computer reads the world's AIS over UDP: the crossing vessels it tracks are bound to their
    own MMSIs in the detections it sends; the dark one, which sends nothing, never is."""
    from sitl.synthetic.ais import AisScenario, Role, VesselAis, broadcast_world

    site = load_site(SITE)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ground:
        ground.bind(("127.0.0.1", 0))
        ground.settimeout(0.2)
        ais_port = free_port_block(1)  # free now; the unit binds it
        with hover_over_zone(site, "Eastern anchorage", tmp_path / "video") as hover:
            scenario = AisScenario({0: VesselAis(Role.DARK)})
            child = subprocess.Popen(
                [sys.executable, "-c", ONBOARD,
                 "--mavlink", hover.onboard_url, "--source", str(hover.sdp_path), "--site", str(SITE),
                 "--ground", f"127.0.0.1:{ground.getsockname()[1]}", "--ais", f"udp://127.0.0.1:{ais_port}",
                 "--max-frames", "400"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            time.sleep(3.0)  # the unit opens its AIS port before the transponders talk
            url = f"udp://127.0.0.1:{ais_port}"
            with broadcast_world(hover.cameras, scenario, url, tmp_path / "ais-truth.json", site.frame) as b:
                truth = b.ground_truth()["vessels"]
                messages = datagrams_until_exit(child, ground, 120.0)
            _out, err = child.communicate(timeout=10)
    assert child.returncode == 0, err
    named = {d["mmsi"] for m in messages if m.get("type") == "detections" for d in m["items"] if d.get("mmsi")}
    roles = {v["mmsi"]: v["role"] for v in truth}
    assert named, "no tracked vessel was bound to its AIS"
    assert {roles[m] for m in named} == {"normal"}
