"""Trusted time as an investigator and a station operator meet it: a token from the TSA proves the
data existed then; another hash, another TSA or a changed byte proves nothing; a TSA that is down
or answers nonsense is one line naming it, soon.

The TSA is OpenSSL's ``ts`` behind sitl.tsa's small HTTP handler, with a CA of its own.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import time
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from missions.errors import InputError, UserError
from sitl.tsa import LocalTsa, TsaMode, openssl_available
from vision.timestamps import TokenError, TsaError, load_tsa_roots, request_token, verify_token

pytestmark = pytest.mark.skipif(
    not openssl_available(), reason="the local TSA runs OpenSSL's ts, and no openssl is on PATH"
)

HEAD = b"sha256=9f2c5e0d3a1b4c6e8f7a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6 sig=ZmFrZSBzaWduYXR1cmU="


@pytest.fixture(scope="module", autouse=True)
def no_proxy_for_the_loopback():
    # urllib honours http_proxy; a CI runner's proxy cannot reach this machine's TSA.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("no_proxy", "127.0.0.1,localhost")
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield


@pytest.fixture(scope="module")
def tsa():
    with LocalTsa() as tsa:
        yield tsa


@pytest.fixture(scope="module")
def stamped(tsa):
    """A token over HEAD, and the Unix seconds just before and after it was asked for."""
    before = time.time()
    token = request_token(tsa.url, HEAD)
    return token, before, time.time()


def flip(data: bytes, at: int) -> bytes:
    changed = bytearray(data)
    changed[at] ^= 0x01
    return bytes(changed)


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line_naming(error: Exception, url: str) -> str:
    message = str(error)
    assert "\n" not in message
    assert message.startswith(url)
    return message


@pytest.mark.parametrize("roots_as", ["certificates", "pem"])
def test_a_token_from_the_local_tsa_verifies(tsa, stamped, roots_as):
    token, before, after = stamped
    roots = load_tsa_roots(tsa.ca_cert_path) if roots_as == "certificates" else tsa.ca_cert_path.read_bytes()

    info = verify_token(token, HEAD, roots)

    # The TSA's clock is this machine's, to the second.
    assert before - 2 <= info.gen_time_s <= after + 2
    assert datetime.fromisoformat(info.gen_time_iso).astimezone(UTC).timestamp() == info.gen_time_s
    assert info.tsa_name == "CN=borderwatch test TSA"
    assert info.serial_number > 0


def test_the_stored_token_is_one_openssl_verifies_too(tsa, stamped, tmp_path):
    # What a court's expert would run, without borderwatch.
    token, _, _ = stamped
    (tmp_path / "head").write_bytes(HEAD)
    (tmp_path / "head.tst").write_bytes(token)
    done = subprocess.run(
        ["openssl", "ts", "-verify", "-token_in", "-in", "head.tst", "-data", "head", "-CAfile", str(tsa.ca_cert_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Verification: OK" in done.stdout


def test_a_token_over_another_hash_fails(tsa, stamped):
    token, _, _ = stamped
    with pytest.raises(TokenError, match="over another hash"):
        verify_token(token, HEAD.replace(b"sig=", b"sig=X"), load_tsa_roots(tsa.ca_cert_path))


def test_a_token_from_an_untrusted_tsa_fails(stamped):
    token, _, _ = stamped
    with LocalTsa(name="someone else's TSA") as other, pytest.raises(TokenError, match="trusted TSA roots") as caught:
        verify_token(token, HEAD, load_tsa_roots(other.ca_cert_path))
    assert "\n" not in str(caught.value)


def test_trusting_the_tsa_certificate_alone_is_not_enough(tsa, stamped):
    # The root is what is trusted; a leaf certificate is not an anchor.
    token, _, _ = stamped
    with pytest.raises(TokenError, match="trusted TSA roots"):
        verify_token(token, HEAD, load_tsa_roots(tsa.tsa_cert_path))


def _places(token: bytes, tsa: LocalTsa, gen_time_s: float) -> dict[str, int]:
    """Offsets in the token of what a forger would change."""
    gen_time = datetime.fromtimestamp(gen_time_s, UTC).strftime("%Y%m%d%H%M%SZ").encode()
    tsa_certificate = load_tsa_roots(tsa.tsa_cert_path)[0]
    key = tsa_certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    places = {
        "the hash it is over": token.index(hashlib.sha256(HEAD).digest()) + 5,
        "the time": token.index(gen_time) + len(gen_time) - 2,  # the last digit of the seconds
        "the TSA's public key": token.index(point) + 20,
        "the signature": len(token) - 1,
        "the outer length": 3,
    }
    assert all(0 <= at < len(token) for at in places.values())
    return places


@pytest.mark.parametrize(
    "place", ["the hash it is over", "the time", "the TSA's public key", "the signature", "the outer length"]
)
def test_a_token_with_one_byte_changed_fails(tsa, stamped, place):
    token, _, _ = stamped
    roots = load_tsa_roots(tsa.ca_cert_path)
    at = _places(token, tsa, verify_token(token, HEAD, roots).gen_time_s)[place]

    with pytest.raises(TokenError) as caught:
        verify_token(flip(token, at), HEAD, roots)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("token", [b"", b"not a token", b"\x30\x03\x02\x01\x00"])
def test_what_is_no_token_at_all_is_called_malformed(tsa, token):
    with pytest.raises(TokenError, match="malformed timestamp token"):
        verify_token(token, HEAD, load_tsa_roots(tsa.ca_cert_path))


@pytest.mark.parametrize(
    ("mode", "complaint"),
    [
        (TsaMode.HTTP_ERROR, "HTTP 500"),
        (TsaMode.GARBAGE, "not a timestamp response"),
        (TsaMode.REJECT, "refused the request: rejection"),
    ],
)
def test_a_tsa_that_answers_nonsense_is_named(mode, complaint):
    with LocalTsa(mode=mode) as tsa, pytest.raises(TsaError, match=complaint) as caught:
        request_token(tsa.url, HEAD, timeout_s=5)
    one_line_naming(caught.value, tsa.url)
    assert isinstance(caught.value, UserError)
    assert caught.value.url == tsa.url


def test_a_replayed_answer_is_refused():
    with LocalTsa(mode=TsaMode.REPLAY) as tsa:
        request_token(tsa.url, HEAD)
        with pytest.raises(TsaError, match="nonce") as caught:
            request_token(tsa.url, HEAD)
    one_line_naming(caught.value, tsa.url)


def test_an_unreachable_tsa_is_named_at_once():
    url = f"http://127.0.0.1:{free_tcp_port()}/tsr"
    started = time.monotonic()
    with pytest.raises(TsaError, match="unreachable") as caught:
        request_token(url, HEAD, timeout_s=2)
    assert time.monotonic() - started < 2
    one_line_naming(caught.value, url)


def test_a_silent_tsa_is_named_within_the_timeout_and_answers_later():
    with LocalTsa(mode=TsaMode.SILENT) as tsa:
        started = time.monotonic()
        with pytest.raises(TsaError, match=r"no answer from the TSA within 0\.5 s") as caught:
            request_token(tsa.url, HEAD, timeout_s=0.5)
        assert time.monotonic() - started < 3
        one_line_naming(caught.value, tsa.url)
        assert tsa.requests == 1

        # Back up: the same head gets its token later.
        tsa.mode = TsaMode.GRANT
        token = request_token(tsa.url, HEAD, timeout_s=5)
        assert verify_token(token, HEAD, load_tsa_roots(tsa.ca_cert_path)).tsa_name == "CN=borderwatch test TSA"


def test_a_tsa_address_that_is_no_url_is_named():
    with pytest.raises(TsaError, match="http") as caught:
        request_token("tsa.example.org", HEAD)
    one_line_naming(caught.value, "tsa.example.org")


def _not_a_certificate(tmp_path):
    path = tmp_path / "tsa.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    return path


def _binary_junk(tmp_path):
    path = tmp_path / "tsa.der"
    path.write_bytes(b"\x00\x01\x02junk")
    return path


def _private_key_only(tmp_path):
    path = tmp_path / "tsa.key"
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


@pytest.mark.parametrize(
    ("make", "complaint"),
    [
        (lambda tmp_path: tmp_path / "missing.pem", "no such TSA certificate file"),
        (lambda tmp_path: tmp_path, "is a folder"),
        (_not_a_certificate, "not a PEM or DER certificate"),
        (_binary_junk, "not a PEM or DER certificate"),
        (_private_key_only, "holds no certificate"),
    ],
    ids=["missing", "folder", "bad-pem", "junk", "key-not-certificate"],
)
def test_a_bad_tsa_root_file_is_one_line_naming_it(tmp_path, make, complaint):
    path = make(tmp_path)
    with pytest.raises(InputError, match=complaint) as caught:
        load_tsa_roots(path)
    assert str(caught.value).startswith(str(path))
    assert "\n" not in str(caught.value)
