"""The operator's window under load: does the interface stay responsive?

The real MainWindow (offscreen) with a 10 ms QTimer on the interface thread that records when
it ticks; the gaps between ticks are what an operator feels, and a gap beyond ~250 ms reads as
a freeze. Measured in one process, one after the other:

1. baseline: the window idle with the Algeciras site open (its first patrol planned and drawn);
2. loaded: five simulated vehicles connected and flying squares, and two video streams of a
   drone hovering over the eastern anchorage running the bundled detector (boxes, tracks,
   alerts, geolocated detections on the map), while the run is recorded.

The simulators run in a child process, as real vehicles and cameras are outside the station: the
measured process is the station alone (on a small machine they still share its cores). While a
tick is late, a watchdog thread samples the interface thread's Python stack, so a stall is
reported with where the interface thread was.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import math
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from missions.formats import BUNDLED_SITES, load_site
from missions.plan import MissionItem, MissionPlan, Waypoint

SITE = BUNDLED_SITES / "algeciras-port.geojson"
ZONE = "Eastern anchorage"
VEHICLES = 5
SPEED_FACTOR = 5.0
SQUARE_M = 150.0
TICK_MS = 10
BASELINE_S = 10.0
LOADED_S = 30.0
FREEZE_S = 0.25  # an operator notices a freeze beyond this
LATE_S = 0.1  # a tick this late has the interface thread's stack sampled
SETUP_TIMEOUT_S = 90.0
STREAMS = ("drone-1", "drone-1 copy")
_REPO = Path(__file__).resolve().parents[1]

# Counts the page's calls of bw.updateVehicles: the telemetry that reaches the map.
_COUNT_UPDATES_JS = """(() => {
  if (bw.benchUpdates === undefined) {
    const update = bw.updateVehicles;
    bw.benchUpdates = 0;
    bw.updateVehicles = (list) => { bw.benchUpdates += 1; return update(list); };
  }
  return bw.benchUpdates;
})()"""


def square_plan(home: tuple[float, float], index: int, laps: int = 30) -> MissionPlan:
    """Take off, then laps of a square turned 72° further for each vehicle, then home."""
    lat, lon = home
    turn = math.radians(72.0 * index)
    m_per_deg_lat = 111_320.0
    m_per_deg_lon = m_per_deg_lat * math.cos(math.radians(lat))
    corners = []
    for east, north in ((0.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0)):
        e, n = east * SQUARE_M, north * SQUARE_M + 20.0
        x = e * math.cos(turn) - n * math.sin(turn)
        y = e * math.sin(turn) + n * math.cos(turn)
        corners.append((lat + y / m_per_deg_lat, lon + x / m_per_deg_lon))
    alt_m = 30.0 + 5.0 * index
    items = [MissionItem.takeoff(lat, lon, alt_m), MissionItem.change_speed(10.0)]
    items += [MissionItem.waypoint(c_lat, c_lon, alt_m) for c_lat, c_lon in corners]
    items += [MissionItem.jump(3, laps), MissionItem.return_to_launch()]
    return MissionPlan(items=tuple(items), home=Waypoint(lat, lon, 10.0), name=f"square {index + 1}")


# --- the simulators, in a child process ------------------------------------------------------------


def _simulate(conn, out_dir: str) -> None:
    """Five vehicles at the site's launch point and a drone hovering over the anchorage with two
    cameras; tells the parent where they are, then runs until told to stop (or the parent goes)."""
    from sitl.ports import free_port_block
    from sitl.synthetic.cameras import SimCameras
    from sitl.synthetic.scenarios import hover_over_zone
    from sitl.vehicles.fleet import SimFleet

    site = load_site(SITE)
    try:
        with contextlib.ExitStack() as stack:
            fleet = SimFleet.at_site(site, VEHICLES, speed_factor=SPEED_FACTOR, base_port=free_port_block(VEHICLES))
            stack.enter_context(fleet)
            hover = stack.enter_context(hover_over_zone(site, ZONE, Path(out_dir) / "video"))
            second = SimCameras(
                hover.fleet, hover.world, Path(out_dir) / "second", fps=10, base_port=free_port_block(4), truth=False
            )
            stack.enter_context(second)
            conn.send(
                {
                    "urls": [f"udpin://0.0.0.0:{v.port}" for v in fleet.vehicles],
                    "homes": [v.home for v in fleet.vehicles],
                    "streams": [(str(hover.sdp_path), hover.onboard_url), (str(second.sdp_path(0)), None)],
                }
            )
            with contextlib.suppress(EOFError, OSError):
                conn.poll(SETUP_TIMEOUT_S + BASELINE_S + LOADED_S + 120.0)
    except Exception as exc:  # the parent reports it; a traceback here would be lost in the child
        with contextlib.suppress(OSError):
            conn.send({"error": f"{type(exc).__name__}: {exc}"})


class _Simulators:
    """The child process: started on entering, stopped (and killed if it must be) on leaving."""

    def __init__(self, out_dir: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_simulate, args=(child, str(out_dir)), name="bench-sim", daemon=True)
        self.info: dict = {}

    def __enter__(self) -> _Simulators:
        self._process.start()
        if not self._conn.poll(SETUP_TIMEOUT_S):
            self.__exit__()
            raise TimeoutError(f"the simulators did not start within {SETUP_TIMEOUT_S:.0f} s")
        self.info = self._conn.recv()
        if "error" in self.info:
            self.__exit__()
            raise RuntimeError(f"the simulators failed: {self.info['error']}")
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._process.join(10.0)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5.0)


# --- the interface thread's ticks ---------------------------------------------------------------------


@dataclass
class _Stall:
    started_s: float  # the tick after which the next one was late
    samples: list[tuple[str, ...]] = field(default_factory=list)
    gap_ms: float = math.nan  # until the next tick
    # The watchdog's own longest wait for its 20 ms wake-ups in the stall: as long as the stall, and
    # the whole process stood still (the GIL held in native code, or no CPU), not the interface alone.
    watchdog_late_ms: float = 0.0


class _Ticks:
    """A 10 ms timer on the interface thread, and a watchdog that samples that thread's stack while late."""

    def __init__(self) -> None:
        from PyQt6.QtCore import Qt, QTimer

        self.times: list[float] = []
        self.stalls: list[_Stall] = []
        self._last_s = time.perf_counter()
        self._ui_thread = threading.get_ident()
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    def start(self) -> None:
        self.times, self.stalls = [], []
        self._last_s = time.perf_counter()
        self._stop.clear()
        self._watchdog = threading.Thread(target=self._watch, name="bench-watchdog", daemon=True)
        self._watchdog.start()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(2.0)
        for stall in self.stalls:
            after = bisect.bisect_right(self.times, stall.started_s)
            if after < len(self.times):
                stall.gap_ms = (self.times[after] - stall.started_s) * 1000.0

    def gaps_ms(self) -> np.ndarray:
        return np.diff(np.array(self.times)) * 1000.0

    def _tick(self) -> None:
        self._last_s = time.perf_counter()
        self.times.append(self._last_s)

    def _watch(self) -> None:
        woke_s = time.perf_counter()
        while not self._stop.wait(0.02):
            now = time.perf_counter()
            slept_ms, woke_s = (now - woke_s) * 1000.0, now
            last = self._last_s
            if now - last < LATE_S:
                continue
            frame = sys._current_frames().get(self._ui_thread)
            if frame is None:
                continue
            if not self.stalls or self.stalls[-1].started_s != last:
                self.stalls.append(_Stall(last))
            stall = self.stalls[-1]
            stall.samples.append(_where(frame))
            stall.watchdog_late_ms = max(stall.watchdog_late_ms, slept_ms - 20.0)


def _where(frame) -> tuple[str, ...]:
    """The innermost frames of a stack, as "path:line function", the project's own files shortened."""
    lines = []
    for entry in traceback.extract_stack(frame)[-6:]:
        path = Path(entry.filename)
        shown = path.relative_to(_REPO) if path.is_relative_to(_REPO) and ".venv" not in path.parts else path.name
        lines.append(f"{shown}:{entry.lineno} {entry.name}")
    return tuple(reversed(lines))


# --- the window ------------------------------------------------------------------------------------------


def _spin(seconds: float) -> None:
    from PyQt6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(max(0, int(seconds * 1000)), loop.quit)
    loop.exec()


def _wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        _spin(0.05)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (Linux /proc/stat; NaN elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return math.nan
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Phase:
    label: str
    seconds: float
    gaps_ms: np.ndarray
    cores: float
    machine_cores: float
    frames_per_s: tuple[float, ...] = ()
    map_updates_per_s: float = 0.0
    snapshots_per_s: float = 0.0
    flying: int = 0  # vehicles armed in mission mode at the end
    stalls: tuple[_Stall, ...] = ()

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.gaps_ms, q))

    @property
    def max_ms(self) -> float:
        return float(self.gaps_ms.max())


def _measure(window, ticks: _Ticks, label: str, seconds: float, streams: tuple[str, ...] = ()) -> Phase:
    snapshots = [0]

    def count(_states) -> None:
        snapshots[0] += 1

    window.fleet.states.connect(count)
    shown = [window.video_panel.view(n).frames_shown for n in streams]
    updates = window.map.js(_COUNT_UPDATES_JS)
    cpu0, busy0, t0 = _cpu_s(), _machine_busy_s(), time.perf_counter()
    ticks.start()
    try:
        _spin(seconds)
    finally:
        ticks.stop()
        window.fleet.states.disconnect(count)
    elapsed = time.perf_counter() - t0
    cores = (_cpu_s() - cpu0) / elapsed
    machine_cores = (_machine_busy_s() - busy0) / elapsed
    updates = window.map.js(_COUNT_UPDATES_JS) - updates
    return Phase(
        label,
        elapsed,
        ticks.gaps_ms(),
        cores,
        machine_cores,
        tuple((window.video_panel.view(n).frames_shown - b) / elapsed for n, b in zip(streams, shown, strict=True)),
        updates / elapsed,
        snapshots[0] / elapsed,
        sum(s.armed and s.flight_mode == "mission" for s in window.fleet.latest),
        tuple(ticks.stalls),
    )


def _open_window(tmp: Path):
    from PyQt6.QtWidgets import QApplication

    from groundstation.app.async_loop import AsyncLoop
    from groundstation.app.main_window import MainWindow
    from groundstation.app.settings import RUNS_DIR_KEY, app_settings
    from groundstation.app.tiles import TileSource

    app = QApplication.instance() or QApplication([sys.argv[0]])
    settings = app_settings(tmp / "settings.ini")
    settings.setValue(RUNS_DIR_KEY, str(tmp / "runs"))
    loop = AsyncLoop(name="bench-asyncio")
    loop.start()
    try:
        window = MainWindow(settings, loop=loop, tiles=TileSource.none())
    except BaseException:
        loop.stop()
        raise
    window.show()
    return app, loop, window


def _load(window, sim: dict) -> None:
    """Connect and fly the five vehicles, then add the two streams; returns once all of it runs."""
    from groundstation.app.video_panel import StreamConfig

    urls = sim["urls"]
    window.connect_fleet(urls)
    _wait_until(lambda: window.fleet.is_connected, SETUP_TIMEOUT_S, f"connecting {len(urls)} vehicles")
    _wait_until(
        lambda: len(window.fleet.latest) == len(urls) and all(s.link_ok for s in window.fleet.latest),
        30.0,
        "telemetry from every vehicle",
    )
    panel = window.fleet_panel
    panel.confirm = lambda _question: True
    panel.set_plans({i: [square_plan(tuple(home), i)] for i, home in enumerate(sim["homes"])})
    if not panel.run_all("start"):
        raise RuntimeError("the fleet panel would not start the vehicles")
    _wait_until(
        lambda: all(s.armed and s.flight_mode == "mission" for s in window.fleet.latest),
        60.0,
        "every vehicle flying its mission",
    )
    for name, (sdp, pose_url) in zip(STREAMS, sim["streams"], strict=True):
        window.add_stream(StreamConfig(name, sdp, pose_url))
    _wait_until(
        lambda: all(window.video_panel.view(n).frames_shown >= 5 for n in STREAMS), 60.0, "video on both streams"
    )


def run(tmp: Path) -> tuple[Phase, Phase]:
    app, loop, window = _open_window(tmp)
    try:
        _wait_until(lambda: window.map.is_ready, 30.0, "the map page")
        if not window.open_site(SITE):
            raise RuntimeError(f"the window would not open {SITE}")
        zones = len(load_site(SITE).zones)
        _wait_until(lambda: len(window.map.js("bw.inspect.zones()")) == zones, 20.0, "the site's zones on the map")
        _wait_until(lambda: window.planner_panel.result is not None, 60.0, "the first patrol plan")
        _spin(1.0)
        ticks = _Ticks()
        baseline = _measure(window, ticks, "idle, site open", BASELINE_S)
        with _Simulators(tmp / "sim") as sim:
            _load(window, sim.info)
            _spin(2.0)
            loaded = _measure(window, ticks, f"{VEHICLES} vehicles + {len(STREAMS)} streams", LOADED_S, STREAMS)
            window.close()
        return baseline, loaded
    finally:
        window.close()
        loop.stop()
        app.processEvents()


def _report(baseline: Phase, loaded: Phase) -> list[tuple[str, bool]]:
    print(
        f"interface thread, a {TICK_MS} ms timer: gaps between ticks (p50 / p99 / max); "
        f"CPU of the station process, and of the whole machine ({os.cpu_count()} cores)"
    )
    for p in (baseline, loaded):
        print(
            f"  {p.label:<28} {p.seconds:4.0f} s  {p.percentile(50):5.1f} / {p.percentile(99):6.1f} / "
            f"{p.max_ms:6.1f} ms   {p.cores:.2f} / {p.machine_cores:.2f} cores"
        )
    print(
        f"  ratio loaded/baseline        p50 {loaded.percentile(50) / baseline.percentile(50):.2f}×, "
        f"p99 {loaded.percentile(99) / baseline.percentile(99):.2f}×, max {loaded.max_ms / baseline.max_ms:.2f}×"
    )
    frames = ", ".join(f"{name} {fps:.1f}" for name, fps in zip(STREAMS, loaded.frames_per_s, strict=True))
    print(f"  frames shown per second: {frames}")
    print(
        f"  telemetry reaching the map: {loaded.map_updates_per_s:.1f} updates/s "
        f"({loaded.snapshots_per_s:.1f} fleet snapshots/s); {loaded.flying} of {VEHICLES} vehicles still flying"
    )
    for p in (baseline, loaded):
        _print_stalls(p)
    freeze_ms, phases = FREEZE_S * 1000, (baseline, loaded)
    return [
        *((f"{p.label}: max gap {p.max_ms:.0f} ms < {freeze_ms:.0f} ms", p.max_ms < freeze_ms) for p in phases),
        (f"every stream shows ≥ 5 frames/s: {frames}", min(loaded.frames_per_s) >= 5.0),
        (
            f"the map gets ≥ 5 telemetry updates/s: {loaded.map_updates_per_s:.1f}",
            loaded.map_updates_per_s >= 5.0,
        ),
    ]


def _print_stalls(phase: Phase) -> None:
    late = [s for s in phase.stalls if s.samples]
    if not late:
        return
    print(f"  {phase.label}: {len(late)} tick(s) later than {LATE_S * 1000:.0f} ms; where the interface thread was:")
    for stall in sorted(late, key=lambda s: s.gap_ms, reverse=True)[:3]:
        common, seen = collections.Counter(stall.samples).most_common(1)[0]
        print(
            f"    {stall.gap_ms:4.0f} ms, watchdog itself {stall.watchdog_late_ms:.0f} ms late, "
            f"{seen}/{len(stall.samples)} samples in: " + " ← ".join(common[:4])
        )


def main() -> int:
    # Before anything imports Qt: no display, and Chromium in a container without its sandbox.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox")
    with tempfile.TemporaryDirectory(prefix="bench-gui-") as tmp:
        try:
            baseline, loaded = run(Path(tmp))
        except (TimeoutError, RuntimeError) as exc:
            print(f"FAIL  the benchmark could not set up its load: {exc}")
            return 1
    print()
    checks = _report(baseline, loaded)
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1
