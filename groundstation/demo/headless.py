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
import functools
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from groundstation.demo.console import Console, status_line
from groundstation.demo.fleet import (
    CAMERA_FPS,
    MAVLINK_PORT,
    VIDEO_PORT,
    SimulatedFleet,
    choose_ports,
    simulated_fleet,
)
from groundstation.fleet import FleetError, FleetEvent, FleetLink, Reason, Severity, VehicleState, raw_plan
from groundstation.fleet.flight import FlightOptions
from groundstation.fleet.sorties import SortiesOutcome, fly_sorties
from groundstation.fleet.state import vehicle_name
from groundstation.link.cot import report_states
from groundstation.link.station import bus_site
from groundstation.runs.kpis import RunKpis, compute_run_kpis, format_run_kpis, hms
from groundstation.runs.reader import read_run
from groundstation.runs.recorder import RunRecorder, new_run_directory
from missions.errors import UserError
from missions.formats import BUNDLED_SITES
from missions.planners.output import PlannedSortie, sortie_plans
from missions.planners.patrol import PatrolRequest, Pattern, plan_patrol
from missions.site import Site
from sitl.synthetic.video import video_port
from vision.ais.sources import FeedState
from vision.alerts import Alert
from vision.bus.address import parse_broker_url
from vision.pipeline import FrameResult
from vision.runner import RunOptions, assemble
from vision.worker import StreamWorker

if TYPE_CHECKING:
    from vision.ais.watch import AisTargets
    from vision.cot.link import CotLink

DEFAULT_SITE = BUNDLED_SITES / "algeciras-port.geojson"
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
    camera_fps: float = CAMERA_FPS
    mavlink_port: int = MAVLINK_PORT
    video_port: int = VIDEO_PORT
    status_every_s: float = 5.0
    px4: Path | None = None  # a PX4 SITL build: fly PX4 SIH instead of the built-in simulator
    endurance_min: float = SIM_ENDURANCE_MIN  # sorties are planned for this long on one battery
    onboard: bool = False  # detection in one onboard process per drone, over the bus, instead of on the ground
    broker_url: str | None = None  # with onboard: the agency's broker (else one of the demo's own)
    pki_dir: Path | None = None  # with broker_url: the certificates
    tsa_url: str | None = None  # an RFC 3161 TSA that timestamps the evidence's signed heads
    ais: bool = False  # the world's vessels broadcast AIS, the station matches it to what it sees
    ais_scenario: Path | None = None  # who is dark and who lies (default: one of each, at random)
    cot_urls: tuple[str, ...] = ()  # TAK destinations: drones, tracks, alerts and zones as Cursor on Target

    def __post_init__(self) -> None:
        if not 2.0 <= self.endurance_min <= SIM_ENDURANCE_MIN:
            raise UserError(
                f"--endurance must be between 2 and {SIM_ENDURANCE_MIN:g} minutes (the simulated battery), "
                f"not {self.endurance_min:g}"
            )
        if not 1 <= self.drones <= 8:
            raise UserError(f"--drones must be between 1 and 8, not {self.drones}")
        if not 1.0 <= self.speed_factor <= 50.0:
            raise UserError(f"--speed-factor must be between 1 and 50, not {self.speed_factor:g}")
        if not self.camera_fps > 0:
            raise UserError(f"--camera-fps must be positive, not {self.camera_fps:g}")
        if self.broker_url is not None and not self.onboard:
            raise UserError("--broker is for --onboard: the units publish on the bus, the ground listens")
        if self.broker_url is not None and self.pki_dir is None:
            raise UserError(f"--broker {self.broker_url}: also give --pki DIR, the folder with the certificates")
        if self.broker_url is not None:
            parse_broker_url(self.broker_url)  # a UserError quoting it, before anything starts
        if self.tsa_url is not None and not self.tsa_url.startswith(("http://", "https://")):
            raise UserError(f"--tsa {self.tsa_url}: expected an http:// or https:// URL of an RFC 3161 TSA")
        if self.ais_scenario is not None and not self.ais_scenario.is_file():
            raise UserError(f"--ais-scenario {self.ais_scenario}: no such file")
        if self.cot_urls:
            from vision.cot.destinations import parse_destinations

            parse_destinations(self.cot_urls)  # a UserError naming a bad one, before anything starts
        if self.model is not None and not Path(self.model).is_file():
            raise UserError(f"--model {self.model}: no such file (borderwatch never downloads weights)")

    def patrol_request(self) -> PatrolRequest:
        """The patrol the demo flies, headless or in the app: every drone evenly phased on one
        risk-weighted lap of the watch zones, sorties sized for the simulated battery."""
        return PatrolRequest(
            pattern=Pattern.RISK,
            altitude_m=self.altitude_m,
            drones=self.drones,
            endurance_min=self.endurance_min,
            reserve_pct=SIM_RESERVE_PCT,
        )


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
    patrol = plan_patrol(site, config.patrol_request())
    planned = sortie_plans(patrol)
    per_drone = tuple(
        tuple(sorted((p for p in planned if p.drone == d), key=lambda p: p.number)) for d in range(1, config.drones + 1)
    )
    missing = [d + 1 for d, sorties in enumerate(per_drone) if not sorties]
    if missing:
        raise UserError(f"{site.source}: the patrol leaves drone(s) {missing} nothing to fly; ask for fewer drones")
    kpis = compute_kpis(patrol)
    return DemoPlan(site, per_drone, kpis.flight_time_s, format_kpis(kpis))


# -- watching the cameras --------------------------------------------------------------------


@dataclass
class StreamState:
    name: str
    frames: int = 0
    error: str | None = None


class CameraWatch:
    """A vision pipeline per camera, each on a StreamWorker of its own, recording into the run as it goes."""

    def __init__(
        self,
        sim: SimulatedFleet,
        site: Site,
        recorder: RunRecorder,
        model: str | None = None,
        on_alert: Callable[[Alert], None] | None = None,
        ais: AisTargets | None = None,
        cot: CotLink | None = None,
    ) -> None:
        self.streams = [StreamState(f"camera-{i + 1}") for i in range(len(sim.sdp_paths))]
        self.ais = ais
        self._recorder = recorder
        self._workers: list[StreamWorker] = []
        sinks = [recorder] + ([_CallbackSink(on_alert)] if on_alert is not None else [])
        try:
            for i, (sdp, pose) in enumerate(zip(sim.sdp_paths, sim.pose_urls, strict=True)):
                options = RunOptions(source=str(sdp), model=model, pose_url=pose, name=self.streams[i].name,
                                     hfov_deg=sim.intrinsics.hfov_deg, console=False, cot_drone=i + 1)  # fmt: skip
                # Assembled here, not on the workers: a model or a camera that fails stops the demo before it flies.
                # The drones' positions go to TAK from their telemetry (battery too), the cameras give their views.
                assembly = assemble(
                    options, site=site, evidence=recorder.evidence, alert_sinks=sinks, clock=sim.clocks[i], ais=ais,
                    cot=cot, cot_position_from_pose=False,
                )  # fmt: skip
                self._workers.append(
                    StreamWorker(
                        self.streams[i].name,
                        assembly,
                        pace=sim.clocks[i].pace,
                        on_result=functools.partial(self._on_result, i),
                        on_error=functools.partial(self._on_error, i),
                    )
                )
        except BaseException:
            self.close()
            raise

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def close(self) -> None:
        """Stop every pipeline (each finishes its frame) and close the sources and pose readers."""
        for worker in self._workers:
            worker.stop(wait=False)
        for worker in self._workers:
            worker.close(timeout_s=10.0)
        self._workers.clear()

    @property
    def problem(self) -> str | None:
        return next((f"{s.name}: {s.error}" for s in self.streams if s.error is not None), None)

    def rates(self, elapsed_s: float) -> list[tuple[str, float]]:
        """Each stream's frames processed per second so far."""
        return [(s.name, s.frames / max(elapsed_s, 1e-6)) for s in self.streams]

    def _on_result(self, index: int, result: FrameResult, _frame) -> None:
        self.streams[index].frames += 1
        self._recorder.record_frame(index, result)

    def _on_error(self, index: int, error: Exception) -> None:
        # The demo reports a dead stream; the flight and what was recorded go on.
        self.streams[index].error = f"{type(error).__name__}: {error}"


class OnboardWatch:
    """CameraWatch's counterpart with detection onboard: the units and the station's bus."""

    def __init__(self, sim: SimulatedFleet, config: DemoConfig, site: Site, recorder: RunRecorder, work: Path,
                 console: Console, cot: CotLink | None = None) -> None:  # fmt: skip
        from groundstation.demo.onboard import OnboardUnits

        self.units = OnboardUnits(
            sim, config.site, site.name, recorder, work, model=config.model, broker_url=config.broker_url,
            pki_dir=config.pki_dir, on_alert=console.alert, on_problem=lambda line: console.say(f"bus: {line}"),
            cot=cot, site=site, intrinsics=sim.intrinsics,
        )  # fmt: skip
        self.streams = [StreamState(f"unit-{i + 1}") for i in range(len(sim.urls))]
        self.ais = None  # the units would read AIS themselves (onboard --ais); the demo does not give them any yet

    def rates(self, elapsed_s: float) -> list[tuple[str, float]]:
        return self.units.rates()

    @property
    def problem(self) -> str | None:
        return self.units.problem

    def close(self) -> None:
        self.units.close()
        for stream, view in zip(self.streams, self.units.views(), strict=False):
            stream.frames = view.frames


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
    clock: Callable[[], float] = time.monotonic,
) -> list[SortiesOutcome]:
    """Every drone flies its sorties in turn, all drones at once; telemetry and events go into the run.

    `timeout_s` runs on `clock`: the simulation's, which stops while the simulation waits for its cameras.
    """
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
            began = clock()
            while not all(f.done() for f in flights) and clock() - began < timeout_s:
                await asyncio.wait(flights, timeout=1.0)
            outcomes = []
            for vehicle, sorties, task in zip(fleet, plan.sorties, flights, strict=True):
                if task.done():
                    outcomes.append(task.result())
                    continue
                if on_event is not None:
                    why = f"{vehicle.name}: still flying after {hms(timeout_s)} of its own time: stopped"
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
    run_dir: Path | None  # None until the run folder exists
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
    # On the simulation's clock, the drones' own time: it waits when the cameras' pipelines fall behind.
    timeout_s = plan.flight_time_s * 1.5 + SLACK_S * config.speed_factor
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
            simulated_fleet(site, config.drones, config.speed_factor, sdp_dir, ports, config.camera_fps, config.px4)
        )
        console.say(
            f"started {config.drones} drone(s) on the {sim.kind} at up to {config.speed_factor:g}× real time, "
            f"cameras at {config.camera_fps:g} frames a second of the drones' time streaming H.264/RTP to "
            f"127.0.0.1:{', '.join(str(video_port(i, ports.video)) for i in range(config.drones))}"
        )
        names = [(vehicle_name(i), url) for i, url in enumerate(sim.urls)]
        try:
            if config.onboard:  # the units see their cameras in real time: the run goes by the wall clock
                recorder = RunRecorder.create(
                    run_dir, site, names, sim.intrinsics, time_scale=config.speed_factor, tsa_url=config.tsa_url
                )
            else:
                recorder = RunRecorder.create(
                    run_dir, site, names, sim.intrinsics, clock=sim.run_clock, speed_factor=config.speed_factor,
                    tsa_url=config.tsa_url,
                )  # fmt: skip
        except OSError as exc:
            raise UserError(f"cannot create the run folder {run_dir}: {exc}") from None
        stack.callback(recorder.close)
        cot = None
        if config.cot_urls:  # closed after the cameras, which end their tracks on it
            from vision.cot.link import open_cot

            cot = open_cot(config.cot_urls, bus_site(site.name), site.zones, say=console.say)
            stack.callback(lambda: console.say(cot.summary()))
            stack.callback(cot.close)
            console.say(f"CoT: drones, tracks, alerts and zones to {', '.join(cot.sender.stats())}")
        if config.onboard:
            watch = OnboardWatch(sim, config, site, recorder, sdp_dir, console, cot)
            stack.callback(watch.close)
            console.say(f"one onboard unit per drone, publishing to the broker at {watch.units.broker_url}")
        else:
            feed = _ais(config, sim, site, run_dir, stack, console) if config.ais else None
            watch = CameraWatch(sim, site, recorder, config.model, on_alert=console.alert, ais=feed, cot=cot)
            stack.callback(watch.close)
            watch.start()
        console.say(f"recording into {run_dir}; flying {hms(plan.flight_time_s)} of the drones' time")
        flying_since = time.monotonic()
        result.streams = watch.streams
        try:
            result.outcomes = asyncio.run(_fly_with_status(sim, plan, recorder, watch, console, config, timeout_s, cot))
        except FleetError as exc:  # the drones could not be reached or flown: said, and what was recorded is kept
            result.problems.append(f"{exc.reason.value}: {exc}")
        result.flight_wall_s = time.monotonic() - flying_since
        result.problems += [p for p in (sim.problem, watch.problem) if p is not None]
        for stream, stats in zip(watch.streams, sim.cameras.stats, strict=True):
            if stats.skipped:  # PX4 does not wait for its cameras
                console.say(f"{stream.name}: {stats.skipped} frame(s) skipped, the vehicle ran ahead of the camera")
            if stats.unconsumed:
                console.say(f"{stream.name}: the simulation went on {stats.unconsumed} time(s) without detection")


def _ais(config: DemoConfig, sim: SimulatedFleet, site: Site, run_dir: Path, stack: contextlib.ExitStack, console):
    """The world's AIS on a free UDP port, and the station's feed of it (on the run's clock); the simulator's
    truth of who is dark and who lies goes to the run folder's ais-truth.json, for scoring, never for the report."""
    from sitl.synthetic.ais import AisScenario, broadcast_world
    from vision.ais.feed import AisFeed

    feed = AisFeed("udp://127.0.0.1:0", site.frame, clock=sim.run_clock, say=console.say).start()
    stack.callback(feed.close)
    host, port = feed.source.address  # type: ignore[union-attr]
    url = f"udp://{host}:{port}"
    world = sim.cameras.world
    scenario = AisScenario.load(config.ais_scenario) if config.ais_scenario else AisScenario.random(world, 0, 1, 1)
    broadcaster = stack.enter_context(
        broadcast_world(sim.cameras, scenario, url, run_dir / "ais-truth.json", site.frame)
    )
    roles = [scenario.of(i).role.value for i in range(len(broadcaster.vessels))]
    console.say(f"AIS: {len(roles)} vessel(s) broadcast to {url} ({roles.count('dark')} dark, "
                f"{roles.count('spoof')} spoofing); the station reads it")  # fmt: skip
    return feed


def _ais_state(feed: AisTargets, now_s: float) -> str:
    status = feed.status(now_s)
    if status.state in (FeedState.LIVE, FeedState.SILENT):
        return f"{status}, {len(feed.targets(now_s))} vessel(s)"
    return str(status)


async def _fly_with_status(sim, plan, recorder, watch, console, config, timeout_s, cot=None) -> list[SortiesOutcome]:
    latest: list[tuple[VehicleState, ...]] = [()]
    started = time.monotonic()

    async def status() -> None:
        while True:
            await asyncio.sleep(config.status_every_s)
            if latest[0]:
                ais = None if watch.ais is None else _ais_state(watch.ais, sim.run_clock())
                console.say(status_line(latest[0], watch.rates(time.monotonic() - started), console.alerts, ais))
            problem = sim.problem or watch.problem
            if problem is not None:
                console.say(f"problem: {problem}")

    def on_states(snapshot: tuple[VehicleState, ...]) -> None:
        latest[0] = snapshot
        if cot is not None:
            report_states(cot.feed, snapshot)

    ticker = asyncio.create_task(status())
    try:
        return await fly_plans(
            sim.urls, plan, recorder, timeout_s=timeout_s, on_event=console.event, on_states=on_states,
            clock=sim.run_clock,
        )  # fmt: skip
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)


def _report(run_dir: Path):
    from groundstation.runs.report import default_report_path, write_report

    run = read_run(run_dir)
    kpis = compute_run_kpis(run)
    return kpis, write_report(run, default_report_path(run_dir), kpis)


def summary(result: DemoResult, elapsed_s: float) -> str:
    folder = "no run folder" if result.run_dir is None else f"run folder {result.run_dir}"
    lines = [f"demo {'finished' if result.ok else 'FAILED'} in {hms(elapsed_s)}; {folder}"]
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
