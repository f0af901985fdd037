"""The fleet link: mission upload time, telemetry load at 10 and 50 vehicles, and what one PX4 costs.

1. A 1,000-item mission uploaded through the fleet link (MAVSDK MissionRaw), beside the
   same items pushed by a bare pymavlink implementation of the mission protocol, to the
   same simulated vehicle in the same run.
2. Ten vehicles (one port each), then fifty (ten to a port: five connections), streaming
   telemetry for 30 s from a simulator in its own process: the station process's CPU and
   its oldest snapshot, beside bare MAVSDK subscriptions to the same streams with no
   fan-out, in the same run.
3. One real PX4 SITL (SIH) instance at real-time speed with the fleet link connected: the
   CPU its process takes, beside the station's (skipped without a PX4 build).
"""

from __future__ import annotations

import asyncio
import math
import os
import resource
import socket
import subprocess
import sys
import time

from pymavlink.dialects.v20 import common as mavlink

from groundstation.fleet import FleetLink, RawItem, RawPlan
from sitl.vehicles.fleet import ALGECIRAS_PAD_DEG, SimFleet

ITEMS = 1000
FLEETS = ((10, 1), (50, 10))  # vehicles, vehicles per port
STREAM_S = 30.0
CPU_GOAL_CORES = {10: 0.5, 50: 1.0}
AGE_GOAL_S = 1.0


def _free_port_block(count: int) -> int:
    for base in range(15100, 30000, 50):
        try:
            socks = []
            for i in range(count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            for s in socks:
                s.close()
            return base
        except OSError:
            for s in socks:
                s.close()
    raise RuntimeError("no free block of UDP ports on 127.0.0.1")


def _mission(count: int) -> list[RawItem]:
    lat0, lon0 = ALGECIRAS_PAD_DEG
    items = []
    for seq in range(count):
        angle = seq * 0.05
        radius_deg = 0.0005 + 0.000002 * seq
        lat = lat0 + radius_deg * math.sin(angle)
        lon = lon0 + radius_deg * math.cos(angle)
        command = 22 if seq == 0 else 20 if seq == count - 1 else 16
        x, y = (0, 0) if command == 20 else (round(lat * 1e7), round(lon * 1e7))
        items.append(RawItem(seq, 3 if command != 20 else 2, command, int(seq == 0), 1, 0, 0, 0, 0, x, y, 40.0, 0))
    return items


def _raw_upload(port: int, items: list[RawItem], timeout_s: float = 120.0) -> float:
    """The mission protocol by hand: MISSION_COUNT, then answer each MISSION_REQUEST_INT."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(0.5)
    mav = mavlink.MAVLink(None, srcSystem=245, srcComponent=190)
    peer = None
    deadline = time.monotonic() + timeout_s
    while peer is None and time.monotonic() < deadline:
        try:
            _, peer = sock.recvfrom(4096)
        except TimeoutError:
            continue
    start = time.perf_counter()
    sock.sendto(mav.mission_count_encode(1, 1, len(items), 0).pack(mav), peer)
    last_sent = time.monotonic()
    try:
        while time.monotonic() < deadline:
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                if time.monotonic() - last_sent > 1.5:
                    sock.sendto(mav.mission_count_encode(1, 1, len(items), 0).pack(mav), peer)
                    last_sent = time.monotonic()
                continue
            for msg in mav.parse_buffer(data) or []:
                kind = msg.get_type()
                if kind in ("MISSION_REQUEST_INT", "MISSION_REQUEST"):
                    it = items[msg.seq]
                    out = mav.mission_item_int_encode(
                        1,
                        1,
                        it.seq,
                        it.frame,
                        it.command,
                        it.current,
                        it.autocontinue,
                        it.param1,
                        it.param2,
                        it.param3,
                        it.param4,
                        it.x,
                        it.y,
                        it.z,
                        0,
                    )
                    sock.sendto(out.pack(mav), peer)
                    last_sent = time.monotonic()
                elif kind == "MISSION_ACK":
                    if msg.type != 0:
                        raise RuntimeError(f"raw upload refused: MISSION_ACK type {msg.type}")
                    return time.perf_counter() - start
        raise TimeoutError("raw upload did not finish")
    finally:
        sock.close()


async def _link_upload(port: int, items: list[RawItem]) -> float:
    async with FleetLink.connect([f"udpin://127.0.0.1:{port}"], timeout_s=20.0) as fleet:
        start = time.perf_counter()
        await fleet[0].upload(RawPlan(tuple(items), (), ()), timeout_s=120.0, verify=False)
        return time.perf_counter() - start


def upload_benchmark() -> list[tuple[str, bool]]:
    items = _mission(ITEMS)
    port = _free_port_block(1)
    with SimFleet([ALGECIRAS_PAD_DEG], speed_factor=1.0, base_port=port) as fleet:
        raw_s = _raw_upload(port, items)
        assert len(fleet.vehicles[0].uploaded(0)) == ITEMS
        ours_s = asyncio.run(_link_upload(port, items))
        assert len(fleet.vehicles[0].uploaded(0)) == ITEMS
    print(
        f"upload of a {ITEMS}-item mission: fleet link {ours_s:.2f} s, bare pymavlink {raw_s:.2f} s, "
        f"ratio {ours_s / raw_s:.2f}× ({ITEMS / ours_s:.0f} items/s)"
    )
    return []


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _stream_with_link(urls: list[str]) -> tuple[float, int, int, float]:
    async with FleetLink.connect(urls, timeout_s=30.0) as fleet:
        await asyncio.gather(*(v.wait_healthy(30.0) for v in fleet))
        late = snapshots = 0
        worst_age = 0.0
        with fleet.states.subscribe(keep=1) as sub:
            cpu0, t0 = _cpu_s(), time.monotonic()
            while time.monotonic() - t0 < STREAM_S:
                try:
                    states = await asyncio.wait_for(sub.get(), timeout=AGE_GOAL_S)
                except TimeoutError:
                    late += len(urls)
                    continue
                now = time.monotonic()
                for state in states:
                    snapshots += 1
                    age = now - state.monotonic_s
                    worst_age = max(worst_age, age)
                    late += age > AGE_GOAL_S
            cores = (_cpu_s() - cpu0) / (time.monotonic() - t0)
        return cores, snapshots, late, worst_age


async def _stream_bare(ports: list[int], vehicles: int) -> tuple[float, int]:
    """Bare MAVSDK: one instance per port, the same streams of every vehicle, values counted and dropped."""
    from mavsdk.asyncio import ComponentType, Configuration, Mavsdk
    from mavsdk.asyncio.plugins.mission_raw import MissionRawAsync
    from mavsdk.asyncio.plugins.telemetry import TelemetryAsync

    mavsdks, instances, tasks, counts = [], [], [], [0]
    try:
        for port in ports:
            m = Mavsdk(Configuration.create_with_component_type(ComponentType.GROUND_STATION))
            mavsdks.append(m)
            await m.add_any_connection(f"udpin://127.0.0.1:{port}")
        deadline = time.monotonic() + 30.0
        while sum([await m.system_count() for m in mavsdks]) < vehicles and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        for m in mavsdks:
            for system in await m.get_systems():
                instances.append((m, TelemetryAsync(system), MissionRawAsync(system)))

        async def count(subscribe):
            async for _ in subscribe():
                counts[0] += 1

        for _, t, m in instances:
            for subscribe in (
                t.subscribe_position,
                t.subscribe_heading,
                t.subscribe_velocity_ned,
                t.subscribe_battery,
                t.subscribe_flight_mode,
                t.subscribe_armed,
                t.subscribe_landed_state,
                t.subscribe_health,
                t.subscribe_status_text,
                m.subscribe_mission_progress,
            ):
                tasks.append(asyncio.ensure_future(count(subscribe)))
        cpu0, t0 = _cpu_s(), time.monotonic()
        await asyncio.sleep(STREAM_S)
        return (_cpu_s() - cpu0) / (time.monotonic() - t0), counts[0]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for m in mavsdks:
            m.destroy()


def telemetry_benchmark(vehicles: int, per_port: int) -> list[tuple[str, bool]]:
    base = _free_port_block(vehicles // per_port)
    ports = [base + k for k in range(vehicles // per_port)]
    urls = [f"udpin://127.0.0.1:{base + n // per_port}" for n in range(vehicles)]
    if per_port > 1:
        urls = [f"{url}?system={n + 1}" for n, url in enumerate(urls)]
    command = [
        sys.executable,
        "-m",
        "groundstation.commands.cli",
        "sim",
        "--vehicles",
        str(vehicles),
        "--base-port",
        str(base),
    ]
    sim = subprocess.Popen(
        [*command, "--per-port", str(per_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        if sim.poll() is not None:
            raise RuntimeError(f"simulator exited: {sim.stderr.read()[-500:]}")
        bare_cores, values = asyncio.run(_stream_bare(ports, vehicles))
        cores, snapshots, late, worst_age = asyncio.run(_stream_with_link(urls))
    finally:
        sim.terminate()
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
    rate = snapshots / vehicles / STREAM_S
    how = f"{per_port} to a port" if per_port > 1 else "one port each"
    print(
        f"{vehicles} vehicles ({how}) for {STREAM_S:.0f} s: station {cores:.2f} cores with the fleet link, "
        f"{bare_cores:.2f} with bare MAVSDK subscriptions ({values / STREAM_S:.0f} values/s), "
        f"ratio {cores / bare_cores:.2f}×"
    )
    print(
        f"  snapshots: {rate:.1f} per vehicle per second, {late} older than {AGE_GOAL_S:g} s, oldest {worst_age:.2f} s"
    )
    goal = CPU_GOAL_CORES[vehicles]
    return [
        (f"station under {goal} core with {vehicles} vehicles: {cores:.2f}", cores < goal),
        (f"no snapshot older than {AGE_GOAL_S:g} s with {vehicles}: {late} late", late == 0),
        (f"snapshots at 5 Hz or more per vehicle with {vehicles}: {rate:.1f} Hz", rate >= 5.0),
    ]


def px4_benchmark() -> list[tuple[str, bool]]:
    """What one PX4 SIH instance costs at real-time speed, flown by nothing, watched by the fleet link."""
    from sitl.px4_sitl.launcher import Px4Fleet, claimed_instances, find_build_dir

    build = find_build_dir()
    if build is None:
        print("one PX4 instance: skipped, no PX4 SITL build (set PX4_DIR)")
        return []
    with claimed_instances(1) as first, Px4Fleet(build, [ALGECIRAS_PAD_DEG], first_instance=first) as px4:
        pid = px4.pids[0]

        async def watch() -> tuple[float, float]:
            async with FleetLink.connect(px4.connect_urls, timeout_s=30.0) as fleet:
                await fleet[0].wait_healthy(30.0)
                px4_0, station0, t0 = _process_cpu_s(pid), _cpu_s(), time.monotonic()
                await asyncio.sleep(STREAM_S)
                elapsed = time.monotonic() - t0
                return (_process_cpu_s(pid) - px4_0) / elapsed, (_cpu_s() - station0) / elapsed

        px4_cores, station_cores = asyncio.run(watch())
    print(
        f"one PX4 SIH instance at real-time speed for {STREAM_S:.0f} s: {px4_cores:.2f} cores "
        f"(the station watching it: {station_cores:.2f}); at 4x, about {4 * px4_cores:.1f}"
    )
    return [(f"one PX4 instance under a quarter of a core: {px4_cores:.2f}", px4_cores < 0.25)]


def _process_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    checks = upload_benchmark()
    for vehicles, per_port in FLEETS:
        checks += telemetry_benchmark(vehicles, per_port)
    checks += px4_benchmark()
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1
