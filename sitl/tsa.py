"""A local RFC 3161 Time Stamping Authority for tests and the demo: OpenSSL's ``ts`` command behind
a small HTTP handler on the loopback, with a test CA of its own.

    with LocalTsa() as tsa:
        token = vision.timestamps.request_token(tsa.url, data)
        vision.timestamps.verify_token(token, data, load_tsa_roots(tsa.ca_cert_path))

Each TSA makes a fresh CA (``ca.pem``, the root to trust) and a TSA certificate it signs, with the
critical ``timeStamping`` extended key usage RFC 3161 requires; two TSAs never trust each other.
A token carries the TSA certificate alone, not the CA's: OpenSSL writes a chain in the order it
is given, not in the sorted order DER asks of a SET OF, and rfc3161-client refuses such tokens.

``mode`` chooses how it answers, and may be changed while it runs (a TSA that is down for a
while, then back). It needs ``openssl`` on PATH; ``openssl_available()`` says whether it is there.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# openssl's own example policy: a test TSA has no registered one.
POLICY_OID = "1.2.3.4.1"
OPENSSL_TIMEOUT_S = 10.0
MAX_QUERY_BYTES = 64 * 1024
_BACKDATE = datetime.timedelta(minutes=10)
_VALID = datetime.timedelta(days=30)


class TsaMode(enum.Enum):
    GRANT = "grant"
    """Answers as a TSA should: a granted response with a token over the request's hash."""
    SILENT = "silent"
    """Takes the request and never answers, until the TSA is closed (a TSA that hangs)."""
    HTTP_ERROR = "http-error"
    """Answers HTTP 500."""
    GARBAGE = "garbage"
    """Answers 200 with bytes that are no timestamp response (a captive portal, a wrong URL)."""
    REJECT = "reject"
    """A real refusal from OpenSSL: configured for SHA-512 only, it answers SHA-256 queries badAlg."""
    REPLAY = "replay"
    """Answers every request with its first granted reply, as a replaying man in the middle would."""


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


class LocalTsa:
    """An RFC 3161 TSA on ``http://127.0.0.1:<free port>/``, stopped by ``close`` or leaving ``with``.

    Its files (CA, TSA certificate and keys, the ``openssl ts`` configuration) live in
    ``directory``, a temporary folder removed on close unless one is given, which is kept.
    ``requests`` counts the POSTs received, answered or not.
    """

    def __init__(
        self,
        name: str = "borderwatch test TSA",
        mode: TsaMode = TsaMode.GRANT,
        directory: Path | None = None,
    ) -> None:
        if not openssl_available():
            raise RuntimeError("the local TSA needs the openssl command, and none is on PATH")
        self.name = name
        self.mode = mode
        self._tempdir = None if directory is not None else tempfile.TemporaryDirectory(prefix="borderwatch-tsa-")
        self.directory = Path(directory) if directory is not None else Path(self._tempdir.name)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_cert_path = self.directory / "ca.pem"
        self.tsa_cert_path = self.directory / "tsa.pem"
        self._tsa_key_path = self.directory / "tsa.key"
        self._write_certificates()
        self._config_path = self._write_config("tsa.cnf", digests="sha256, sha384, sha512")
        self._sha512_only_config_path = self._write_config("sha512-only.cnf", digests="sha512")
        self.requests = 0
        self._first_reply: bytes | None = None
        self._lock = threading.Lock()
        self._openssl_lock = threading.Lock()  # openssl ts rewrites its serial file: one reply at a time
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.tsa = self
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"tsa:{self.port}", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> LocalTsa:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()  # releases handlers held by SILENT
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        if self._tempdir is not None:
            self._tempdir.cleanup()

    def answer(self, query: bytes) -> tuple[int, str, bytes]:
        """(HTTP status, content type, body) for one query, as the current mode has it."""
        mode = self.mode
        if mode is TsaMode.HTTP_ERROR:
            return 500, "text/plain", b"TSA out of order\n"
        if mode is TsaMode.GARBAGE:
            return 200, "text/html", b"<html><body>Please log in to use this network</body></html>\n"
        with self._openssl_lock:
            if mode is TsaMode.REPLAY and self._first_reply is not None:
                return 200, "application/timestamp-reply", self._first_reply
            config = self._sha512_only_config_path if mode is TsaMode.REJECT else self._config_path
            status, reply = self._openssl_reply(query, config)
            if status == 200 and mode is not TsaMode.REJECT and self._first_reply is None:
                self._first_reply = reply
        return status, ("application/timestamp-reply" if status == 200 else "text/plain"), reply

    def _openssl_reply(self, query: bytes, config: Path) -> tuple[int, bytes]:
        fd, name = tempfile.mkstemp(prefix="query-", suffix=".tsq", dir=self.directory)
        query_path = Path(name)
        reply_path = query_path.with_suffix(".tsr")
        try:
            with open(fd, "wb") as f:
                f.write(query)
            command = ["openssl", "ts", "-reply", "-config", str(config), "-queryfile", str(query_path)]
            command += ["-signer", str(self.tsa_cert_path), "-inkey", str(self._tsa_key_path), "-out", str(reply_path)]
            done = subprocess.run(
                command,
                capture_output=True,
                timeout=OPENSSL_TIMEOUT_S,
                check=False,
            )
            if done.returncode != 0 or not reply_path.exists():
                return 500, b"openssl ts failed: " + done.stderr[-500:]
            return 200, reply_path.read_bytes()
        except subprocess.TimeoutExpired:
            return 500, b"openssl ts took too long\n"
        finally:
            query_path.unlink(missing_ok=True)
            reply_path.unlink(missing_ok=True)

    def _write_certificates(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name} root CA")])
        ca = (
            _builder(ca_name, ca_name, ca_key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        tsa_key = ec.generate_private_key(ec.SECP256R1())
        tsa_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        tsa = (
            _builder(tsa_name, ca_name, tsa_key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(tsa_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        ca_pem = ca.public_bytes(serialization.Encoding.PEM)
        self.ca_cert_path.write_bytes(ca_pem)
        self.tsa_cert_path.write_bytes(tsa.public_bytes(serialization.Encoding.PEM))
        # A test key, but still not for other users of the machine to read.
        self._tsa_key_path.touch(mode=0o600)
        self._tsa_key_path.write_bytes(
            tsa_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (self.directory / "serial").write_text("01\n")

    def _write_config(self, filename: str, digests: str) -> Path:
        path = self.directory / filename
        path.write_text(
            "[ tsa ]\n"
            "default_tsa = tsa_config\n"
            "\n"
            "[ tsa_config ]\n"
            f"serial = {self.directory / 'serial'}\n"
            "crypto_device = builtin\n"
            "signer_digest = sha256\n"
            f"default_policy = {POLICY_OID}\n"
            f"digests = {digests}\n"
            "accuracy = secs:1\n"
            "clock_precision_digits = 0\n"
            "ordering = no\n"
            "tsa_name = yes\n"
            "ess_cert_id_chain = no\n"
            "ess_cert_id_alg = sha256\n"
        )
        return path


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tsa: LocalTsa


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        tsa = self.server.tsa
        with tsa._lock:
            tsa.requests += 1
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_QUERY_BYTES:
            self._send(400, "text/plain", b"a timestamp query is a small, non-empty body\n")
            return
        query = self.rfile.read(length)
        if tsa.mode is TsaMode.SILENT:
            tsa._closing.wait()
            self.close_connection = True
            return
        self._send(*tsa.answer(query))

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client may have given up
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALID)
    )


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
