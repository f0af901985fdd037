"""The demo, driven through the window as an operator would: open the site, plan, record, connect,
add the cameras, fly every drone's sorties, and when all are down close the run and write its report.

It knows nothing of simulators: `borderwatch demo --gui` starts them and hands over where to
connect and where the video comes from, so the same steps would drive real drones.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from groundstation.app.main_window import MainWindow
from groundstation.app.video_panel import StreamConfig
from groundstation.fleet import FleetEvent, VehicleState
from missions.planners.patrol import PatrolRequest
from vision.alerts import Alert
from vision.frames import StreamClock

POLL_MS = 250
STATUS_EVERY_MS = 5000


@dataclass(frozen=True)
class DemoSteps:
    site: Path
    request: PatrolRequest  # what the planner panel is set to
    urls: tuple[str, ...]
    streams: tuple[StreamConfig, ...]
    speed_factor: float = 1.0
    clocks: tuple[StreamClock, ...] = ()  # each stream's, from the simulation
    run_clock: Callable[[], float] = time.time


class DemoConsole(Protocol):
    """Where the driven demo says what it does (the demo's terminal)."""

    def say(self, text: str) -> None: ...
    def event(self, event: FleetEvent) -> None: ...
    def alert(self, alert: Alert) -> None: ...
    def status(self, states: Sequence[VehicleState]) -> str: ...


class DemoOutcome(Protocol):
    """What the driven demo fills in as it goes (the demo's own result)."""

    run_dir: Path | None
    outcomes: list  # per drone its SortiesOutcome, in drone order; failed ones are left out
    report: Path | None
    problems: list[str]


class DemoDriver(QObject):
    finished = pyqtSignal()  # every drone down (or the demo failed) and the report written

    def __init__(self, window: MainWindow, steps: DemoSteps, console: DemoConsole, outcome: DemoOutcome) -> None:
        super().__init__(window)
        self.window = window
        self.steps = steps
        self.console = console
        self.say = console.say
        self.run = outcome
        self._latest: tuple = ()
        self._status = QTimer(self)
        self._status.setInterval(STATUS_EVERY_MS)
        self._status.timeout.connect(lambda: self._latest and self.say(console.status(self._latest)))
        self._connecting: concurrent.futures.Future | None = None
        self._flights: list[concurrent.futures.Future] = []
        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._check_flights)
        self._waiting_for_plan = False
        self._stopped = False

    def stop(self) -> None:
        """Stop driving (the window is about to close and stop the fleet): nothing more is started or reported."""
        self._stopped = True
        self._waiting_for_plan = False
        self._poll.stop()
        self._status.stop()

    def start(self) -> None:
        w, s = self.window, self.steps
        if not w.open_site(s.site):
            self._fail(f"{s.site}: the site did not open (see the site panel)")
            return
        self.say(f"opened {s.site}; planning a {s.request.pattern.value} patrol for {s.request.drones} drone(s)")
        planner = w.planner_panel
        self._waiting_for_plan = True
        planner.planned.connect(self._planned)
        planner.failed.connect(self._plan_failed)
        planner.set_request(s.request)
        planner.plan_now()

    def _plan_failed(self, message: str) -> None:
        if self._waiting_for_plan:
            self._fail(f"planning failed: {message}")

    def _planned(self, planned) -> None:
        if self._stopped:
            return
        request = self.window.planner_panel.request()
        if not self._waiting_for_plan or request != self.steps.request:
            return  # a plan for parameters that were still being set
        if len(planned.plans) != self.steps.request.drones:
            return
        self._waiting_for_plan = False
        w, s = self.window, self.steps
        count = sum(len(p) for p in planned.plans.values())
        self.say(f"planned {count} sortie(s); connecting to {', '.join(s.urls)}")
        w.fleet_panel.set_urls(s.urls)
        self.run.run_dir = w.start_recording(clock=s.run_clock, speed_factor=s.speed_factor)
        if self.run.run_dir is None:
            self._fail("the run could not be recorded (see the status bar)")
            return
        self.say(f"recording into {self.run.run_dir}")
        w.fleet.connected.connect(self._connected)
        w.fleet.failed.connect(self._fleet_failed)
        w.fleet.states.connect(self._states)
        w.fleet.event.connect(self.console.event)
        w.video_panel.alert.connect(lambda alert, _snapshot: self.console.alert(alert))
        self._connecting = w.connect_fleet(s.urls)
        self._poll.start()

    def _states(self, states: tuple) -> None:
        self._latest = states

    def _fleet_failed(self, line: str) -> None:
        self.say(f"fleet: {line}")

    def _connected(self, _urls) -> None:
        if self._stopped:
            return
        w = self.window
        w.fleet.connected.disconnect(self._connected)
        for i, config in enumerate(self.steps.streams):
            w.add_stream(config, self.steps.clocks[i] if i < len(self.steps.clocks) else None)
        plans = w.planner_panel.result.plans
        self.say(f"connected; flying {len(plans)} drone(s) with {len(self.steps.streams)} camera(s) watching")
        self._flights = [w.fleet.fly(vehicle, plans[vehicle]) for vehicle in sorted(plans)]
        self._status.start()

    def _check_flights(self) -> None:
        if self._stopped:
            return
        connecting = self._connecting
        if connecting is not None and connecting.done() and not connecting.cancelled() and connecting.exception():
            self._poll.stop()
            self._fail(f"cannot connect to the drones: {connecting.exception()}")
            return
        if not self._flights or not all(f.done() for f in self._flights):
            return
        self._poll.stop()
        self._status.stop()
        for vehicle, future in enumerate(self._flights):
            if future.cancelled():  # the fleet link was shut down under it (the window closed)
                self.run.problems.append(f"vehicle {vehicle + 1}: stopped before its sorties ended")
                continue
            error = future.exception()
            if error is None:
                self.run.outcomes.append(future.result())
            else:
                self.run.problems.append(f"vehicle {vehicle + 1}: {error}")
        self._finish()

    def _fail(self, problem: str) -> None:
        self.run.problems.append(problem)
        self._finish()

    def _finish(self) -> None:
        w = self.window
        run_dir = w.stop_recording()
        if run_dir is not None:
            self.say("all drones down; writing the report")
            self.run.report = w.write_report(run_dir)
            w.statusBar().showMessage(f"demo finished: report {self.run.report}", 0)
        self.finished.emit()


def stream_configs(sdp_paths: Sequence[Path], pose_urls: Sequence[str], model: str | None) -> tuple[StreamConfig, ...]:
    return tuple(
        StreamConfig(f"camera-{i + 1}", str(sdp), pose, vehicle=i, model=model)
        for i, (sdp, pose) in enumerate(zip(sdp_paths, pose_urls, strict=True))
    )
