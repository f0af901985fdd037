"""The `borderwatch demo` process as tests run it: on ports of its own, and interrupted mid-flight."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sitl.ports import free_port_block
from sitl.tak import ReceivedCot, TakReceiver
from sitl.vehicles.fleet import ONBOARD_PORT_OFFSET

BORDERWATCH = Path(sys.executable).with_name("borderwatch")


@dataclass(frozen=True)
class DemoProcess:
    command: list[str]
    ports: list[int]  # every UDP port the demo's drones, onboard links and cameras use
    runs: Path

    def only_run(self) -> Path:
        runs = [p for p in self.runs.iterdir() if p.is_dir()]
        assert len(runs) == 1, runs
        return runs[0]

    def interrupt_when_flying(self, sig: int = signal.SIGINT, within_s: float = 120.0):
        """Start it, send `sig` once it reports vehicle 1 past its first item; (returncode, out, err, children)."""
        proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            flying, deadline = False, time.monotonic() + within_s
            while time.monotonic() < deadline and not flying:
                flying = bool(re.search(r"vehicle 1 mission item [1-9]", proc.stdout.readline()))
            assert flying, "the demo never reported its drones flying"
            children = _children(proc.pid)
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return proc.returncode, out, err, children


def cot_sent(stdout: str) -> int:
    """How many CoT events the demo says it sent to its one destination, in its last lines."""
    found = re.findall(r"CoT [a-z]+://127\.0\.0\.1:\d+: (\d+) sent", stdout)
    assert len(found) == 1, f"one CoT summary line, not {len(found)}"
    return int(found[0])


def cot_received(tak: TakReceiver, stdout: str, *, all_of_them: bool = True) -> list[ReceivedCot]:
    """What the demo sent to ``tak``, once it has all come in: the receiver reads the last of it,
    its track ends, after the demo has exited. Over UDP a datagram may be lost (``all_of_them=False``)."""
    sent = cot_sent(stdout)
    arrived = tak.wait_for(sent, 10.0)
    assert arrived or not all_of_them, f"{len(tak.received)} of the {sent} CoT events the demo sent arrived"
    return tak.received


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def demo_process(tmp_path: Path):
    """`demo_process(*args)`: the demo's command line with its run folders under tmp_path and free ports."""

    def make(*extra: str) -> DemoProcess:
        base = free_port_block(2, also=ONBOARD_PORT_OFFSET)
        video = free_port_block(4)
        ports = [base, base + 1, base + ONBOARD_PORT_OFFSET, base + ONBOARD_PORT_OFFSET + 1, *range(video, video + 4)]
        runs = tmp_path / "runs"
        command = [str(BORDERWATCH), "demo", "--runs", str(runs), "--base-port", str(base),
                   "--video-port", str(video), *extra]  # fmt: skip
        return DemoProcess(command, ports, runs)

    return make
