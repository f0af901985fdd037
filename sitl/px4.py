"""Real PX4 SITL instances on the simulator's port scheme, as PX4's own multi-vehicle scripts start them.

Following PX4-Autopilot's Tools/simulation/sitl_multiple_run.sh and
ROMFS/px4fmu_common/init.d-posix/rcS: instance N runs `bin/px4 -i N -d <build>/etc` in
its own working directory `<build>/instance_N`; rcS then makes it MAVLink system N+1
and points its API link at UDP 14540+N, where MAVSDK listens. The airframe comes from
PX4_SYS_AUTOSTART and PX4_SIM_MODEL: SIH (`sihsim_quadx`, 10040), headless and
simulator-free, by default; Gazebo (`gz_x500`, 4001) on request.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from missions.errors import UserError

BUILD_SUBDIR = Path("build") / "px4_sitl_default"
PX4_BINARY = Path("bin") / "px4"
RCS = Path("etc") / "init.d-posix" / "rcS"
SIH = ("sihsim_quadx", 10040)
GAZEBO = ("gz_x500", 4001)
NO_BUILD_REASON = "no PX4 SITL build: set PX4_DIR to PX4-Autopilot's build/px4_sitl_default"
STOP_GRACE_S = 5.0


def resolve_build_dir(path: str | os.PathLike | None = None) -> Path:
    """The px4_sitl_default build folder from `path` (or $PX4_DIR): the build itself or a PX4-Autopilot checkout."""
    given = path if path is not None else os.environ.get("PX4_DIR")
    if not given:
        raise UserError(f"{NO_BUILD_REASON} (or pass --px4 DIR)")
    root = Path(given).expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: no such folder (expected PX4-Autopilot's {BUILD_SUBDIR})")
    for candidate in (root, root / BUILD_SUBDIR):
        if (candidate / PX4_BINARY).is_file():
            if not (candidate / RCS).is_file():
                raise UserError(f"{candidate}: no {RCS} (is the SITL build complete? run `make px4_sitl`)")
            return candidate
    raise UserError(f"{root}: no {PX4_BINARY} here or in {BUILD_SUBDIR} (build PX4 with `make px4_sitl`)")


def find_build_dir() -> Path | None:
    """The build named by $PX4_DIR, or None when there is none (for skipping tests)."""
    try:
        return resolve_build_dir()
    except UserError:
        return None


@dataclass(frozen=True)
class Px4Instance:
    """How one PX4 SITL process is started: argv, extra environment, working directory."""

    instance: int
    argv: tuple[str, ...]
    env: dict[str, str] = field(hash=False)
    cwd: Path

    @property
    def system_id(self) -> int:
        return self.instance + 1

    @property
    def port(self) -> int:
        return 14540 + self.instance


def px4_instances(
    build_dir: Path,
    vehicles: int,
    homes: list[tuple[float, float]],
    gazebo: bool = False,
    speed_factor: float = 1.0,
    home_alt_m: float = 10.0,
    spacing_m: float = 5.0,
) -> list[Px4Instance]:
    model, autostart = GAZEBO if gazebo else SIH
    out = []
    for n in range(vehicles):
        lat, lon = homes[min(n, len(homes) - 1)]
        env = {
            "PX4_SYS_AUTOSTART": str(autostart),
            "PX4_SIM_MODEL": model,
            "PX4_HOME_LAT": f"{homes[0][0]:.7f}" if gazebo else f"{lat:.7f}",
            "PX4_HOME_LON": f"{homes[0][1]:.7f}" if gazebo else f"{lon:.7f}",
            "PX4_HOME_ALT": f"{home_alt_m:.1f}",
            "PX4_SIM_SPEED_FACTOR": f"{speed_factor:g}",
        }
        if gazebo:
            env["HEADLESS"] = "1"
            env["PX4_GZ_MODEL_POSE"] = f"{n * spacing_m:g},0"  # one world: vehicles side by side from the origin
        argv = (str(build_dir / PX4_BINARY), "-i", str(n), "-d", str(build_dir / "etc"))
        out.append(Px4Instance(n, argv, env, build_dir / f"instance_{n}"))
    return out


class Px4Fleet:
    """Starts the instances, and stops every process it started (each in its own session)."""

    def __init__(self, instances: list[Px4Instance]) -> None:
        self.instances = instances
        self._procs: list[subprocess.Popen] = []

    def start(self) -> None:
        for inst in self.instances:
            inst.cwd.mkdir(parents=True, exist_ok=True)
            log = open(inst.cwd / "out.log", "wb")  # noqa: SIM115 - handed to the child, closed in stop()
            proc = subprocess.Popen(
                inst.argv,
                cwd=inst.cwd,
                env={**os.environ, **inst.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # PX4 starts helpers (gz): stop() signals the whole group
            )
            proc.log = log  # type: ignore[attr-defined]
            self._procs.append(proc)

    def poll(self) -> list[int | None]:
        return [p.poll() for p in self._procs]

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_GRACE_S)
            proc.log.close()  # type: ignore[attr-defined]
        self._procs = []

    def __enter__(self) -> Px4Fleet:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pid, sig)
