"""A mosquitto of our own for a PKI folder, and the address of someone else's.

The broker we start listens on loopback only, speaks TLS only, and lets in only clients with
a certificate from the folder's CA; the certificate's CN is the MQTT user name the ACL of
``groundstation.link.identity`` is keyed by. Everything it writes (configuration, ACL,
persistence, log) lives in one state folder. A site's broker may also pass its site's alerts,
tracks and status on to headquarters' broker (``groundstation.link.bridge``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from groundstation.link import identity as ids
from groundstation.link.bridge import BridgeTarget, bridge_section
from groundstation.link.pki import broker_credentials, issued
from missions.errors import UserError

# The address is vision's, so that an onboard unit parses the same URLs without importing us.
from vision.bus.address import BrokerAddress

# Debian installs the daemon in /usr/sbin, which is not on an ordinary user's PATH.
_MOSQUITTO_FALLBACKS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
_LOG_TAIL_LINES = 8


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the kernel's pick; someone may take it before we do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def find_mosquitto() -> Path:
    found = shutil.which("mosquitto") or next((p for p in _MOSQUITTO_FALLBACKS if os.access(p, os.X_OK)), None)
    if not found:
        raise UserError(
            "mosquitto: not found on PATH nor in /usr/sbin; run the README's setup "
            "(`make setup`, or `apt-get install mosquitto`)"
        )
    return Path(found)


def acl_text(names: list[str]) -> str:
    """Mosquitto ACL lines for these identities; a name that follows no scheme gets no access."""
    lines = ["# Written by borderwatch for its PKI folder: one block per issued identity.", ""]
    for name in names:
        try:
            who = ids.parse(name)
        except UserError:
            lines.append(f"# {name}: not a borderwatch identity, no access")
            continue
        lines.append(f"user {name}")
        lines.extend(f"topic {access} {topic}" for access, topic in who.grants())
        lines.append("")
    return "\n".join(lines) + "\n"


def write_config(
    pki_dir: Path, state_dir: Path, port: int, host: str = "127.0.0.1", bridge_to: BridgeTarget | None = None
) -> Path:
    """A mosquitto.conf (and its acl) in ``state_dir`` for the identities ``pki_dir`` has issued.

    With ``bridge_to``, the broker also forwards its site's alerts, tracks and status to headquarters.
    """
    pki_dir, state_dir = pki_dir.resolve(), state_dir.resolve()
    creds = broker_credentials(pki_dir)
    for path in (creds.ca, creds.cert, creds.key):
        if not path.exists():
            raise UserError(f"{path}: missing; run `borderwatch pki init {pki_dir}` first")
    for path in (pki_dir, state_dir):
        if any(c in str(path) for c in "\n\r"):
            raise UserError(f"{path!r}: a mosquitto configuration cannot hold a path with a line break")
    bridge = bridge_section(pki_dir, bridge_to) if bridge_to is not None else ""
    acl = state_dir / "acl"
    acl.write_text(acl_text(issued(pki_dir)))
    (state_dir / "data").mkdir(exist_ok=True)
    conf = state_dir / "mosquitto.conf"
    conf.write_text(
        "# Written by borderwatch: TLS and a client certificate from our CA, or nothing.\n"
        # Run as root, mosquitto would switch to the 'mosquitto' user, who cannot read our 0600
        # keys nor write our state folder; as anyone else this line changes nothing.
        f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
        "per_listener_settings false\n"
        "allow_anonymous false\n"
        f"acl_file {acl}\n"
        "persistence true\n"
        f"persistence_location {state_dir / 'data'}/\n"
        "log_dest stderr\n"
        "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        "connection_messages true\n"
        "log_timestamp_format %Y-%m-%dT%H:%M:%S\n"
        f"listener {port} {host}\n"
        f"cafile {creds.ca}\n"
        f"certfile {creds.cert}\n"
        f"keyfile {creds.key}\n"
        "require_certificate true\n"
        # Alerts go out one at a time: Nagle's algorithm would hold each for the last one's ACK.
        "set_tcp_nodelay true\n"
        "use_identity_as_username true\n"
        f"{bridge}"
    )
    return conf


class Broker:
    """A mosquitto process for a PKI folder, up while the ``with`` block runs.

    ``state_dir`` keeps the configuration, the log and the persisted sessions; without one a
    temporary folder is used and removed on exit. Identities issued after the start are let in
    at the next start. With ``bridge_to`` it is a site's broker that forwards its site's alerts,
    tracks and status to headquarters' broker, queueing them while that one is out of reach.
    """

    def __init__(
        self,
        pki_dir: Path | str,
        state_dir: Path | str | None = None,
        port: int | None = None,
        ready_timeout_s: float = 10.0,
        bridge_to: BridgeTarget | None = None,
    ) -> None:
        self.pki_dir = Path(pki_dir)
        self._given_state_dir = Path(state_dir) if state_dir is not None else None
        self._port = port
        self._ready_timeout_s = ready_timeout_s
        self.bridge_to = bridge_to
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        # Known once started: the port may be the kernel's pick, the folder a temporary one.
        self.address = BrokerAddress("127.0.0.1", port or 0)
        self.state_dir: Path | None = self._given_state_dir

    @property
    def log_path(self) -> Path:
        if self.state_dir is None:
            raise RuntimeError("the broker has no log before it starts")
        return self.state_dir / "mosquitto.log"

    def __enter__(self) -> Broker:
        executable = find_mosquitto()
        if self._given_state_dir is None:
            self._temp = tempfile.TemporaryDirectory(prefix="borderwatch-broker-")
            self.state_dir = Path(self._temp.name)
        else:
            self.state_dir = self._given_state_dir
            try:
                self._given_state_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"{self.state_dir}: cannot create the broker's folder ({exc.strerror})") from None
        port = self._port or free_port()
        self.address = BrokerAddress("127.0.0.1", port)
        try:
            conf = write_config(self.pki_dir, self.state_dir, port, bridge_to=self.bridge_to)
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(
                    [str(executable), "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
                )
            self._wait_ready()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._ready_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise UserError(
                    f"mosquitto on port {self.address.port} exited with status {self._proc.returncode} "
                    f"at start: {self._log_tail()}"
                )
            if self._answers_with_our_certificate():
                return
            time.sleep(0.05)
        raise UserError(
            f"mosquitto did not accept TLS connections on port {self.address.port} within "
            f"{self._ready_timeout_s:g} s: {self._log_tail()}"
        )

    def _answers_with_our_certificate(self) -> bool:
        # A TLS handshake, not a bare connect: someone else listening on the port would pass the
        # latter while our mosquitto dies of "address in use", and mosquitto only handshakes once
        # its main loop (and its SIGTERM handler) runs. Without a client certificate the broker
        # then drops us, which its log records as one refused connection.
        context = ssl.create_default_context(cafile=str(broker_credentials(self.pki_dir).ca))
        try:
            with (
                socket.create_connection((self.address.host, self.address.port), timeout=0.5) as raw,
                context.wrap_socket(raw, server_hostname=self.address.host),
            ):
                return True
        except (OSError, ssl.SSLError):
            return False

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        tail = [line.strip() for line in lines[-_LOG_TAIL_LINES:] if line.strip()]
        return " | ".join(tail) if tail else f"nothing in {self.log_path}"

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None
