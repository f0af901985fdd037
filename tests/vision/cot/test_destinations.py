"""`--cot URL` parsed into a destination, and its certificates checked before anything connects."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from missions.errors import UserError
from sitl.tak import TestPki, make_test_pki
from vision.cot.destinations import (
    DEFAULT_COT_URL,
    CotDestination,
    open_package,
    parse_destination,
    parse_destinations,
    pytak_config,
    redact,
)
from vision.cot.model import CotEncoding


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "encoding", "multicast"),
    [
        (DEFAULT_COT_URL, "udp", "239.2.3.1", 6969, CotEncoding.XML, True),
        ("udp://239.2.3.1", "udp", "239.2.3.1", 6969, CotEncoding.XML, True),
        ("udp://192.0.2.7:4242?format=protobuf", "udp", "192.0.2.7", 4242, CotEncoding.PROTOBUF, False),
        ("UDP://tak.example.org:4242", "udp", "tak.example.org", 4242, CotEncoding.XML, False),
        ("tcp://tak.example.org", "tcp", "tak.example.org", 8087, CotEncoding.XML, False),
        ("tcp://tak.example.org:9000?format=PROTOBUF", "tcp", "tak.example.org", 9000, CotEncoding.PROTOBUF, False),
        ("tls://tak.example.org?cert=client.p12", "tls", "tak.example.org", 8089, CotEncoding.XML, False),
        (
            "tls://10.1.1.1:8443/?cert=c.pem&key=c.key&format=protobuf",
            "tls",
            "10.1.1.1",
            8443,
            CotEncoding.PROTOBUF,
            False,
        ),
    ],
)
def test_every_form_of_url_and_its_default_port(url, scheme, host, port, encoding, multicast):
    destination = parse_destination(url)

    assert (destination.scheme, destination.host, destination.port) == (scheme, host, port)
    assert destination.encoding is encoding
    assert destination.is_multicast is multicast
    assert destination.url == url
    assert str(destination) == url


def test_multicast_options_and_tls_files_are_kept():
    udp = parse_destination("udp://239.2.3.1:6969?ttl=3&iface=192.0.2.2")
    tls = parse_destination("tls://tak:8089?cert=~/c.pem&key=/k/c.key&ca=/k/ca.p12&ca_password=x&password=y")

    assert (udp.ttl, udp.iface) == (3, "192.0.2.2")
    assert parse_destination("udp://239.2.3.1").ttl == 1
    assert tls.client_cert == Path("~/c.pem").expanduser()
    assert (tls.client_key, tls.ca) == (Path("/k/c.key"), Path("/k/ca.p12"))
    assert (tls.password, tls.ca_password) == ("y", "x")
    plus = parse_destination("tls://tak?cert=/k/a+b.p12&password=p%26w+1")
    assert (plus.client_cert, plus.password) == (Path("/k/a+b.p12"), "p&w+1")


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("ftp://tak.example.org:21", "expected udp://HOST:PORT"),
        ("tak.example.org:8087", "expected udp://HOST:PORT"),
        ("tcp://:8087", "no host"),
        ("udp://", "no host"),
        ("tcp://tak:99999", "port"),
        ("tcp://tak:http", "port"),
        ("tcp://tak:0", "port"),
        ("tcp://tak:8087?format=json", "format must be xml or protobuf"),
        ("tcp://tak:8087?ttl=2", "unknown option 'ttl'"),
        ("tcp://tak:8087/cot", "path"),
        ("tcp://tak:8087?format=xml&format=xml", "twice"),
        ("udp://239.2.3.1?ttl=300", "ttl"),
        ("udp://239.2.3.1?ttl=one", "ttl"),
        ("udp://192.0.2.7?iface=192.0.2.2", "not one"),
        ("udp://239.2.3.1?iface=eth0", "IPv4 address"),
        ("tls://tak:8089", "needs a client certificate: cert="),
        ("tls://tak:8089?password=pw", "needs a client certificate"),
        ("tls://tak:8089?cert=c.p12&key=c.key", "a .p12 holds its own key"),
        ("tls://tak:8089?cert=c.p12&package=p.zip", "either package= or cert="),
        ("tls://tak:8089?cert=", "names no file"),
        ("udp://[ff02::1]:6969", "IPv6"),
    ],
)
def test_a_url_that_cannot_be_used_is_named_with_what_is_wrong(url, complaint):
    with pytest.raises(UserError) as caught:
        parse_destination(url)

    assert str(caught.value).startswith(f"{redact(url)}: ")
    assert complaint in str(caught.value)


def test_passwords_never_show_in_the_url_the_repr_or_an_error():
    destination = parse_destination("tls://tak:8089?cert=c.p12&password=hunter2&ca=t.p12&ca_password=s3cret")

    assert destination.url == "tls://tak:8089?cert=c.p12&password=***&ca=t.p12&ca_password=***"
    assert "hunter2" not in repr(destination) and "s3cret" not in repr(destination)
    assert destination.password == "hunter2"
    for url in ("tls://tak:8089?password=hunter2", "tls://user:hunter2@tak:8089?cert=c.p12"):
        with pytest.raises(UserError) as caught:
            parse_destination(url)
        assert "hunter2" not in str(caught.value)
        assert "***" in str(caught.value)


def test_the_same_destination_twice_is_refused():
    assert [d.port for d in parse_destinations(["tcp://tak:8087", "tcp://tak:8088"])] == [8087, 8088]
    with pytest.raises(UserError, match="given twice"):
        parse_destinations(["tcp://tak", "tcp://TAK:8087"])


def test_udp_is_sent_write_only_with_its_ttl_and_interface(tmp_path):
    config = pytak_config(parse_destination("udp://239.2.3.1:6969?ttl=2&iface=127.0.0.1"), tmp_path)
    unicast = pytak_config(parse_destination("udp://192.0.2.7:4242"), tmp_path)

    assert config["COT_URL"] == "udp+wo://239.2.3.1:6969"
    assert (config["PYTAK_MULTICAST_TTL"], config["PYTAK_MULTICAST_LOCAL_ADDR"]) == ("2", "127.0.0.1")
    assert unicast["COT_URL"] == "udp+wo://192.0.2.7:4242"
    assert pytak_config(parse_destination("tcp://tak"), tmp_path)["COT_URL"] == "tcp://tak:8087"


def test_a_p12_and_its_ca_become_pem_files_for_pytak_with_the_key_locked(pki, tmp_path):
    url = f"tls://127.0.0.1:8089?cert={pki.client_p12}&password={pki.client_password}&ca={pki.ca_pem}"

    config = pytak_config(parse_destination(url), tmp_path / "tls")

    assert config["COT_URL"] == "tls://127.0.0.1:8089"
    key = Path(config["PYTAK_TLS_CLIENT_KEY"])
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    assert key.stat().st_mode & 0o077 == 0
    assert Path(config["PYTAK_TLS_CLIENT_CAFILE"]).read_bytes() == pki.ca_pem.read_bytes()
    assert pki.client_password not in config["PYTAK_TLS_CLIENT_PASSWORD"]


def test_a_truststore_p12_and_a_pem_certificate_with_its_key_do_too(pki, tmp_path):
    config = pytak_config(parse_destination(_pem_url(pki, tmp_path)), tmp_path / "tls")

    assert Path(config["PYTAK_TLS_CLIENT_CAFILE"]).read_bytes() == pki.ca_pem.read_bytes()


def test_a_data_package_names_the_client_certificate_the_truststore_and_their_passwords(pki, tmp_path):
    destination = parse_destination(f"tls://127.0.0.1:8089?package={pki.data_package_zip}")

    opened = open_package(destination, tmp_path / "package")

    assert opened.client_cert is not None and opened.client_cert.read_bytes() == pki.client_p12.read_bytes()
    assert opened.ca is not None and opened.ca.read_bytes() == pki.truststore_p12.read_bytes()
    assert opened.password == opened.ca_password == pki.client_password
    assert opened.url == destination.url
    config = pytak_config(destination, tmp_path / "tls")
    assert Path(config["PYTAK_TLS_CLIENT_CAFILE"]).read_bytes() == pki.ca_pem.read_bytes()


def test_a_package_with_atak_numbered_keys_as_pytak_builds_them_is_read_too(pki, tmp_path):
    from pytak.onboarding_packages import (
        build_connection_config_pref_xml,
        build_connection_data_package_zip,
        build_connection_manifest_xml,
    )

    pref = build_connection_config_pref_xml(
        stream_description="tak",
        streaming_host="127.0.0.1",
        streaming_port=8089,
        ca_password=pki.client_password,
        client_password=pki.client_password,
        location_callsign="bw",
    )
    package = tmp_path / "numbered.zip"
    package.write_bytes(
        build_connection_data_package_zip(
            config_pref_xml=pref,
            manifest_xml=build_connection_manifest_xml(uid="u", display_name="n"),
            client_p12_path=str(pki.client_p12),
            trust_p12_path=str(pki.truststore_p12),
        )
    )

    opened = open_package(parse_destination(f"tls://127.0.0.1?package={package}"), tmp_path / "open")

    assert opened.client_cert is not None and opened.client_cert.name == "clientCert.p12"
    assert opened.ca is not None and opened.ca.name == "caCert.p12"


def _package_without_pref(path: Path, pki: TestPki) -> None:
    with zipfile.ZipFile(path, "w") as package:
        package.writestr("MANIFEST/manifest.xml", "<MissionPackageManifest/>")
        package.write(pki.client_p12, "cert/client.p12")


def _package_naming_a_missing_file(path: Path, pki: TestPki) -> None:
    with zipfile.ZipFile(pki.data_package_zip) as original, zipfile.ZipFile(path, "w") as package:
        for name in original.namelist():
            if not name.endswith("clientCert.p12"):
                package.writestr(name, original.read(name))


@pytest.mark.parametrize(
    ("make", "query", "complaint"),
    [
        (lambda p, pki: None, "cert={path}", "cannot read the client certificate {path}"),
        (lambda p, pki: p.write_bytes(b"\x30\x82garbage"), "cert={path}", "cannot open the client certificate {path}"),
        (lambda p, pki: p.write_bytes(pki.client_p12.read_bytes()), "cert={path}&password=wrong", "wrong password"),
        (lambda p, pki: p.write_bytes(pki.client_p12.read_bytes()), "cert={path}", "wrong password"),
        (lambda p, pki: p.write_text("not PEM"), "cert={path}", "holds no PEM certificate"),
        (lambda p, pki: p.write_bytes(b"PK not a zip"), "package={path}", "the data package {path} is not a zip"),
        (lambda p, pki: None, "package={path}", "the data package {path} does not exist"),
        (_package_without_pref, "package={path}", "{path} is not a TAK data package"),
        (_package_naming_a_missing_file, "package={path}", "names a file it does not hold"),
    ],
    ids=["missing", "corrupt", "wrong-password", "no-password", "not-pem", "not-zip", "no-zip", "no-pref", "no-cert"],
)
def test_a_certificate_or_package_that_cannot_be_used_is_named_with_its_url(pki, tmp_path, make, query, complaint):
    suffix = ".zip" if query.startswith("package") else (".pem" if "PEM" in complaint else ".p12")
    path = tmp_path / f"given{suffix}"
    make(path, pki)
    destination = parse_destination(f"tls://127.0.0.1:8089?{query.format(path=path)}")

    with pytest.raises(UserError) as caught:
        pytak_config(destination, tmp_path / "tls")

    assert str(caught.value).startswith(f"{destination.url}: ")
    assert complaint.format(path=path) in str(caught.value)
    assert "wrong" not in destination.url or "password=***" in destination.url


def test_a_ca_file_without_a_certificate_is_named(pki, tmp_path):
    empty = tmp_path / "empty-ca.pem"
    empty.write_text("-----BEGIN NOTHING-----\n")
    url = f"tls://127.0.0.1:8089?cert={pki.client_p12}&password={pki.client_password}&ca={empty}"

    with pytest.raises(UserError, match=f"the truststore {empty} holds no PEM certificate"):
        pytak_config(parse_destination(url), tmp_path / "tls")


def test_a_key_that_is_not_the_certificates_own_is_found_before_connecting(pki, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other_key = tmp_path / "other.key"
    other_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    url = _pem_url(pki, tmp_path).replace(str(tmp_path / "client.key"), str(other_key))

    with pytest.raises(UserError, match="do not go together"):
        pytak_config(parse_destination(url), tmp_path / "tls")


def test_a_destination_is_a_frozen_value():
    destination = parse_destination("tcp://tak")

    assert isinstance(destination, CotDestination)
    with pytest.raises(AttributeError):
        destination.port = 1  # type: ignore[misc]


def _pem_url(pki: TestPki, folder: Path) -> str:
    """A tls URL with the client as PEM certificate and key and the truststore .p12 as ca."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    loaded = pkcs12.load_pkcs12(pki.client_p12.read_bytes(), pki.client_password.encode())
    (folder / "client.pem").write_bytes(loaded.cert.certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "client.key").write_bytes(
        loaded.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return (
        f"tls://127.0.0.1:8089?cert={folder / 'client.pem'}&key={folder / 'client.key'}"
        f"&ca={pki.truststore_p12}&ca_password={pki.client_password}"
    )
