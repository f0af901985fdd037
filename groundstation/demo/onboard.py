"""The demo with detection onboard: each simulated drone's pipeline in a process of its own, as on
a companion computer, talking to the ground only through the broker.

Each unit is ``python -m vision.onboard`` reading its drone's camera (H.264 over RTP) and pose
(MAVLink), with its own evidence log and outbox in a folder of the drone's, and its own
certificate. The station's side is `groundstation.link.station.StationBus`: a mosquitto of
its own (or the agency's broker) and the receiver, which puts what the units send into the
run folder as the ground pipeline's results go there.

The units read their cameras as a real unit does, in real time and taking the newest frame,
so the simulation does not wait for them: the run is recorded on the wall clock, its time
scale the speed factor.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from groundstation.demo.fleet import SimulatedFleet
from groundstation.link.receiver import Handlers, UnitView
from groundstation.link.station import StationBus, bus_site, recording
from groundstation.runs.recorder import RunRecorder
from vision.alerts import Alert
from vision.signing import TrustStore, create_key, default_trust_dir

if TYPE_CHECKING:
    from missions.site import Site
    from vision.camera import Intrinsics
    from vision.cot.link import CotLink

STOP_TIMEOUT_S = 30.0  # a unit's goodbye: its last frame, its outbox drained, its offline status
CATCH_UP_S = 15.0  # for the station to receive what the units sent before they stopped


class OnboardUnits:
    """The station's bus and one onboard process per drone, until ``close``."""

    def __init__(
        self,
        sim: SimulatedFleet,
        site_file: Path,
        site_name: str,
        recorder: RunRecorder,
        work_dir: Path,
        *,
        model: str | None = None,
        broker_url: str | None = None,
        pki_dir: Path | None = None,
        on_alert: Callable[[Alert], None] | None = None,
        on_problem: Callable[[str], None] | None = None,
        cot: CotLink | None = None,
        site: Site | None = None,
        intrinsics: Intrinsics | None = None,
    ) -> None:
        self.recorder = recorder
        self.problems: list[str] = []
        self._on_problem = on_problem
        self._closing = False
        then = Handlers(alert=lambda _unit, a: on_alert(a) if on_alert else None, problem=self._problem)
        self.bus = StationBus(
            bus_site(site_name),
            broker_url=broker_url,
            pki_dir=pki_dir,
            units=len(sim.urls),
            evidence_dir=recorder.onboard_dir,
            handlers=self._handlers(recording(recorder, then), cot, site, intrinsics),
        )
        self._stack = contextlib.ExitStack()
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[Path] = []
        try:
            self._stack.enter_context(self.bus)
            for i, (sdp, pose) in enumerate(zip(sim.sdp_paths, sim.pose_urls, strict=True)):
                self._start_unit(i + 1, sdp, pose, site_file, work_dir, sim.intrinsics.hfov_deg, model)
        except BaseException:
            self.close()
            raise

    def _handlers(self, handlers: Handlers, cot: CotLink | None, site: Site | None, intrinsics) -> Handlers:
        """What units send, recorded; with a CoT link, on TAK screens too (as `borderwatch cot` reads the bus)."""
        if cot is None:
            return handlers
        from groundstation.link.cot import BusToCot

        frame = None if site is None else site.frame
        bridge = BusToCot(cot.feed, site_frame=frame, intrinsics=intrinsics, evidence_dir=self.recorder.onboard_dir)
        return bridge.handlers(handlers)

    @property
    def broker_url(self) -> str:
        return self.bus.address.url

    def _start_unit(self, n: int, sdp: Path, pose: str, site_file: Path, work: Path, hfov: float, model) -> None:
        folder = work / f"unit-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        identity = self.bus.unit_identity(n)
        # The unit's own signing key, which this station trusts: its evidence is verified against it.
        key = create_key(folder / "signing.key", force=True)
        TrustStore.load(default_trust_dir()).trust(key.public)
        args = [
            sys.executable, "-m", "vision.onboard", "--mavlink", pose, "--source", str(sdp), "--site", str(site_file),
            "--hfov", f"{hfov:g}", "--evidence", str(folder / "evidence"), "--outbox", str(folder / "outbox"),
            "--broker", self.bus.address.url, "--pki", str(self.bus.pki_dir), "--unit", identity,
            "--key", str(key.path),
        ]  # fmt: skip
        if model is not None:
            args += ["--model", str(model)]
        log = folder / "onboard.log"
        self._logs.append(log)
        with open(log, "wb") as out:
            self._procs.append(subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT))

    def views(self) -> list[UnitView]:
        assert self.bus.receiver is not None
        return self.bus.receiver.unit_views()

    def rates(self) -> list[tuple[str, float]]:
        return [(view.name, view.fps) for view in self.views()]

    @property
    def problem(self) -> str | None:
        for n, proc in enumerate(self._procs, 1):
            code = proc.poll()
            if code is not None and code != 0:
                return f"unit-{n} exited with status {code}: {self._tail(n)}"
        return None

    def close(self) -> None:
        """Stop every unit (each drains its outbox), wait for the station to hold what they sent."""
        self._closing = True  # units going offline now is what was asked for
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for n, proc in enumerate(self._procs, 1):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self._problem(f"unit-{n} did not stop within {STOP_TIMEOUT_S:g} s and was killed")
        receiver = self.bus.receiver
        if receiver is not None:
            deadline = time.monotonic() + CATCH_UP_S
            units = range(1, len(self._procs) + 1)
            while time.monotonic() < deadline and not all(receiver.evidence_check(u).same_chain for u in units):
                time.sleep(0.1)
            for u in units:
                check = receiver.evidence_check(u)
                self.recorder.note_onboard_head(u, *check.head)
                if not check.same_chain:
                    self._problem(str(check))
        self._procs.clear()
        self._stack.close()

    def _problem(self, line: str) -> None:
        if self._closing and line.endswith(": offline"):
            return
        self.problems.append(line)
        if self._on_problem is not None:
            self._on_problem(line)

    def _tail(self, n: int) -> str:
        try:
            lines = self._logs[n - 1].read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "no output"
