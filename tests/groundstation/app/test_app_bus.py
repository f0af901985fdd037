"""The app on the event bus: a real onboard process publishes through the app's own mosquitto, and
what it raises is in the Alerts panel, on the map and in the run folder; strangers, forgers and
malformed messages reach none of them, and the app keeps running and says what it refused."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from groundstation.app.async_loop import AsyncLoop
from groundstation.app.main_window import MainWindow
from groundstation.app.settings import RUNS_DIR_KEY, app_settings
from groundstation.app.station_link import BusConfig, BusInfo
from groundstation.app.tiles import TileSource
from groundstation.link import identity as ids
from groundstation.link import pki
from groundstation.link.broker import free_port
from missions.formats import load_site
from sitl.synthetic.scenarios import hover_over_zone
from sitl.testdata import SITES_DIR
from vision.alerts import Alert, AlertSeverity, RuleKind
from vision.bus import payloads
from vision.bus.address import parse_broker_url
from vision.bus.outbox import Outbox
from vision.bus.publisher import Endpoint, Publisher
from vision.bus.topics import unit_topic
from vision.detections import ObjectClass
from vision.evidence import LOG_NAME, SNAPSHOTS, EvidenceLog, EvidenceRecord
from vision.evidence_verify import verify

pytestmark = [pytest.mark.gui, pytest.mark.slow]

SITE = SITES_DIR / "algeciras-port.geojson"
WAIT_MS = 15000


@pytest.fixture
def bus_window(qtbot, tmp_path):
    """The operator's window on a bus of its own (two unit certificates), runs under tmp_path."""
    made: list[MainWindow] = []
    loop = AsyncLoop()
    loop.start()

    def make(config: BusConfig) -> MainWindow:
        settings = app_settings(tmp_path / "settings.ini")
        settings.setValue(RUNS_DIR_KEY, str(tmp_path / "runs"))
        w = MainWindow(settings, loop=loop, tiles=TileSource.none(), bus=config)
        qtbot.addWidget(w)
        made.append(w)
        w.show()
        qtbot.waitUntil(lambda: w.map.is_ready, timeout=20000)
        return w

    yield make
    for w in made:
        w.close()
    loop.stop()


def on_site_bus(qtbot, w: MainWindow) -> BusInfo:
    assert w.open_site(SITE)
    qtbot.waitUntil(w.link.is_connected, timeout=WAIT_MS)
    assert w.link.info is not None
    return w.link.info


def records(directory: Path) -> list[EvidenceRecord]:
    lines = (directory / LOG_NAME).read_text().splitlines()
    return [EvidenceRecord.from_json(json.loads(line)) for line in lines]


def fleet_log(w: MainWindow) -> str:
    return w.fleet_panel.log.toPlainText()


def test_an_onboard_alert_reaches_the_alerts_panel_with_its_snapshot_the_map_and_the_run_folder(
    bus_window, qtbot, tmp_path, screenshot
):
    w = bus_window(BusConfig(units=2))
    info = on_site_bus(qtbot, w)
    assert info.embedded and info.site == "algeciras-port" and info.url.startswith("mqtts://127.0.0.1:")
    assert info.url in w.units_view.bus_line.text()
    run_dir = w.start_recording()
    onboard = tmp_path / "unit-1"
    with hover_over_zone(load_site(SITE), "Eastern anchorage", tmp_path / "video") as hover:
        unit = subprocess.Popen(
            [sys.executable, "-m", "vision.onboard", "--mavlink", hover.onboard_url, "--source", str(hover.sdp_path),
             "--site", str(SITE), "--evidence", str(onboard / "evidence"), "--broker", info.url,
             "--pki", str(info.pki_dir), "--unit", info.unit_identity(1), "--max-frames", "90"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            # While it flies: an alert with its snapshot in the panel, the unit online with its frame rate, its
            # detections on the map.
            qtbot.waitUntil(
                lambda: (
                    any(e.snapshot_jpeg for e in w.alerts_model.entries())
                    and any(r[:2] == ("unit-1", "online") and float(r[2]) > 0 for r in w.units_view.rows())
                    and any(key.startswith("unit-1 camera-1#") for key in w.map.js("bw.inspect.detections()"))
                ),
                timeout=60000,
            )
            qtbot.wait(300)  # what is queued lands, for a picture of one moment
            w.alerts_panel.select(next(e for e in w.alerts_model.entries() if e.snapshot_jpeg).alert.alert_id)
            w.units_view.refresh()
            shot = screenshot(w, "app-bus-onboard-alert")
            qtbot.waitUntil(lambda: unit.poll() is not None, timeout=60000)
        finally:
            if unit.poll() is None:
                unit.kill()
        output = unit.communicate(timeout=10)[0]
    assert unit.returncode == 0, output
    assert shot.exists()

    logged = records(onboard / "evidence")
    raised = {r.payload["alert"]["alert_id"]: r for r in logged if "alert" in r.payload}
    assert raised, output
    # Every record the unit logged is with the station before the run closes.
    qtbot.waitUntil(
        lambda: (
            [(v.unit, v.evidence_copied[0], v.evidence_head[0]) for v in w.link.unit_views()]
            == [(1, len(logged), len(logged))]
        ),
        timeout=WAIT_MS,
    )
    qtbot.waitUntil(lambda: len(w.alerts_model.entries()) == len(raised), timeout=WAIT_MS)
    for entry in w.alerts_model.entries():
        record = raised[entry.alert.alert_id]
        assert entry.alert.source.startswith("unit-1 ")
        assert entry.snapshot_jpeg == (onboard / "evidence" / SNAPSHOTS / record.snapshot).read_bytes()
    assert sorted(w.map.js("bw.inspect.alerts()")) == sorted(raised)
    w.units_view.refresh()
    (row,) = w.units_view.rows()
    assert row[0] == "unit-1" and row[4] == str(len(raised)) and row[5] == f"{len(logged)}/{len(logged)} ✓"

    assert w.stop_recording() == run_dir
    alerts = [json.loads(line) for line in (run_dir / "alerts.jsonl").read_text().splitlines()]
    assert sorted(a["alert_id"] for a in alerts) == sorted(raised)
    copy = verify(run_dir / "onboard" / "unit-1")
    assert copy.ok and copy.records == len(logged) and copy.snapshots_verified == len(raised), copy
    assert (run_dir / "onboard" / "unit-1" / LOG_NAME).read_bytes() == (onboard / "evidence" / LOG_NAME).read_bytes()
    head = json.loads((run_dir / "run.json").read_text())["onboard"]["unit-1"]
    assert head == {"head_seq": logged[-1].seq, "head_sha256": logged[-1].sha256}
    assert (run_dir / "detections.jsonl").stat().st_size > 0


class Client:
    """One MQTT v5 client over TLS that says whether the broker let it in, every wait bounded."""

    def __init__(self, info: BusInfo, context: ssl.SSLContext, name: str) -> None:
        self.address = parse_broker_url(info.url)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5, reconnect_on_failure=False
        )
        self.client.tls_set_context(context)
        self.accepted: bool | None = None
        self._answered = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self._answered.set()

    def connect(self) -> bool:
        try:
            self.client.connect(self.address.host, self.address.port, keepalive=10)
        except (OSError, ssl.SSLError):
            return False
        self.client.loop_start()
        self._answered.wait(5.0)
        return bool(self.accepted)

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=5.0)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.accepted = not reason_code.is_failure
        self._answered.set()


def context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    made = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        made.load_cert_chain(str(cert), str(key))
    return made


def make_alert(n: int, unit: int) -> Alert:
    return Alert(
        f"unit{unit}:enter-anchorage-{n}", 1_750_000_000.0 + n, "2025-06-15T15:06:40.000Z", RuleKind.ENTER,
        "Eastern anchorage", 4, AlertSeverity.HIGH, ObjectClass.VESSEL, n, 36.127, -5.4245, 1,
        f"vessel {n} entered Eastern anchorage", "camera-1",
    )  # fmt: skip


def test_strangers_forgers_and_malformed_messages_reach_neither_the_app_nor_the_run_folder(bus_window, qtbot, tmp_path):
    w = bus_window(BusConfig(units=2))
    info = on_site_bus(qtbot, w)
    run_dir = w.start_recording()
    ours = pki.client_credentials(info.pki_dir, ids.unit(info.site, 2))
    clients: list[Client] = []

    def client(ctx: ssl.SSLContext, name: str) -> Client:
        clients.append(Client(info, ctx, name))
        return clients[-1]

    foreign = tmp_path / "foreign-pki"
    pki.init(foreign)
    theirs = pki.issue(foreign, ids.unit(info.site, 1))  # another CA's certificate, bearing our unit's name
    try:
        assert not client(context(ours.ca), "anonymous").connect()
        assert not client(context(ours.ca, theirs.cert, theirs.key), info.unit_identity(1)).connect()
        unit2 = client(context(ours.ca, ours.cert, ours.key), info.unit_identity(2))
        assert unit2.connect()
        forged = make_alert(1, unit=1)
        unit2.publish(unit_topic(info.site, 1, "alerts"), payloads.alert_payload(info.site, 1, forged))  # ACL
        unit2.publish(unit_topic(info.site, 2, "alerts"), payloads.alert_payload(info.site, 1, make_alert(2, 1)))
        unit2.publish(unit_topic(info.site, 2, "alerts"), b"{not json")
        unit2.publish(unit_topic(info.site, 2, "evidence"), b'{"v": 1, "site": "algeciras-port", "unit": 2}')
        unit2.publish(unit_topic(info.site, 2, "detections"), b"\xff\xfe")
        honest = make_alert(3, unit=2)
        unit2.publish(unit_topic(info.site, 2, "alerts"), payloads.alert_payload(info.site, 2, honest))
        # The honest alert, published last, arrives; by then everything before it has been handled.
        qtbot.waitUntil(lambda: w.alerts_model.find(honest.alert_id) is not None, timeout=WAIT_MS)
    finally:
        for c in clients:
            c.close()
    assert [e.alert.alert_id for e in w.alerts_model.entries()] == [honest.alert_id]
    assert w.map.js("bw.inspect.alerts()") == [honest.alert_id]
    malformed = [line for line in fleet_log(w).splitlines() if "malformed message dropped" in line]
    assert len(malformed) >= 1 and unit_topic(info.site, 2, "alerts") in "\n".join(malformed), fleet_log(w)
    assert w.link.is_connected() and w.isVisible()
    w.units_view.refresh()
    assert [r[0] for r in w.units_view.rows()] == ["unit-2"]
    w.stop_recording()
    alerts = [json.loads(line)["alert_id"] for line in (run_dir / "alerts.jsonl").read_text().splitlines()]
    assert alerts == [honest.alert_id]
    assert not (run_dir / "onboard" / "unit-1").exists()


def test_each_run_holds_the_units_whole_chain_though_the_unit_began_before_it(bus_window, qtbot, tmp_path):
    w = bus_window(BusConfig(units=1))
    info = on_site_bus(qtbot, w)
    creds = pki.client_credentials(info.pki_dir, ids.unit(info.site, 1))
    address = parse_broker_url(info.url)
    endpoint = Endpoint(address.host, address.port, creds.ca, creds.cert, creds.key)
    onboard = tmp_path / "onboard"

    def copied() -> int:
        views = w.link.unit_views()
        return views[0].evidence_copied[0] if views else 0

    with (
        EvidenceLog.open(onboard) as log,
        Outbox(tmp_path / "outbox") as box,
        Publisher(endpoint, info.site, 1, box) as unit,
    ):

        def raise_alert(n: int) -> None:
            alert, jpeg = make_alert(n, unit=1), b"\xff\xd8" + bytes([n]) * 100 + b"\xff\xd9"
            unit.put_alert(alert)
            unit.put_evidence(log.append("alert", {"alert": alert.to_json_dict()}, snapshot_jpeg=jpeg), jpeg, None)
            qtbot.waitUntil(lambda: copied() == n, timeout=WAIT_MS)

        raise_alert(1)
        raise_alert(2)
        first = w.start_recording(tmp_path / "run-1")
        raise_alert(3)
        w.stop_recording()
        raise_alert(4)
        second = w.start_recording(tmp_path / "run-2")
        raise_alert(5)
        w.stop_recording()
    whole = (onboard / LOG_NAME).read_bytes()
    for run_dir, count in ((first, 3), (second, 5)):
        copy = verify(run_dir / "onboard" / "unit-1")
        assert copy.ok and copy.records == count and copy.snapshots_verified == count, copy
        assert whole.startswith((run_dir / "onboard" / "unit-1" / LOG_NAME).read_bytes())
        alerts = [json.loads(line)["alert_id"] for line in (run_dir / "alerts.jsonl").read_text().splitlines()]
        assert alerts == [make_alert(count, unit=1).alert_id]
    assert "chain breaks" not in fleet_log(w)
    qtbot.waitUntil(lambda: [bool(e.snapshot_jpeg) for e in w.alerts_model.entries()] == [True] * 5, timeout=WAIT_MS)


def test_an_unreachable_broker_or_a_missing_certificate_is_a_line_in_the_log_and_the_app_runs_on(
    bus_window, qtbot, tmp_path
):
    folder = tmp_path / "pki"
    pki.init(folder)
    pki.issue(folder, ids.station("algeciras-port"))
    url = f"mqtts://127.0.0.1:{free_port()}"
    w = bus_window(BusConfig(url, folder))
    assert w.open_site(SITE)
    qtbot.waitUntil(lambda: f"broker {url}: cannot connect as station-algeciras-port" in fleet_log(w), timeout=WAIT_MS)
    assert "station not connected" in w.units_view.bus_line.text()

    other = tmp_path / "empty-pki"
    pki.init(other)
    w2 = bus_window(BusConfig(url, other))
    assert w2.open_site(SITE)
    assert "station-algeciras-port.crt: missing" in fleet_log(w2)
    assert w2.link.info is None and w2.isVisible()


def borderwatch(*args: str, timeout_s: float = 90.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-m", "groundstation.commands.cli", *args],
                          capture_output=True, text=True, timeout=timeout_s, env=env)  # fmt: skip


def test_the_gui_command_says_where_its_own_broker_listens_and_stops_it_when_terminated(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    gui = subprocess.Popen(
        [sys.executable, "-m", "groundstation.commands.cli", "gui", str(SITE), "--settings", str(tmp_path / "s.ini"),
         "--runs", str(tmp_path / "runs"), "--units", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    watchdog = threading.Timer(60.0, gui.kill)
    watchdog.start()
    try:
        said = [gui.stdout.readline() for _ in range(3)]
        gui.send_signal(signal.SIGTERM)
        gui.communicate(timeout=30)
    finally:
        watchdog.cancel()
        if gui.poll() is None:
            gui.kill()
    assert gui.returncode == 0, said
    bus = re.match(r"event bus mqtts://127\.0\.0\.1:(\d+) \(the app's own mosquitto\), site algeciras-port", said[0])
    assert bus, said
    assert said[2].strip().startswith(f"unit 2: borderwatch onboard … --broker mqtts://127.0.0.1:{bus[1]} --pki ")
    assert said[2].strip().endswith("--unit unit-algeciras-port-2")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(bus[1])), timeout=1).close()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--broker", "tcp://example.org:1883"], "expected mqtts://HOST:PORT"),
        (["--broker", "mqtts://example.org:8883"], "also give --pki DIR"),
        (["--units", "0"], "--units 0"),
    ],
)
def test_bad_bus_arguments_are_one_line_before_any_window(args, says):
    done = borderwatch("gui", *args, timeout_s=60.0)
    assert done.returncode == 2
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
