"""The demo, driven through the window as an operator would: open the site, plan, record, connect,
add the cameras, fly every drone's sorties, and when all are down close the run and write its report.

It knows nothing of simulators: `borderwatch demo --gui` starts them and hands over where to
connect and where the video comes from, so the same steps would drive real drones.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from groundstation.app.main_window import MainWindow
from groundstation.app.video_panel import StreamConfig
from groundstation.demo_console import Console, status_line
from missions.planners.patrol import Pattern

POLL_MS = 250
STATUS_EVERY_MS = 5000


@dataclass(frozen=True)
class DemoSteps:
    site: Path
    drones: int
    altitude_m: float
    endurance_min: float
    reserve_pct: float
    urls: tuple[str, ...]
    streams: tuple[StreamConfig, ...]
    time_scale: float = 1.0


@dataclass
class DemoRun:
    """What the driven demo did: per drone its SortiesOutcome (None when it failed: see problems)."""

    run_dir: Path | None = None
    outcomes: list = field(default_factory=list)
    report: Path | None = None
    problems: list[str] = field(default_factory=list)


class DemoDriver(QObject):
    finished = pyqtSignal(object)  # DemoRun

    def __init__(self, window: MainWindow, steps: DemoSteps, console: Console) -> None:
        super().__init__(window)
        self.window = window
        self.steps = steps
        self.console = console
        self.say = console.say
        self.run = DemoRun()
        self._latest: tuple = ()
        self._status = QTimer(self)
        self._status.setInterval(STATUS_EVERY_MS)
        self._status.timeout.connect(lambda: self._latest and self.say(status_line(self._latest, (), console.alerts)))
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
        self.say(f"opened {s.site}; planning a risk-weighted patrol for {s.drones} drone(s)")
        planner = w.planner_panel
        self._waiting_for_plan = True
        planner.planned.connect(self._planned)
        planner.failed.connect(self._plan_failed)
        planner.pattern.setCurrentIndex(planner.pattern.findData(Pattern.RISK))
        planner.altitude.setValue(s.altitude_m)
        planner.drones.setValue(s.drones)
        planner.endurance_on.setChecked(True)
        planner.endurance.setValue(s.endurance_min)
        planner.reserve.setValue(s.reserve_pct)
        planner.plan_now()

    def _plan_failed(self, message: str) -> None:
        if self._waiting_for_plan:
            self._fail(f"planning failed: {message}")

    def _planned(self, planned) -> None:
        if self._stopped:
            return
        request = self.window.planner_panel.request()
        if not self._waiting_for_plan or request.pattern is not Pattern.RISK or request.drones != self.steps.drones:
            return  # a plan for parameters that were still being set
        if len(planned.plans) != self.steps.drones:
            return
        self._waiting_for_plan = False
        w, s = self.window, self.steps
        count = sum(len(p) for p in planned.plans.values())
        self.say(f"planned {count} sortie(s); connecting to {', '.join(s.urls)}")
        w.fleet_panel.set_urls(s.urls)
        self.run.run_dir = w.start_recording(time_scale=s.time_scale)
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
        for config in self.steps.streams:
            w.add_stream(config)
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
                self.run.outcomes.append(None)
                self.run.problems.append(f"vehicle {vehicle + 1}: stopped before its sorties ended")
                continue
            error = future.exception()
            if error is None:
                self.run.outcomes.append(future.result())
            else:
                self.run.outcomes.append(None)
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
        self.finished.emit(self.run)


def stream_configs(sdp_paths: Sequence[Path], pose_urls: Sequence[str], model: str | None) -> tuple[StreamConfig, ...]:
    return tuple(
        StreamConfig(f"camera-{i + 1}", str(sdp), pose, vehicle=i, model=model)
        for i, (sdp, pose) in enumerate(zip(sdp_paths, pose_urls, strict=True))
    )
