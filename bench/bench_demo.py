"""`borderwatch demo` end to end: wall time, frame rate kept and CPU, against the bare flight.

Baseline, in the same process: the same plan flown on the same simulator at the same speed
factor through the same fleet link and run recorder, with no cameras and no detection. Then
the whole demo (cameras rendering and streaming H.264, a YOLO pipeline per stream, alerts,
evidence, report). The ratio says what seeing costs on top of flying. The simulation waits
for detection (lockstep), so every camera delivers its frame rate in the drones' own time and
what detection costs shows as the speed the simulation kept, against the speed factor it was
allowed. The goal is the whole default demo within 8 minutes on two cores.
"""

from __future__ import annotations

import asyncio
import resource
import tempfile
import time
from pathlib import Path

from groundstation.demo.headless import DemoConfig, choose_ports, fly_plans, plan_demo, run_headless
from groundstation.fleet.state import vehicle_name
from groundstation.runs.recorder import RunRecorder
from missions.formats import load_site
from sitl.vehicles.fleet import SimFleet

GOAL_S = 480.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _bare_flight(config: DemoConfig, directory: Path) -> float:
    site = load_site(config.site)
    plan = plan_demo(site, config)
    ports = choose_ports(config.drones, config.mavlink_port, config.video_port)
    fleet = SimFleet.at_site(site, config.drones, speed_factor=config.speed_factor, base_port=ports.mavlink)
    fleet.start()
    urls = [f"udpin://0.0.0.0:{v.port}" for v in fleet.vehicles]
    recorder = RunRecorder.create(directory, site, [(vehicle_name(i), u) for i, u in enumerate(urls)])
    started = time.monotonic()
    try:
        outcomes = asyncio.run(fly_plans(urls, plan, recorder, timeout_s=600.0))
    finally:
        recorder.close()
        fleet.stop()
    if not all(o.ok for o in outcomes):
        raise RuntimeError("the bare flight did not complete")
    return time.monotonic() - started


def main() -> int:
    config = DemoConfig()
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        cpu = _cpu_s()
        bare_s = _bare_flight(config, Path(tmp) / "bare")
        bare_cpu = (_cpu_s() - cpu) / bare_s
        print(f"baseline: the plan flown with no cameras and no detection: {bare_s:.1f} s, {bare_cpu:.2f} cores")

        config = DemoConfig(runs_dir=Path(tmp) / "runs")
        cpu, started = _cpu_s(), time.monotonic()
        result = run_headless(config, write=lambda line: None)
        total_s = time.monotonic() - started
        cores = (_cpu_s() - cpu) / total_s
    if not result.ok:
        print(f"the demo failed: {result.problems or [o for o in result.outcomes if not o.ok]}")
        return 1
    flight_s = result.flight_wall_s
    print(f"demo: {total_s:.1f} s in all, {flight_s:.1f} s flying, {cores:.2f} cores, "
          f"{result.kpis.alerts} alert(s), evidence {'intact' if result.kpis.evidence.ok else 'BROKEN'}")  # fmt: skip
    print(f"  flying with cameras and detection / bare flight: {flight_s / bare_s:.2f}×")
    for stream in result.streams:
        drone_s = stream.frames / config.camera_fps  # the drones' time its frames cover, one per 1/fps
        kept = drone_s / flight_s
        print(f"  {stream.name}: {stream.frames} frames, {stream.frames / flight_s:.1f} a wall second; the simulation "
              f"kept {kept:.1f}× real time of the {config.speed_factor:g}× allowed "
              f"({kept / config.speed_factor:.2f}×)")  # fmt: skip
    print(f"  whole demo / 8-minute goal: {total_s / GOAL_S:.2f}×")
    return 0 if total_s <= GOAL_S else 1
