"""Real PX4 SITL instances on PX4's own port scheme, started as PX4's multi-vehicle script starts them.

Following PX4-Autopilot's Tools/simulation/sitl_multiple_run.sh and
ROMFS/px4fmu_common/init.d-posix/rcS: instance N runs `bin/px4 -i N -d <build>/etc` in a
working folder of its own; rcS makes it MAVLink system N+1, points its API link at UDP
14540+N (where MAVSDK listens) and has its GCS link listen on 18570+N. The airframe
comes from PX4_SIM_MODEL: SIH (`sihsim_quadx`, 10040), headless and simulator-free, by
default; Gazebo (`gz_x500`, 4001) on request.

The build is never written to: every instance's working folder (parameters, dataman,
logs) lies in a temporary folder of the fleet's own, beside a `bin/` of links to the
build's `px4` binary under the names of its commands (`px4-param`, `px4-commander`, …),
which rcS calls and which a build copied without its symbolic links no longer has.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pymavlink.dialects.v20 import common as mavlink2

from missions.errors import UserError
from sitl.ports import udp_ports_busy

BUILD_SUBDIR = Path("build") / "px4_sitl_default"
PX4_BINARY = Path("bin") / "px4"
RCS = Path("etc") / "init.d-posix" / "rcS"
SIH = ("sihsim_quadx", 10040)
GAZEBO = ("gz_x500", 4001)
# The build beside the checkout, where this project's machines keep one (../shared/px4).
SHARED_BUILD = Path(__file__).resolve().parents[3] / "shared" / "px4"
NO_BUILD_REASON = f"no PX4 SITL build: set PX4_DIR to PX4-Autopilot's {BUILD_SUBDIR} (none in {SHARED_BUILD})"
STOP_GRACE_S = 5.0
READY_TIMEOUT_S = 60.0
# rcS sends every instance above 9 to one API port, so at most ten can be told apart.
MAX_INSTANCES = 10

API_PORT, API_LOCAL_PORT, GCS_LOCAL_PORT = 14540, 14580, 18570
# PX4's onboard payload link (rcS: 14280+N, sending to 14030+N): meant for a camera, and here the
# launcher's own line to each instance, for its readiness and injected faults. It is not the GCS
# link, which answers only the first address that talks to it and stays QGroundControl's.
PAYLOAD_LOCAL_PORT, PAYLOAD_PORT = 14280, 14030
# The SIH display link (19450+N, sending HIL_STATE_QUATERNION to 19410+N): the simulated truth.
SIH_DISPLAY_PORT = 19410
# What instance N binds (rcS's px4-rc.mavlink): GCS, API, payload, gimbal and SIH display links.
_LOCAL_PORT_BASES = (GCS_LOCAL_PORT, API_LOCAL_PORT, PAYLOAD_LOCAL_PORT, 13030, 19450)
# Parameters every instance gets: no flight logs (nobody reads them here, and they fill disks);
# failure injection on, as PX4's own SITL tests have it, so tests can inject battery faults; and
# the built-in simulator's 25-minute battery instead of PX4's simulated one, which empties in a
# minute to a floor of 50 % and would make every sortie plan meaningless.
DEFAULT_PARAMS: Mapping[str, str] = {
    "SDLOG_MODE": "-1",
    "SYS_FAILURE_EN": "1",
    "SIM_BAT_DRAIN": "1500",
    "SIM_BAT_MIN_PCT": "0",
}


def instance_ports_busy(instance: int) -> list[int]:
    """The UDP ports instance N needs (its own, and where it sends to MAVSDK, the launcher and the
    cameras) that something holds now."""
    theirs = (base + instance for base in _LOCAL_PORT_BASES)
    return udp_ports_busy((*theirs, *(base + instance for base in (API_PORT, PAYLOAD_PORT, SIH_DISPLAY_PORT))))


@contextlib.contextmanager
def claimed_instances(count: int, lock_dir: Path | None = None):
    """`count` consecutive PX4 instance numbers that nobody else uses, held for the `with` block.

    For tests that run beside other PX4 SITL users: instance numbers fix the ports, so each
    claim takes a lock file per instance (released when the block ends or the process dies)
    and skips instances whose ports are taken.
    """
    folder = lock_dir or Path(tempfile.gettempdir())
    for first in range(MAX_INSTANCES - count + 1):
        held = []
        try:
            for n in range(first, first + count):
                fh = open(folder / f"borderwatch-px4-instance-{n}.lock", "w")  # noqa: SIM115 - held while claimed
                held.append(fh)
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if instance_ports_busy(n):
                    raise BlockingIOError(n)
        except BlockingIOError:
            for fh in held:
                fh.close()
            continue
        try:
            yield first
        finally:
            for fh in held:
                fh.close()
        return
    raise RuntimeError(f"no {count} consecutive PX4 instances (0–{MAX_INSTANCES - 1}) are free on this machine")


class Px4StartError(RuntimeError):
    """A PX4 instance exited, or never said it was ready; the message names it and says why."""


def find_build_dir() -> Path | None:
    """The build named by $PX4_DIR, else the one in ../shared/px4, else None (tests then skip).

    A $PX4_DIR that is no build is a UserError, not a reason to skip: it was asked for.
    """
    if os.environ.get("PX4_DIR"):
        return resolve_build_dir(os.environ["PX4_DIR"])
    if (SHARED_BUILD / PX4_BINARY).is_file():
        return resolve_build_dir(SHARED_BUILD)
    return None


def resolve_build_dir(path: str | os.PathLike | None = None) -> Path:
    """The SITL build from `path` (else $PX4_DIR, else ../shared/px4): a folder with bin/px4 and etc/,
    as `build/px4_sitl_default` is, or a PX4-Autopilot checkout holding one."""
    if path is None:
        found = find_build_dir()
        if found is None:
            raise UserError(f"{NO_BUILD_REASON} (or pass --px4 DIR)")
        return found
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: no such folder (expected PX4-Autopilot's {BUILD_SUBDIR})")
    for candidate in (root, root / BUILD_SUBDIR):
        if (candidate / PX4_BINARY).is_file():
            if not (candidate / RCS).is_file():
                raise UserError(f"{candidate}: no {RCS} (is the SITL build complete? run `make px4_sitl`)")
            if not os.access(candidate / PX4_BINARY, os.X_OK):
                raise UserError(f"{candidate / PX4_BINARY}: not executable")
            return candidate.resolve()
    raise UserError(f"{root}: no {PX4_BINARY} here or in {BUILD_SUBDIR} (build PX4 with `make px4_sitl`)")


@dataclass(frozen=True)
class Px4Instance:
    """How one PX4 SITL process is started: argv, extra environment, working folder."""

    instance: int
    argv: tuple[str, ...]
    env: dict[str, str] = field(hash=False)
    cwd: Path
    home: tuple[float, float]

    @property
    def system_id(self) -> int:
        return self.instance + 1

    @property
    def port(self) -> int:
        """Where PX4 sends its API link: MAVSDK listens here."""
        return API_PORT + self.instance

    @property
    def connect_url(self) -> str:
        return f"udpin://0.0.0.0:{self.port}"

    @property
    def gcs_port(self) -> int:
        """Where PX4's GCS link listens (it answers whoever sends to it)."""
        return GCS_LOCAL_PORT + self.instance

    @property
    def payload_port(self) -> int:
        """Where PX4's payload link sends: the launcher listens here."""
        return PAYLOAD_PORT + self.instance

    @property
    def sih_display_port(self) -> int:
        """Where PX4's SIH display link sends the simulated vehicle's true state."""
        return SIH_DISPLAY_PORT + self.instance

    @property
    def log_path(self) -> Path:
        return self.cwd / "out.log"


def px4_instances(
    build_dir: Path,
    homes: Sequence[tuple[float, float]],
    root: Path,
    *,
    first_instance: int = 0,
    gazebo: bool = False,
    speed_factor: float = 1.0,
    home_alt_m: float = 10.0,
    spacing_m: float = 5.0,
    params: Mapping[str, str] | None = None,
) -> list[Px4Instance]:
    """One instance per home, numbered from `first_instance`, each working in `root`/instance_N."""
    if first_instance < 0 or first_instance + len(homes) > MAX_INSTANCES:
        raise UserError(
            f"PX4 instances {first_instance}–{first_instance + len(homes) - 1}: PX4's port scheme "
            f"tells at most {MAX_INSTANCES} apart (instances 0–{MAX_INSTANCES - 1})"
        )
    model, autostart = GAZEBO if gazebo else SIH
    settings = {**DEFAULT_PARAMS, **(params or {})}
    out = []
    for i, (lat, lon) in enumerate(homes):
        n = first_instance + i
        env = {
            "PX4_SYS_AUTOSTART": str(autostart),
            "PX4_SIM_MODEL": model,
            "PX4_HOME_LAT": f"{homes[0][0] if gazebo else lat:.7f}",
            "PX4_HOME_LON": f"{homes[0][1] if gazebo else lon:.7f}",
            "PX4_HOME_ALT": f"{home_alt_m:.1f}",
            "PX4_SIM_SPEED_FACTOR": f"{speed_factor:g}",
            **{f"PX4_PARAM_{name}": value for name, value in settings.items()},
        }
        if gazebo:
            env["HEADLESS"] = "1"
            env["PX4_GZ_MODEL_POSE"] = f"{i * spacing_m:g},0"  # one world: vehicles side by side from the origin
        argv = (str(root / PX4_BINARY), "-i", str(n), "-d", str(build_dir / "etc"))
        out.append(Px4Instance(n, argv, env, root / f"instance_{n}", (lat, lon)))
    return out


def link_commands(build_dir: Path, root: Path) -> None:
    """`root`/bin: the build's px4 and a link to it under every command name rcS calls.

    PX4 puts the folder its binary was started from on PATH, so started as `root`/bin/px4
    it finds these, whether or not the build still has its own links.
    """
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "px4").symlink_to(build_dir / PX4_BINARY)
    for entry in sorted((build_dir / "bin").iterdir()):
        if entry.name.startswith("px4-"):
            link = bin_dir / entry.name
            if entry.name.endswith(".sh"):
                link.symlink_to(entry)
            else:
                link.symlink_to("px4")


class Px4Fleet:
    """PX4 SITL instances at `homes`: started and waited for, or stopped, with nothing left behind.

    `start()` refuses ports another program holds (UserError naming the port), and raises
    Px4StartError when an instance exits or does not answer on its GCS link within
    `ready_timeout_s`; either way no process is left running and the temporary folder goes.
    """

    def __init__(
        self,
        build_dir: Path,
        homes: Sequence[tuple[float, float]],
        *,
        first_instance: int = 0,
        gazebo: bool = False,
        speed_factor: float = 1.0,
        params: Mapping[str, str] | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        if not homes:
            raise ValueError("a PX4 fleet needs at least one home")
        self.build_dir = build_dir
        self.root = Path(tempfile.mkdtemp(prefix="borderwatch-px4-"))
        self.ready_timeout_s = ready_timeout_s
        try:
            self.instances = px4_instances(
                build_dir,
                homes,
                self.root,
                first_instance=first_instance,
                gazebo=gazebo,
                speed_factor=speed_factor,
                params=params,
            )
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        self._procs: list[subprocess.Popen] = []
        self._logs: list = []
        self._links: list[PayloadLink] = []

    @property
    def connect_urls(self) -> list[str]:
        return [inst.connect_url for inst in self.instances]

    @property
    def homes(self) -> list[tuple[float, float]]:
        return [inst.home for inst in self.instances]

    def start(self, wait_ready: bool = True) -> None:
        try:
            self._check_ports()
            link_commands(self.build_dir, self.root)
            for inst in self.instances:
                self._links.append(PayloadLink(inst))
                self._spawn(inst)
            if wait_ready:
                for inst, proc, link in zip(self.instances, self._procs, self._links, strict=True):
                    self._wait_ready(inst, proc, link)
            # The payload link is free again for a camera's pose reader (vision.pose on 14030+N).
            for link in self._links:
                link.close()
            self._links = []
        except BaseException:
            self.stop()
            raise

    def _check_ports(self) -> None:
        for inst in self.instances:
            busy = instance_ports_busy(inst.instance)
            if busy:
                raise UserError(
                    f"UDP port {busy[0]} is taken: PX4 instance {inst.instance} needs it "
                    f"(another PX4 SITL instance {inst.instance} running? stop it, or choose other instances)"
                )

    def _spawn(self, inst: Px4Instance) -> None:
        inst.cwd.mkdir(parents=True, exist_ok=True)
        log = open(inst.log_path, "wb")  # noqa: SIM115 - handed to the child, closed in stop()
        self._logs.append(log)
        try:
            proc = subprocess.Popen(
                inst.argv,
                cwd=inst.cwd,
                env={**os.environ, **inst.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # PX4 starts helpers (gz): stop() signals the whole group
            )
        except OSError as exc:
            raise Px4StartError(f"PX4 instance {inst.instance}: cannot start {inst.argv[0]}: {exc}") from None
        self._procs.append(proc)

    def _wait_ready(self, inst: Px4Instance, proc: subprocess.Popen, link: PayloadLink) -> None:
        """Until the instance's heartbeat says it is in standby: started, calibrated, waiting to be armed."""
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise Px4StartError(
                    f"PX4 instance {inst.instance} ({self.build_dir}) exited with code {proc.returncode} "
                    f"before it was ready: {_last_line(inst.log_path)}"
                )
            hb = link.recv("HEARTBEAT", timeout_s=0.5)
            if hb is not None and hb.system_status == mavlink2.MAV_STATE_STANDBY:
                return
        raise Px4StartError(
            f"PX4 instance {inst.instance} ({self.build_dir}) said nothing on UDP {inst.payload_port} within "
            f"{self.ready_timeout_s:g} s: {_last_line(inst.log_path)}"
        )

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def poll(self) -> list[int | None]:
        return [p.poll() for p in self._procs]

    def inject_failure(self, index: int, unit: int, failure_type: int, instance: int = 0) -> int:
        """MAV_CMD_INJECT_FAILURE to instance `index` over its payload link; the MAV_RESULT it answered."""
        link = PayloadLink(self.instances[index])
        try:
            return link.command(mavlink2.MAV_CMD_INJECT_FAILURE, unit, failure_type, instance)
        finally:
            link.close()

    def stop_module(self, index: int, module: str) -> None:
        """Stop one of instance `index`'s modules, as `px4-<module> --instance N stop` in PX4's shell does:
        for faults PX4 cannot inject in SIH (`sensor_gps_sim`: the GPS receiver goes silent)."""
        inst = self.instances[index]
        command = [str(self.root / "bin" / f"px4-{module}"), "--instance", str(inst.instance), "stop"]
        done = subprocess.run(command, cwd=inst.cwd, capture_output=True, text=True, timeout=10, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"PX4 instance {inst.instance}: `{module} stop` failed: {done.stdout}{done.stderr}")

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
        for log in self._logs:
            log.close()
        for link in self._links:
            link.close()
        self._procs, self._logs, self._links = [], [], []
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Px4Fleet:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class PayloadLink:
    """The launcher's line to one instance, on PX4's payload link: its heartbeats and messages in,
    commands out. Opened for a moment (readiness, a fault to inject), so the port stays free for
    whoever else listens there, and nobody else's link is disturbed."""

    def __init__(self, inst: Px4Instance, host: str = "127.0.0.1") -> None:
        self.target = (host, PAYLOAD_LOCAL_PORT + inst.instance)
        self.system_id = inst.system_id
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, inst.payload_port))
        except OSError as exc:
            self.sock.close()
            raise UserError(f"UDP port {inst.payload_port} is taken: PX4 instance {inst.instance} needs it") from exc
        self.mav = mavlink2.MAVLink(self, srcSystem=255, srcComponent=mavlink2.MAV_COMP_ID_MISSIONPLANNER)
        self.mav.robust_parsing = True

    def write(self, buf: bytes) -> None:  # pymavlink's file-like sink
        with contextlib.suppress(OSError):
            self.sock.sendto(bytes(buf), self.target)

    def recv(self, kind: str, timeout_s: float, where=None):
        """The next `kind` message from the autopilot (that satisfies `where`), or None after the timeout."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                return None
            for msg in self.mav.parse_buffer(data) or ():
                if msg.get_type() == kind and msg.get_srcComponent() == 1 and (where is None or where(msg)):
                    return msg
        return None

    def command(self, command: int, *params: float, timeout_s: float = 3.0) -> int:
        """COMMAND_LONG to the autopilot; the MAV_RESULT it answered (-1: no answer)."""
        p = [*params, *([0.0] * (7 - len(params)))]
        self.mav.command_long_send(self.system_id, 1, command, 0, *p)
        ack = self.recv("COMMAND_ACK", timeout_s, where=lambda m: m.command == command)
        return -1 if ack is None else int(ack.result)

    def close(self) -> None:
        self.sock.close()


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "nothing in its log"


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pid, sig)
