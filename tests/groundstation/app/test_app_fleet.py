"""The Fleet panel and its controller against the built-in simulator, as an operator uses them:
connect, watch the table, upload, start (confirmed or not), pause, resume, return, land, two
sorties in a row, and a vehicle that goes silent.

Screenshots: out/screenshots/fleet-connected.png, fleet-flying.png.
"""

from __future__ import annotations

import threading
import time

import pytest
from PyQt6.QtCore import QSettings, Qt

from groundstation.app.async_loop import AsyncLoop
from groundstation.app.fleet_controller import FleetController
from groundstation.app.fleet_panel import _LOST, COLUMNS, FleetPanel
from groundstation.fleet import FleetError
from groundstation.fleet.flight import FlightOptions
from missions.plan import FencePolygon, MissionItem, MissionPlan, Waypoint
from sitl.ports import free_port_block

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]

D = 0.0009  # ~100 m of latitude


def small_plan(home: tuple[float, float], *, east: float = 1.0, laps: int = 0) -> MissionPlan:
    """Take off, three waypoints' worth of square (the last leg `east` times D long), home."""
    lat, lon = home
    items = [
        MissionItem.takeoff(lat, lon, 20.0),
        MissionItem.change_speed(10.0),
        MissionItem.waypoint(lat + D, lon, 20.0),
        MissionItem.waypoint(lat + D, lon + east * D, 20.0),
    ]
    if laps:
        items.append(MissionItem.jump(3, laps))
    items.append(MissionItem.return_to_launch())
    return MissionPlan(items=tuple(items), home=Waypoint(lat, lon, 10.0), name="small")


class Recorder:
    """What a RunRecorder is to the controller: called from the loop thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.states: list = []
        self.events: list = []
        self.plans: list[tuple[int, int]] = []
        self.threads: set[str] = set()

    def record_state(self, state) -> None:
        with self.lock:
            self.states.append(state)
            self.threads.add(threading.current_thread().name)

    def record_event(self, event) -> None:
        with self.lock:
            self.events.append(event)

    def add_plan(self, vehicle: int, plan: MissionPlan, sortie: int = 1) -> None:
        with self.lock:
            self.plans.append((vehicle, sortie))


@pytest.fixture
def controller():
    loop = AsyncLoop(name="fleet-test-asyncio")
    loop.start()
    c = FleetController(loop, options=FlightOptions(health_timeout_s=20, start_retry_s=10))
    yield c
    started = time.monotonic()
    c.shutdown(5.0)
    assert time.monotonic() - started < 6.0
    assert not loop.running and loop.thread is None


@pytest.fixture
def panel(qtbot, controller):
    p = FleetPanel(controller)
    qtbot.addWidget(p)
    p.resize(980, 560)
    p.show()
    return p


def cell(panel: FleetPanel, vehicle: int, column: str) -> str:
    item = panel.table.item(vehicle, COLUMNS.index(column))
    return item.text() if item is not None else ""


def connect(qtbot, panel: FleetPanel, urls: list[str]) -> None:
    panel.set_urls(urls)
    started = time.monotonic()
    qtbot.mouseClick(panel.connect_button, Qt.MouseButton.LeftButton)
    assert time.monotonic() - started < 0.1  # the UI thread never waits for the link
    assert panel.connect_button.text() == "Connecting…"
    qtbot.waitUntil(lambda: panel.connect_button.text() == "Disconnect", timeout=15_000)

    def known(v: int) -> bool:  # each stream has spoken: link, battery, mode, landed state
        shown = [cell(panel, v, c) for c in ("Link", "Battery", "Mode", "Armed")]
        return shown[0] == "ok" and shown[1].endswith("%") and shown[2] != "—" and "," in shown[3]

    for v in range(len(urls)):
        qtbot.waitUntil(lambda v=v: known(v))


def click(qtbot, panel: FleetPanel, vehicle: int, action: str) -> None:
    panel.select_vehicle(vehicle)
    button = panel.buttons[action]
    qtbot.waitUntil(button.isEnabled, timeout=10_000)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


@pytest.mark.slow
def test_connected_vehicles_show_in_the_table_and_a_refused_start_sends_nothing(qtbot, sim_fleet, panel, screenshot):
    sim = sim_fleet(2)
    assert panel.connect_button.isEnabled()
    assert not any(b.isEnabled() for b in (*panel.buttons.values(), *panel.all_buttons.values()))

    connect(qtbot, panel, [v.connect_url for v in sim.vehicles])
    assert panel.count.value() == 2 and panel.table.rowCount() == 2
    for v in (0, 1):
        assert cell(panel, v, "Vehicle") == f"vehicle {v + 1}"
        assert cell(panel, v, "Armed") == "disarmed, on ground"
        assert cell(panel, v, "Mode") not in ("", "unknown", "—")
        assert float(cell(panel, v, "Battery").removesuffix(" %")) > 90
        assert abs(float(cell(panel, v, "Altitude").removesuffix(" m"))) < 1.0
    assert not panel.buttons["start"].isEnabled()  # no plan yet
    assert not panel.urls_edit.isEnabled()

    panel.set_plans({0: [small_plan(sim.vehicles[0].home)]})
    panel.select_vehicle(0)
    assert panel.buttons["upload"].isEnabled() and panel.buttons["start"].isEnabled()
    assert not panel.buttons["pause"].isEnabled() and not panel.buttons["land"].isEnabled()
    panel.select_vehicle(1)
    assert not panel.buttons["start"].isEnabled()  # vehicle 2 has no plan and no mission

    asked: list[str] = []
    panel.confirm = lambda question: asked.append(question) or False
    sent: list[tuple[int, str]] = []
    panel.controller.busy.connect(lambda v, action: sent.append((v, action)))
    click(qtbot, panel, 0, "start")
    assert len(asked) == 1 and asked[0].startswith("Start vehicle 1?") and "1 sortie" in asked[0]
    qtbot.wait(1000)
    assert sent == []
    assert sim.vehicles[0].uploaded(0) == [] and not sim.vehicles[0].state().armed
    assert "vehicle 1: start cancelled" in panel.log.toPlainText()
    # Everything sent to all vehicles asks too, even what is harmless for one.
    click(qtbot, panel, 0, "upload")
    qtbot.waitUntil(lambda: len(sim.vehicles[0].uploaded(0)) == 5, timeout=10_000)
    assert len(asked) == 1  # uploading one vehicle's plan does not ask
    panel.set_plans({0: [small_plan(sim.vehicles[0].home)], 1: [small_plan(sim.vehicles[1].home)]})
    qtbot.waitUntil(panel.all_buttons["upload"].isEnabled)
    qtbot.mouseClick(panel.all_buttons["upload"], Qt.MouseButton.LeftButton)
    assert len(asked) == 2 and asked[1].startswith("Upload the plan to vehicles 1, 2?")
    qtbot.wait(500)
    assert sim.vehicles[1].uploaded(0) == []
    screenshot(panel, "fleet-connected")


@pytest.mark.slow
def test_upload_start_pause_resume_return_land_and_two_sorties_in_a_row(qtbot, sim_fleet, panel, screenshot):
    sim = sim_fleet(2)
    recorder = Recorder()
    panel.controller.set_recorder(recorder)
    seen: list = []
    seen_at: list[float] = []
    panel.controller.states.connect(seen.append)
    panel.controller.states.connect(lambda _: seen_at.append(time.monotonic()))
    failures: list[str] = []
    panel.controller.failed.connect(failures.append)
    asked: list[str] = []
    panel.confirm = lambda question: asked.append(question.split("?")[0]) or True
    connect(qtbot, panel, [v.connect_url for v in sim.vehicles])

    home0, home1 = sim.vehicles[0].home, sim.vehicles[1].home
    panel.set_plans({0: [small_plan(home0), small_plan(home0, east=-1.0)], 1: [small_plan(home1, laps=5)]})
    click(qtbot, panel, 0, "upload")
    qtbot.waitUntil(lambda: len(sim.vehicles[0].uploaded(0)) == 5, timeout=10_000)
    assert asked == []
    qtbot.waitUntil(lambda: panel.buttons["start"].isEnabled())
    click(qtbot, panel, 0, "start")
    click(qtbot, panel, 1, "start")
    assert asked == ["Start vehicle 1", "Start vehicle 2"]
    assert not panel.fly_selected()  # vehicle 2 is flying already: nothing sent, nothing asked

    qtbot.waitUntil(lambda: float(cell(panel, 1, "Altitude").removesuffix(" m")) > 15, timeout=30_000)
    qtbot.waitUntil(lambda: panel.controller.latest[1].mission_reached >= 3, timeout=20_000)
    assert panel.table.cellWidget(1, COLUMNS.index("Mission")).value() >= 3
    screenshot(panel, "fleet-flying")

    click(qtbot, panel, 1, "pause")
    qtbot.waitUntil(lambda: cell(panel, 1, "Mode") == "hold", timeout=10_000)
    assert not panel.buttons["pause"].isEnabled()
    click(qtbot, panel, 1, "resume")
    qtbot.waitUntil(lambda: cell(panel, 1, "Mode") == "mission", timeout=10_000)
    click(qtbot, panel, 1, "return")
    qtbot.waitUntil(lambda: cell(panel, 1, "Mode") == "return to launch", timeout=10_000)
    click(qtbot, panel, 1, "land")
    qtbot.waitUntil(lambda: cell(panel, 1, "Mode") == "land", timeout=10_000)
    assert asked[2:] == [
        "Send vehicle 2 back to launch",
        "Land vehicle 2 where it is now",
    ]  # pause and resume do not ask
    qtbot.waitUntil(lambda: cell(panel, 1, "Armed") == "disarmed, on ground", timeout=40_000)

    qtbot.waitUntil(lambda: "vehicle 1: sortie 2/2: done" in panel.log.toPlainText(), timeout=60_000)
    log = panel.log.toPlainText()
    assert "vehicle 1: sortie 1/2: done" in log and "vehicle 1: mission started" in log
    qtbot.waitUntil(lambda: cell(panel, 0, "Armed") == "disarmed, on ground")  # the table follows within 0.1 s
    assert not sim.vehicles[0].state().armed
    assert max(s[0].rel_alt_m for s in seen if s[0].link_ok and s[0].armed) > 15
    assert len(seen_at) / (seen_at[-1] - seen_at[0]) <= 10.5  # throttled for the UI
    assert max(s[0].mission_reached for s in seen) >= 4
    # Landing vehicle 2 by hand ended its sortie short: said once, naming the vehicle and the action.
    assert [f for f in failures if f.startswith("vehicle 2: fly: sortie 1/1")], failures
    assert not [f for f in failures if f.startswith("vehicle 1")], failures
    assert (0, 1) in recorder.plans and (0, 2) in recorder.plans and (1, 1) in recorder.plans
    assert recorder.threads == {"fleet-test-asyncio"}
    assert any("sortie 2/2" in e.message for e in recorder.events)
    assert {s.vehicle for s in recorder.states} == {0, 1}


@pytest.mark.slow
def test_a_vehicle_that_stops_answering_shows_as_lost_and_the_log_says_so(qtbot, sim_fleet, panel):
    sim = sim_fleet(1)
    failures: list[str] = []
    panel.controller.failed.connect(failures.append)
    connect(qtbot, panel, [sim.vehicles[0].connect_url])
    sim.stop()
    qtbot.waitUntil(lambda: cell(panel, 0, "Link") == "LOST", timeout=8_000)
    assert panel.table.item(0, 0).background().color() == _LOST
    assert "vehicle 1: link lost" in panel.log.toPlainText()
    assert any(f.startswith("vehicle 1: link lost") for f in failures)
    panel.set_plans({0: [small_plan(sim.vehicles[0].home)]})
    panel.select_vehicle(0)
    assert not any(b.isEnabled() for b in panel.buttons.values())

    qtbot.mouseClick(panel.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.connect_button.text() == "Connect", timeout=10_000)
    assert cell(panel, 0, "Link") == "—" and panel.urls_edit.isEnabled()


def test_commands_without_a_link_and_a_vehicle_nobody_answers_for_fail_in_one_line(qtbot, controller, panel):
    failures: list[str] = []
    controller.failed.connect(failures.append)
    future = controller.upload(0, small_plan((36.1, -5.4)))
    with pytest.raises(FleetError):
        future.result(timeout=5)
    qtbot.waitUntil(lambda: failures == ["vehicle 1: upload: not connected"])

    port = free_port_block(1)
    future = controller.connect_fleet([f"udpin://127.0.0.1:{port}"], timeout_s=1.0)
    with pytest.raises(FleetError, match="no autopilot"):
        future.result(timeout=10)
    qtbot.waitUntil(lambda: len(failures) == 2)
    assert failures[1].startswith("vehicle 1: connect: no autopilot heard on")
    assert not controller.is_connected

    panel.set_urls([f"udpin://127.0.0.1:{port}"])
    panel.connect_timeout_s = 1.0
    qtbot.mouseClick(panel.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.connect_button.text() == "Connect", timeout=10_000)
    assert "no autopilot heard" in panel.log.toPlainText()


def test_urls_and_column_widths_persist(qtbot, controller, tmp_path):
    settings = QSettings(str(tmp_path / "fleet.ini"), QSettings.Format.IniFormat)
    first = FleetPanel(controller)
    qtbot.addWidget(first)
    first.count.setValue(3)
    assert first.urls() == [f"udpin://0.0.0.0:{14540 + i}" for i in range(3)]
    first.set_urls(["udpin://0.0.0.0:14600", "udpin://0.0.0.0:14601"])
    first.table.setColumnWidth(2, 211)
    first.save_state(settings)
    settings.sync()

    again = FleetPanel(controller, QSettings(str(tmp_path / "fleet.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    assert again.urls() == ["udpin://0.0.0.0:14600", "udpin://0.0.0.0:14601"]
    assert again.count.value() == 2 and again.table.rowCount() == 2
    assert again.table.columnWidth(2) == 211


def test_rows_turn_amber_when_stale_red_when_lost_and_say_so(qtbot, controller):
    from groundstation.app.fleet_panel import _STALE
    from groundstation.fleet import LandedState, VehicleState

    panel = FleetPanel(controller)
    qtbot.addWidget(panel)
    now = time.monotonic()
    flying = dict(armed=True, landed_state=LandedState.IN_AIR, flight_mode="mission", rel_alt_m=42.0)
    panel.update_states(
        (
            VehicleState(
                0, link_ok=True, monotonic_s=now, battery_pct=12.0, mission_total=8, mission_reached=3, **flying
            ),
            VehicleState(1, link_ok=True, monotonic_s=now - 1.6, battery_pct=80.0, **flying),
            VehicleState(2, link_ok=False, monotonic_s=now - 4.0, battery_pct=80.0, **flying),
        )
    )
    assert panel.table.rowCount() == 3
    assert [cell(panel, v, "Link") for v in range(3)] == ["ok", "stale 2 s", "LOST"]
    assert panel.table.item(1, 0).background().color() == _STALE
    assert panel.table.item(2, 0).background().color() == _LOST
    assert panel.table.item(0, COLUMNS.index("Battery")).foreground().color().name() == "#c01818"
    assert (cell(panel, 0, "Mode"), cell(panel, 0, "Armed"), cell(panel, 0, "Altitude")) == (
        "mission",
        "armed, in air",
        "42.0 m",
    )
    bar = panel.table.cellWidget(0, COLUMNS.index("Mission"))
    assert (bar.value(), bar.maximum(), bar.text()) == (3, 8, "3/8")


@pytest.mark.slow
def test_a_start_the_vehicle_refuses_shows_its_own_reason_and_nothing_flies(qtbot, drones, panel, screenshot):
    vehicles = drones(1)
    lat, lon = vehicles.homes[0]
    r = 5 * D
    box = ((lat - r, lon - r), (lat + r, lon - r), (lat + r, lon + r), (lat - r, lon + r))
    fenced = MissionPlan(
        items=(
            MissionItem.takeoff(lat, lon, 20.0),
            MissionItem.waypoint(lat + D, lon, 20.0),
            MissionItem.waypoint(lat + D, lon + 0.02, 20.0),  # ~1.8 km east: far outside the fence
            MissionItem.return_to_launch(),
        ),
        home=Waypoint(lat, lon, 10.0),
        fence_polygons=(FencePolygon(box, True),),
        name="outside",
    )
    failures: list[str] = []
    panel.controller.failed.connect(failures.append)
    panel.confirm = lambda question: True
    connect(qtbot, panel, vehicles.urls)
    panel.set_plans({0: [fenced]})
    click(qtbot, panel, 0, "start")
    qtbot.waitUntil(lambda: "Geofence violation for waypoint 3" in panel.log.toPlainText(), timeout=30_000)
    qtbot.waitUntil(lambda: bool(failures), timeout=15_000)
    assert failures[0].startswith("vehicle 1: ") and "Geofence violation for waypoint 3" in failures[0]
    qtbot.wait(1000)
    assert cell(panel, 0, "Armed") == "disarmed, on ground"
    assert abs(float(cell(panel, 0, "Altitude").removesuffix(" m"))) < 1.0
    assert not panel.controller.latest[0].armed
    screenshot(panel, f"fleet-refused-{vehicles.kind}")
