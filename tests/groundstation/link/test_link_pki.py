"""`borderwatch pki`: the CA, the broker's and the clients' certificates, and the errors about them."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from groundstation.commands.cli import main
from groundstation.link import identity as ids
from groundstation.link import pki
from missions.errors import UserError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def common_name(path: Path) -> str:
    return pki.load_cert(path).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_pki_init_writes_a_ca_a_broker_and_the_sites_certificates_with_private_keys_0600(tmp_path, capsys):
    folder = tmp_path / "pki"

    code = main(["pki", "init", str(folder), "--site", "algeciras", "--units", "2", "--hq"])

    assert code == 0
    clients = folder / "clients"
    expected = ["ca.crt", "ca.key", "broker.crt", "broker.key"] + [
        f"clients/{n}.{ext}"
        for n in ("station-algeciras", "unit-algeciras-1", "unit-algeciras-2", "hq")
        for ext in ("crt", "key")
    ]
    assert capsys.readouterr().out.splitlines() == [f"wrote {folder / name}" for name in expected]
    keys = [folder / "ca.key", folder / "broker.key", *clients.glob("*.key")]
    assert len(keys) == 6
    assert {k.name: mode(k) for k in keys} == {k.name: 0o600 for k in keys}
    assert mode(folder / "ca.crt") == 0o644
    assert [common_name(p) for p in sorted(clients.glob("*.crt"))] == [
        "hq",
        "station-algeciras",
        "unit-algeciras-1",
        "unit-algeciras-2",
    ]
    assert pki.issued(folder) == ["hq", "station-algeciras", "unit-algeciras-1", "unit-algeciras-2"]


def test_pki_init_again_without_force_is_refused_in_one_line_and_keeps_the_ca(tmp_path, capsys):
    folder = tmp_path / "pki"
    assert main(["pki", "init", str(folder)]) == 0
    before = (folder / "ca.key").read_bytes()
    capsys.readouterr()

    code = main(["pki", "init", str(folder), "--site", "algeciras"])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"borderwatch: error: {folder / 'ca.key'}: a CA already exists; pass --force")
    assert (folder / "ca.key").read_bytes() == before
    assert not (folder / "clients").exists()


def test_pki_init_with_force_replaces_the_ca_and_warns_about_what_the_old_one_issued(tmp_path, capsys):
    folder = tmp_path / "pki"
    assert main(["pki", "init", str(folder), "--hq"]) == 0
    capsys.readouterr()

    assert main(["pki", "init", str(folder), "--force"]) == 0

    err = capsys.readouterr().err
    assert f"{folder / 'clients' / 'hq.crt'}: issued by the replaced CA" in err
    assert f"borderwatch pki issue {folder} hq --force" in err
    assert pki.issued(folder) == []


def test_the_broker_certificate_names_loopback_and_the_given_names_for_servers_only(tmp_path):
    pki.init(tmp_path, ["port-broker.example", "10.20.0.5"])

    cert = pki.load_cert(tmp_path / "broker.crt")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "port-broker.example"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.20.0.5"),
    ]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    cert.verify_directly_issued_by(pki.load_cert(tmp_path / "ca.crt"))


def test_a_client_certificate_is_for_clients_only(tmp_path):
    pki.init(tmp_path)

    creds = pki.issue(tmp_path, ids.unit("algeciras", 3))

    assert creds == pki.Credentials(
        tmp_path / "ca.crt", tmp_path / "clients/unit-algeciras-3.crt", tmp_path / "clients/unit-algeciras-3.key"
    )
    usage = pki.load_cert(creds.cert).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_pki_issue_prints_what_it_wrote_and_refuses_a_second_time_without_force(tmp_path, capsys):
    pki.init(tmp_path)

    assert main(["pki", "issue", str(tmp_path), "unit-tarifa-coast-4"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {tmp_path / 'clients/unit-tarifa-coast-4.crt'}",
        f"wrote {tmp_path / 'clients/unit-tarifa-coast-4.key'}",
    ]
    assert main(["pki", "issue", str(tmp_path), "unit-tarifa-coast-4"]) == 2
    assert "already has a certificate; pass --force" in capsys.readouterr().err
    assert main(["pki", "issue", str(tmp_path), "unit-tarifa-coast-4", "--force"]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pki", "issue", "{dir}", "drone-1"], "identity 'drone-1': expected station-<site>"),
        (["pki", "issue", "{dir}/elsewhere", "hq"], "{dir}/elsewhere/ca.key: no CA in {dir}/elsewhere; run"),
        (["pki", "init", "{dir}/new", "--units", "2"], "--units needs --site"),
        (["pki", "init", "{dir}/new", "--site", "Algeciras Port"], "site 'Algeciras Port': a site on the bus is"),
        (["pki", "init", "{dir}/new", "--broker-name", "bad name"], "broker name 'bad name': neither an IP"),
    ],
)  # fmt: skip
def test_a_bad_request_is_one_line_naming_what_is_wrong(tmp_path, capsys, argv, message):
    pki.init(tmp_path)

    code = main([a.format(dir=tmp_path) for a in argv])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"borderwatch: error: {message.format(dir=tmp_path)}")
    assert err.count("\n") == 1
    assert not (tmp_path / "new").exists()


def unreadable(path: Path) -> None:
    # Not chmod 0: the tests may run as root, who reads any file.
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "ca.key").write_text("not a key"), "ca.key: not an unencrypted PEM private key"),
        (lambda d: unreadable(d / "ca.key"), "ca.key: cannot read the private key"),
        (lambda d: (d / "ca.crt").write_text("not a certificate"), "ca.crt: not a PEM certificate"),
        (lambda d: (d / "ca.key").write_bytes((d / "broker.key").read_bytes()), "ca.key: does not belong to"),
    ],
)  # fmt: skip
def test_a_damaged_ca_is_named(tmp_path, damage, message):
    pki.init(tmp_path)
    damage(tmp_path)

    with pytest.raises(UserError, match=message):
        pki.issue(tmp_path, ids.hq())
    assert not (tmp_path / "clients" / "hq.crt").exists()
