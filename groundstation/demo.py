"""The demo's parts: a whole patrol on one machine with nothing but the built-in simulator.

Plan a risk-weighted patrol → start simulated drones whose cameras stream H.264 over RTP →
MAVSDK flies every drone's sorties → one vision pipeline per camera raises alerts and keeps
evidence → everything lands in a run folder → report and summary. Nothing here imports Qt:
`borderwatch demo` runs :func:`run_headless` in a terminal, and `--gui` hands the same
simulated fleet (:func:`simulated_fleet`) and plans (:func:`plan_demo`) to the app.

The demo is the one place outside `borderwatch sim` that starts simulators (STYLE.md lets
the demo and sim commands do so); the fleet link and the vision pipeline it drives are the
same code that flies PX4 and watches real cameras.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from groundstation.demo_console import Console, status_line
from groundstation.fleet import FleetError, FleetEvent, FleetLink, Reason, Severity, VehicleState, raw_plan
from groundstation.fleet.flight import FlightOptions
from groundstation.fleet.sorties import SortiesOutcome, fly_sorties
from groundstation.fleet.state import vehicle_name
from groundstation.run_data import read_run
from groundstation.run_kpis import RunKpis, compute_run_kpis, format_run_kpis, hms
from groundstation.runfolder import RunRecorder, new_run_directory
from missions.errors import UserError
from missions.formats import BUNDLED_SITES
from missions.planners.output import PlannedSortie, sortie_plans
from missions.planners.patrol import PatrolRequest, Pattern, plan_patrol
from missions.site import Site
from sitl.cameras import SimCameras
from sitl.ports import free_port_block, udp_ports_free
from sitl.sim import ONBOARD_PORT_OFFSET, SimFleet
from sitl.video import video_port
from sitl.world import World
from vision.alerts import Alert
from vision.camera import Intrinsics
from vision.pipeline import FrameResult
from vision.runner import Assembly, RunOptions, assemble

DEFAULT_SITE = BUNDLED_SITES / "algeciras-port.geojson"
MAVLINK_PORT = 14540
VIDEO_PORT = 5600
# The simulated battery lasts about 25 minutes at 10 m/s and returns home at 15 %: plan for that.
SIM_ENDURANCE_MIN = 25.0
SIM_RESERVE_PCT = 20.0
# Wall time allowed beyond the plan's own duration (at the speed factor): connecting, uploads, landings.
SLACK_S = 120.0


@dataclass(frozen=True)
class DemoConfig:
    site: Path = DEFAULT_SITE
    drones: int = 2
    speed_factor: float = 10.0
    altitude_m: float = 60.0
    runs_dir: Path = Path("out/runs")
    model: str | None = None
    camera_fps: float = 10.0
    mavlink_port: int = MAVLINK_PORT
    video_port: int = VIDEO_PORT
    status_every_s: float = 5.0

    def __post_init__(self) -> None:
        if not 1 <= self.drones <= 8:
            raise UserError(f"--drones must be between 1 and 8, not {self.drones}")
        if not 1.0 <= self.speed_factor <= 50.0:
            raise UserError(f"--speed-factor must be between 1 and 50, not {self.speed_factor:g}")
        if not self.camera_fps > 0:
            raise UserError(f"--camera-fps must be positive, not {self.camera_fps:g}")
        if self.model is not None and not Path(self.model).is_file():
            raise UserError(f"--model {self.model}: no such file (borderwatch never downloads weights)")


# -- planning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoPlan:
    site: Site
    sorties: tuple[tuple[PlannedSortie, ...], ...]  # per drone, in flying order
    flight_time_s: float  # the longest drone's, in simulated time
    summary: str

    @property
    def count(self) -> int:
        return sum(len(s) for s in self.sorties)


def plan_demo(site: Site, config: DemoConfig) -> DemoPlan:
    """The risk-weighted patrol the demo flies: every drone evenly phased on one lap of the watch zones."""
    from missions.planners.kpi import compute_kpis, format_kpis

    if not site.watch:
        raise UserError(f"{site.source}: the site has no watch zones: the demo patrols watch zones")
    if not site.launch:
        raise UserError(f"{site.source}: the site has no launch point to start the simulated drones at")
    request = PatrolRequest(
        pattern=Pattern.RISK,
        altitude_m=config.altitude_m,
        drones=config.drones,
        endurance_min=SIM_ENDURANCE_MIN,
        reserve_pct=SIM_RESERVE_PCT,
    )
    patrol = plan_patrol(site, request)
    planned = sortie_plans(patrol)
    per_drone = tuple(
        tuple(sorted((p for p in planned if p.drone == d), key=lambda p: p.number)) for d in range(1, config.drones + 1)
    )
    missing = [d + 1 for d, sorties in enumerate(per_drone) if not sorties]
    if missing:
        raise UserError(f"{site.source}: the patrol leaves drone(s) {missing} nothing to fly; ask for fewer drones")
    kpis = compute_kpis(patrol)
    return DemoPlan(site, per_drone, kpis.flight_time_s, format_kpis(kpis))


# -- the simulated fleet ---------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatedFleet:
    """Started simulated drones and their cameras: where to connect, where the video and pose come from."""

    fleet: SimFleet
    cameras: SimCameras
    urls: tuple[str, ...]  # MAVSDK connection per drone
    sdp_paths: tuple[Path, ...]  # its camera's stream
    pose_urls: tuple[str, ...]  # its pose for geolocation (pymavlink)

    @property
    def intrinsics(self) -> Intrinsics:
        return self.cameras.renderer.intrinsics

    @property
    def problem(self) -> str | None:
        """Why the simulation is no longer what the demo needs, if it is not."""
        if self.fleet.error is not None:
            return f"the simulator stopped: {self.fleet.error!r}"
        return next((s.error for s in self.cameras.stats if s.error is not None), None)


@dataclass(frozen=True)
class Ports:
    mavlink: int
    video: int
    note: str | None = None  # said when the standard ports were taken and others are used


def choose_ports(drones: int, mavlink: int = MAVLINK_PORT, video: int = VIDEO_PORT) -> Ports:
    """The standard ports when free (QGroundControl can listen in), a free block otherwise."""
    notes = []
    wanted = [mavlink + i for i in range(drones)] + [mavlink + ONBOARD_PORT_OFFSET + i for i in range(drones)]
    busy = udp_ports_free(wanted)
    if busy:
        mavlink = free_port_block(drones, also=ONBOARD_PORT_OFFSET)
        notes.append(f"MAVLink port(s) {_ports(busy)} are in use (another simulator or ground station?): "
                     f"the drones use {mavlink}-{mavlink + drones - 1} instead")  # fmt: skip
    busy = udp_ports_free(range(video, video + 2 * drones))
    if busy:
        video = free_port_block(2 * drones)
        notes.append(f"video port(s) {_ports(busy)} are in use: the cameras stream to {video}-{video + 2 * drones - 1}")
    return Ports(mavlink, video, "; ".join(notes) or None)


def _ports(ports: Sequence[int]) -> str:
    return ", ".join(str(p) for p in ports)


@contextlib.contextmanager
def simulated_fleet(
    site: Site, drones: int, speed_factor: float, directory: Path, ports: Ports, camera_fps: float = 10.0
) -> Iterator[SimulatedFleet]:
    """`drones` simulated drones at the site's launch point, each with a camera over the site's world."""
    fleet = SimFleet.at_site(site, drones, speed_factor=speed_factor, base_port=ports.mavlink)
    try:
        fleet.start()
    except OSError as exc:
        raise UserError(
            f"cannot open the simulator's ports {ports.mavlink}-{ports.mavlink + drones - 1}: {exc}"
        ) from None
    try:
        cameras = SimCameras(fleet, World.for_site(site), directory, fps=camera_fps, base_port=ports.video, truth=False)
        cameras.start()
        try:
            yield SimulatedFleet(
                fleet,
                cameras,
                tuple(f"udpin://0.0.0.0:{v.port}" for v in fleet.vehicles),
                tuple(cameras.sdp_path(i) for i in range(drones)),
                tuple(v.onboard_url for v in fleet.vehicles),
            )
        finally:
            cameras.stop()
    finally:
        fleet.stop()


# -- watching the cameras --------------------------------------------------------------------


@dataclass
class StreamState:
    name: str
    frames: int = 0
    error: str | None = None


class CameraWatch:
    """A vision pipeline per camera, each on its own thread, recording into the run as it goes."""

    def __init__(
        self,
        sim: SimulatedFleet,
        site: Site,
        recorder: RunRecorder,
        model: str | None = None,
        on_alert: Callable[[Alert], None] | None = None,
    ) -> None:
        self.streams = [StreamState(f"camera-{i + 1}") for i in range(len(sim.sdp_paths))]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._assemblies: list[Assembly] = []
        sinks = [recorder] + ([_CallbackSink(on_alert)] if on_alert is not None else [])
        try:
            for i, (sdp, pose) in enumerate(zip(sim.sdp_paths, sim.pose_urls, strict=True)):
                options = RunOptions(source=str(sdp), model=model, pose_url=pose, name=self.streams[i].name,
                                     hfov_deg=sim.intrinsics.hfov_deg, console=False)  # fmt: skip
                self._assemblies.append(assemble(options, site=site, evidence=recorder.evidence, alert_sinks=sinks))
        except BaseException:
            self.close()
            raise
        self._recorder = recorder

    def start(self) -> None:
        for i, assembly in enumerate(self._assemblies):
            thread = threading.Thread(target=self._run, args=(i, assembly), name=f"demo-{self.streams[i].name}")
            self._threads.append(thread)
            thread.start()

    def close(self) -> None:
        """Stop every pipeline (each finishes its frame) and close the sources and pose readers."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10.0)
        self._threads.clear()
        for assembly in self._assemblies:
            assembly.close()
        self._assemblies.clear()

    @property
    def problem(self) -> str | None:
        return next((f"{s.name}: {s.error}" for s in self.streams if s.error is not None), None)

    def rates(self, elapsed_s: float) -> list[tuple[str, float]]:
        """Each stream's frames processed per second so far."""
        return [(s.name, s.frames / max(elapsed_s, 1e-6)) for s in self.streams]

    def _run(self, index: int, assembly: Assembly) -> None:
        stream = self.streams[index]

        def on_result(result: FrameResult, _frame) -> None:
            stream.frames += 1
            self._recorder.record_frame(index, result)

        try:
            assembly.pipeline.run(assembly.source, stop=self._stop, on_result=on_result)
        except Exception as exc:  # the demo reports a dead stream; the flight and what was recorded go on
            stream.error = f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class _CallbackSink:
    callback: Callable[[Alert], None]

    def emit(self, alert: Alert) -> None:
        self.callback(alert)


# -- flying --------------------------------------------------------------------------------


async def fly_plans(
    urls: Sequence[str],
    plan: DemoPlan,
    recorder: RunRecorder,
    *,
    timeout_s: float,
    on_event: Callable[[FleetEvent], None] | None = None,
    on_states: Callable[[tuple[VehicleState, ...]], None] | None = None,
    connect_timeout_s: float = 30.0,
) -> list[SortiesOutcome]:
    """Every drone flies its sorties in turn, all drones at once; telemetry and events go into the run."""
    async with FleetLink.connect(list(urls), timeout_s=connect_timeout_s) as fleet:

        async def record_states() -> None:
            with fleet.states.subscribe(keep=64) as states:
                async for snapshot in states:
                    for state in snapshot:
                        recorder.record_state(state)
                    if on_states is not None:
                        on_states(snapshot)

        async def record_events() -> None:
            with fleet.events.subscribe(keep=1024) as events:
                async for event in events:
                    recorder.record_event(event)
                    if on_event is not None:
                        on_event(event)

        watchers = [asyncio.create_task(record_states()), asyncio.create_task(record_events())]
        for vehicle, sorties in zip(fleet, plan.sorties, strict=True):
            for sortie in sorties:
                recorder.add_plan(vehicle.index, sortie.plan, sortie.number)
        options = FlightOptions(health_timeout_s=connect_timeout_s)
        flights = [
            asyncio.create_task(fly_sorties(vehicle, [raw_plan(s.plan) for s in sorties], options))
            for vehicle, sorties in zip(fleet, plan.sorties, strict=True)
        ]
        try:
            await asyncio.wait(flights, timeout=timeout_s)
            outcomes = []
            for vehicle, sorties, task in zip(fleet, plan.sorties, flights, strict=True):
                if task.done():
                    outcomes.append(task.result())
                    continue
                if on_event is not None:
                    why = f"{vehicle.name}: still flying after {hms(timeout_s)} of wall time: stopped"
                    on_event(FleetEvent(vehicle.index, Reason.TIMEOUT, why, time.monotonic(), Severity.ERROR))
                outcomes.append(SortiesOutcome(vehicle.index, len(sorties)))
            return outcomes
        finally:
            for task in flights + watchers:
                task.cancel()
            await asyncio.gather(*flights, *watchers, return_exceptions=True)


# -- the whole demo in a terminal -----------------------------------------------------------


@dataclass
class DemoResult:
    run_dir: Path
    outcomes: list[SortiesOutcome] = field(default_factory=list)
    kpis: RunKpis | None = None
    report: Path | None = None
    problems: list[str] = field(default_factory=list)
    streams: list[StreamState] = field(default_factory=list)  # frames each camera's pipeline processed
    flight_wall_s: float = 0.0  # from take-off orders to the last landing, wall time

    @property
    def ok(self) -> bool:
        flown = bool(self.outcomes) and all(o.ok for o in self.outcomes)
        evidence = self.kpis is not None and (self.kpis.evidence.ok or not self.kpis.evidence.present)
        return flown and evidence and not self.problems


def run_headless(config: DemoConfig, write: Callable[[str], None] = print) -> DemoResult:
    """The whole demo without a window; Ctrl-C (KeyboardInterrupt) stops everything it started."""
    from missions.formats import load_site

    console = Console(write)
    site = load_site(config.site)
    console.say(f"site {site.name}: {len(site.watch)} watch zone(s), launch at {site.launch[0].name}")
    plan = plan_demo(site, config)
    console.say(f"planned a risk-weighted patrol for {config.drones} drone(s), {plan.count} sortie(s):")
    for line in plan.summary.splitlines():
        console.say("  " + line)
    ports = choose_ports(config.drones, config.mavlink_port, config.video_port)
    if ports.note:
        console.say(ports.note)
    run_dir = new_run_directory(config.runs_dir, site.name)
    result = DemoResult(run_dir)
    timeout_s = plan.flight_time_s / config.speed_factor * 1.5 + SLACK_S
    try:
        _fly_recorded(config, site, plan, ports, console, result, timeout_s)
    except KeyboardInterrupt:
        console.say(f"interrupted: everything the demo started is stopped; what was recorded is kept in {run_dir} "
                    f"(borderwatch report {run_dir} writes its report)")  # fmt: skip
        raise
    console.say("all drones down; writing the report")
    result.kpis, result.report = _report(run_dir)
    return result


def _fly_recorded(config, site, plan, ports, console, result, timeout_s) -> None:
    run_dir = result.run_dir
    with contextlib.ExitStack() as stack:
        sdp_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="borderwatch-demo-")))
        sim = stack.enter_context(
            simulated_fleet(site, config.drones, config.speed_factor, sdp_dir, ports, config.camera_fps)
        )
        console.say(
            f"started {config.drones} simulated drone(s) at {config.speed_factor:g}× real time, cameras streaming "
            f"H.264/RTP to 127.0.0.1:{', '.join(str(video_port(i, ports.video)) for i in range(config.drones))}"
        )
        names = [(vehicle_name(i), url) for i, url in enumerate(sim.urls)]
        try:
            recorder = RunRecorder.create(run_dir, site, names, sim.intrinsics, time_scale=config.speed_factor)
        except OSError as exc:
            raise UserError(f"cannot create the run folder {run_dir}: {exc}") from None
        stack.callback(recorder.close)
        watch = CameraWatch(sim, site, recorder, config.model, on_alert=console.alert)
        stack.callback(watch.close)
        watch.start()
        console.say(f"recording into {run_dir}; flying (expect about {hms(timeout_s - SLACK_S)})")
        flying_since = time.monotonic()
        result.streams = watch.streams
        try:
            result.outcomes = asyncio.run(_fly_with_status(sim, plan, recorder, watch, console, config, timeout_s))
        except FleetError as exc:  # the drones could not be reached or flown: said, and what was recorded is kept
            result.problems.append(f"{exc.reason.value}: {exc}")
        result.flight_wall_s = time.monotonic() - flying_since
        result.problems += [p for p in (sim.problem, watch.problem) if p is not None]


async def _fly_with_status(sim, plan, recorder, watch, console, config, timeout_s) -> list[SortiesOutcome]:
    latest: list[tuple[VehicleState, ...]] = [()]
    started = time.monotonic()

    async def status() -> None:
        while True:
            await asyncio.sleep(config.status_every_s)
            if latest[0]:
                console.say(status_line(latest[0], watch.rates(time.monotonic() - started), console.alerts))
            problem = sim.problem or watch.problem
            if problem is not None:
                console.say(f"problem: {problem}")

    def on_states(snapshot: tuple[VehicleState, ...]) -> None:
        latest[0] = snapshot

    ticker = asyncio.create_task(status())
    try:
        return await fly_plans(
            sim.urls, plan, recorder, timeout_s=timeout_s, on_event=console.event, on_states=on_states
        )
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)


def _report(run_dir: Path):
    from groundstation.report import default_report_path, write_report

    run = read_run(run_dir)
    kpis = compute_run_kpis(run)
    return kpis, write_report(run, default_report_path(run_dir), kpis)


def summary(result: DemoResult, elapsed_s: float) -> str:
    lines = [f"demo {'finished' if result.ok else 'FAILED'} in {hms(elapsed_s)}; run folder {result.run_dir}"]
    for o in result.outcomes:
        flown = sum(f.ok for f in o.flights)
        verdict = "landed and disarmed" if o.ok else "FAILED"
        lines.append(f"  {vehicle_name(o.vehicle)}: {flown}/{o.planned} sortie(s) flown, {verdict}")
        for f in o.flights:
            if f.error is not None:
                lines.append(f"    {f.error.reason.value}: {f.error}")
    lines += [f"  problem: {p}" for p in result.problems]
    if result.kpis is not None:
        lines.append(format_run_kpis(result.kpis))
    if result.report is not None:
        lines.append(f"report: {result.report}")
    return "\n".join(lines)
