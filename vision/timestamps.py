"""Trusted time: RFC 3161 timestamp tokens from a Time Stamping Authority (TSA).

A token is a TSA's signature over a hash and the time it saw it: proof, from a third party, that
the data existed then. What is timestamped is the caller's ``data``, bytes this module hashes
with SHA-256 into the request (for a signed chain head, say, its hash and signature as ASCII);
``verify_token`` hashes the same bytes again, so the caller passes data, never a digest.

What is kept is the **token** (the DER CMS ``TimeStampToken`` that ``openssl ts -verify
-token_in`` reads), not the whole ``TimeStampResp`` around it: the response's status is not
signed, and says nothing once the token is granted and stored.

A token verifies when it is over ``data``, is signed by a certificate with the ``timeStamping``
extended key usage, and that certificate chains to one of the TSA roots the verifier trusts,
as of the token's own time (a TSA certificate that has since expired still vouches for the
tokens it signed while valid). The token must carry the TSA certificate: ``request_token`` asks
for it and refuses an answer without it.

Here, in vision, beside the evidence log and its signing keys that the tokens vouch for.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from missions.errors import InputError, UserError, where

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
# A response is a token and a certificate or two: kilobytes. More is not a TSA.
MAX_RESPONSE_BYTES = 1 << 20

_HASHES = {
    x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1"): hashlib.sha256,
    x509.ObjectIdentifier("2.16.840.1.101.3.4.2.2"): hashlib.sha384,
    x509.ObjectIdentifier("2.16.840.1.101.3.4.2.3"): hashlib.sha512,
}
_SHA256 = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
# A granted PKIStatusInfo, DER: SEQUENCE { INTEGER 0 }.
_GRANTED = b"\x30\x03\x02\x01\x00"


class TsaError(UserError):
    """A TSA that could not be asked, or whose answer is no token for what was asked."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.detail = message
        super().__init__(f"{where(url)}: {message}")


class TokenError(ValueError):
    """A timestamp token that does not prove what it is checked for; the message says why."""


@dataclass(frozen=True)
class TokenInfo:
    """What a verified token says: when, which token of its TSA, and who signed it."""

    gen_time_s: float
    """The TSA's time for the token, Unix seconds."""
    serial_number: int
    tsa_name: str
    """The subject of the certificate that signed the token, RFC 4514 (``CN=...``)."""
    policy_oid: str

    @property
    def gen_time_iso(self) -> str:
        return datetime.fromtimestamp(self.gen_time_s, UTC).isoformat().replace("+00:00", "Z")


def request_token(url: str, data: bytes, timeout_s: float = 10.0) -> bytes:
    """A timestamp token over the SHA-256 of ``data`` from the TSA at ``url``, DER.

    The request carries a fresh nonce and asks for the TSA's certificate; the answer must be
    granted, carry that nonce, be over that hash and include a certificate. ``timeout_s`` bounds
    the connection and each wait for the answer; proxies are those of the environment
    (``https_proxy``, ``no_proxy``). Raises :class:`TsaError` naming ``url``; ``data`` must not
    be empty.
    The token is not checked against any root here: that is ``verify_token``'s, wherever the
    roots are.
    """
    if not url.startswith(("http://", "https://")):
        raise TsaError(url, "a TSA address is an http:// or https:// URL")
    query = (
        TimestampRequestBuilder()
        .data(data)
        .hash_algorithm(HashAlgorithm.SHA256)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    body = _post(url, query.as_bytes(), timeout_s)
    try:
        response = decode_timestamp_response(body)
    except ValueError as e:
        raise TsaError(url, f"the answer is not a timestamp response ({_parse_reason(e)})") from None
    if response.status != PKIStatus.GRANTED:
        raise TsaError(url, f"the TSA refused the request: {_status(response)}")
    try:
        info = response.tst_info
        imprint = info.message_imprint
        certificates = response.signed_data.certificates
        token = response.time_stamp_token()
    except ValueError as e:
        raise TsaError(url, f"the answer is not a timestamp response ({_parse_reason(e)})") from None
    if info.nonce != query.nonce:
        raise TsaError(url, "the answer's nonce is not the one sent: a replayed or misdirected answer")
    if imprint.hash_algorithm != _SHA256 or imprint.message != hashlib.sha256(data).digest():
        raise TsaError(url, "the answer timestamps another hash than the one sent")
    if not certificates:
        raise TsaError(url, "the token carries no TSA certificate, though the request asked for it")
    return token


def verify_token(token: bytes, data: bytes, tsa_roots: list[x509.Certificate] | bytes) -> TokenInfo:
    """What ``token`` proves about ``data``; :class:`TokenError` when it proves nothing.

    ``tsa_roots``: the certificates of the TSAs' roots to trust, or PEM bytes holding them.
    Fails, saying which, when the token is malformed, over another hash than ``data``'s, or not
    signed by a timestamping certificate that chains to one of ``tsa_roots``.
    """
    roots = list(dict.fromkeys(_roots(tsa_roots)))  # the verifier refuses a root given twice
    try:
        response = decode_timestamp_response(_as_response(token))
        info = response.tst_info
        algorithm = info.message_imprint.hash_algorithm
        imprint = info.message_imprint.message
    except ValueError as e:
        raise TokenError(f"malformed timestamp token ({_parse_reason(e)})") from None
    hash_function = _HASHES.get(algorithm)
    if hash_function is None:
        raise TokenError(f"the token is over a hash this station does not know (OID {algorithm.dotted_string})")
    digest = hash_function(data).digest()
    if imprint != digest:
        raise TokenError("the token is over another hash, not this data's")
    try:
        VerifierBuilder(roots=roots).build().verify(response, digest)
    except (VerificationError, ValueError) as e:
        raise TokenError(f"the token does not verify against the trusted TSA roots: {_reason(e)}") from None
    return TokenInfo(
        gen_time_s=info.gen_time.timestamp(),
        serial_number=info.serial_number,
        tsa_name=_signer_name(response),
        policy_oid=info.policy.dotted_string,
    )


def load_tsa_roots(path: Path | str) -> list[x509.Certificate]:
    """The certificates of a PEM (or single DER) file of TSA roots. Raises :class:`InputError`."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(source, "no such TSA certificate file") from None
    except IsADirectoryError:
        raise InputError(source, "is a folder, not a TSA certificate file") from None
    except OSError as e:
        raise InputError(source, f"cannot read the TSA certificate file ({e.strerror or e})") from None
    if b"-----BEGIN" in raw and b"-----BEGIN CERTIFICATE-----" not in raw:
        raise InputError(source, "holds no certificate (a PEM file of something else: a key?)")
    try:
        if b"-----BEGIN" in raw:
            return x509.load_pem_x509_certificates(raw)
        return [x509.load_der_x509_certificate(raw)]
    except ValueError as e:
        raise InputError(source, f"not a PEM or DER certificate ({_parse_reason(e)})") from None


def _post(url: str, query: bytes, timeout_s: float) -> bytes:
    request = urllib.request.Request(
        url, data=query, method="POST", headers={"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            body = answer.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise TsaError(url, f"the TSA answered HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise TsaError(url, f"no answer from the TSA within {timeout_s:g} s") from None
        raise TsaError(url, f"TSA unreachable ({_os_reason(e.reason)})") from None
    except TimeoutError:
        raise TsaError(url, f"no answer from the TSA within {timeout_s:g} s") from None
    except (http.client.HTTPException, OSError) as e:
        raise TsaError(url, f"the TSA's answer broke off ({_os_reason(e)})") from None
    if len(body) > MAX_RESPONSE_BYTES:
        raise TsaError(url, f"the answer is over {MAX_RESPONSE_BYTES} bytes: not a timestamp response")
    return body


def _as_response(token: bytes) -> bytes:
    """A granted TimeStampResp around ``token``: the form rfc3161-client parses and verifies."""
    content = _GRANTED + token
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(octets)]) + octets
    return b"\x30" + length + content


def _roots(tsa_roots: list[x509.Certificate] | bytes) -> list[x509.Certificate]:
    if isinstance(tsa_roots, bytes | bytearray):
        try:
            roots = x509.load_pem_x509_certificates(bytes(tsa_roots))
        except ValueError as e:
            raise ValueError(f"tsa_roots: not PEM certificates ({_first_line(e)})") from None
    else:
        roots = list(tsa_roots)
    if not roots:
        raise ValueError("tsa_roots: no TSA root certificate to verify against")
    return roots


def _signer_name(response: TimeStampResponse) -> str:
    signer = next(iter(response.signed_data.signer_infos))
    for der in response.signed_data.certificates:
        certificate = x509.load_der_x509_certificate(der)
        if certificate.issuer == signer.issuer and certificate.serial_number == signer.serial_number:
            return certificate.subject.rfc4514_string()
    return ""


def _status(response: TimeStampResponse) -> str:
    try:
        name = PKIStatus(response.status).name.lower()
    except ValueError:
        name = f"status {response.status}"
    text = "; ".join(s.strip() for s in response.status_string if s.strip())
    return f"{name} ({text})" if text else name


# OpenSSL's errors come back as a Rust dump of its error stack; the last entry is PKCS7_verify's
# own verdict, and its 'Verify error: ...' names what was wrong with the chain.
_OPENSSL_ERROR = re.compile(r"Error \{[^{}]*\}")
_OPENSSL_DATA = re.compile(r'data: "Verify error: ?([^"]+)"')
_OPENSSL_REASON = re.compile(r'reason: "([^"]+)"')


def _reason(error: object) -> str:
    text = str(error)
    entries = _OPENSSL_ERROR.findall(text)
    if entries:
        found = _OPENSSL_DATA.search(entries[-1]) or _OPENSSL_REASON.search(entries[-1])
        if found:
            return found.group(1)
    return _first_line(text)


_ASN1_KIND = re.compile(r"ParseError \{ kind: (\w+)")


def _parse_reason(error: object) -> str:
    text = _first_line(error)
    found = _ASN1_KIND.search(text)
    return f"DER parse error: {found.group(1)}" if found else text


def _os_reason(error: object) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return _first_line(error) or type(error).__name__


def _first_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""
