"""The fleet link on the built-in simulator: mission upload time and telemetry load.

1. A 1,000-item mission uploaded through the fleet link (MAVSDK MissionRaw), beside the
   same items pushed by a bare pymavlink implementation of the mission protocol, to the
   same simulated vehicle in the same run.
2. Ten vehicles streaming telemetry for 60 s (simulator in its own process): the station
   process's CPU and the snapshots that arrive late (older than 1 s), beside bare MAVSDK
   subscriptions to the same streams with no fan-out, in the same run.
"""

from __future__ import annotations

import asyncio
import math
import resource
import socket
import subprocess
import sys
import time

from pymavlink.dialects.v20 import common as mavlink

from groundstation.fleet import FleetLink, RawItem, RawPlan
from sitl.sim import ALGECIRAS_PAD_DEG, SimFleet

ITEMS = 1000
VEHICLES = 10
STREAM_S = 60.0
CPU_GOAL_CORES = 0.5
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


async def _stream_with_link(ports: list[int]) -> tuple[float, int, int, float]:
    async with FleetLink.connect([f"udpin://127.0.0.1:{p}" for p in ports], timeout_s=30.0) as fleet:
        await asyncio.gather(*(v.wait_healthy(30.0) for v in fleet))
        late = snapshots = 0
        worst_age = 0.0
        with fleet.states.subscribe(keep=1) as sub:
            cpu0, t0 = _cpu_s(), time.monotonic()
            while time.monotonic() - t0 < STREAM_S:
                try:
                    states = await asyncio.wait_for(sub.get(), timeout=AGE_GOAL_S)
                except TimeoutError:
                    late += len(ports)
                    continue
                now = time.monotonic()
                for state in states:
                    snapshots += 1
                    age = now - state.time_s
                    worst_age = max(worst_age, age)
                    late += age > AGE_GOAL_S
            cores = (_cpu_s() - cpu0) / (time.monotonic() - t0)
        return cores, snapshots, late, worst_age


async def _stream_bare(ports: list[int]) -> tuple[float, int]:
    """Bare MAVSDK: one instance per vehicle, the same streams, values counted and dropped."""
    from mavsdk.asyncio import ComponentType, Configuration, Mavsdk
    from mavsdk.asyncio.plugins.mission_raw import MissionRawAsync
    from mavsdk.asyncio.plugins.telemetry import TelemetryAsync

    instances, tasks, counts = [], [], [0]
    try:
        for port in ports:
            m = Mavsdk(Configuration.create_with_component_type(ComponentType.GROUND_STATION))
            await m.add_any_connection(f"udpin://127.0.0.1:{port}")
            system = await m.first_autopilot(timeout_s=30.0)
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
        for m, *_ in instances:
            m.destroy()


def telemetry_benchmark() -> list[tuple[str, bool]]:
    base = _free_port_block(VEHICLES)
    ports = [base + i for i in range(VEHICLES)]
    sim = subprocess.Popen(
        [sys.executable, "-m", "groundstation.cli", "sim", "--vehicles", str(VEHICLES), "--base-port", str(base)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        if sim.poll() is not None:
            raise RuntimeError(f"simulator exited: {sim.stderr.read()[-500:]}")
        bare_cores, values = asyncio.run(_stream_bare(ports))
        cores, snapshots, late, worst_age = asyncio.run(_stream_with_link(ports))
    finally:
        sim.terminate()
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
    rate = snapshots / VEHICLES / STREAM_S
    print(
        f"{VEHICLES} vehicles for {STREAM_S:.0f} s: station {cores:.2f} cores with the fleet link, "
        f"{bare_cores:.2f} with bare MAVSDK subscriptions ({values / STREAM_S:.0f} values/s), "
        f"ratio {cores / bare_cores:.2f}×"
    )
    print(
        f"  snapshots: {rate:.1f} per vehicle per second, {late} older than {AGE_GOAL_S:g} s, "
        f"worst age {worst_age:.2f} s"
    )
    return [
        (f"station under {CPU_GOAL_CORES} core with {VEHICLES} vehicles: {cores:.2f}", cores < CPU_GOAL_CORES),
        (f"no snapshot older than {AGE_GOAL_S:g} s: {late} late", late == 0),
        (f"snapshots at 5 Hz or more per vehicle: {rate:.1f} Hz", rate >= 5.0),
    ]


def main() -> int:
    checks = upload_benchmark() + telemetry_benchmark()
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1
