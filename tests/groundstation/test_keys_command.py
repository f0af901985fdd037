"""`borderwatch keys`: a unit's signing key, made readable by its owner only; its public half exported
with a fingerprint and trusted by the station that verifies; bad keys are one line and exit 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from groundstation.commands.cli import main
from vision.evidence import EvidenceLog
from vision.evidence_verify import verify
from vision.signing import TrustStore, load_key


@pytest.fixture
def station(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BORDERWATCH_KEY", str(tmp_path / "station" / "keys" / "signing.key"))
    monkeypatch.setenv("BORDERWATCH_TRUST", str(tmp_path / "station" / "trust"))
    return tmp_path / "station"


def test_init_export_trust_and_verify_a_units_evidence(station: Path, tmp_path: Path, capsys) -> None:
    unit_key = tmp_path / "unit" / "signing.key"
    assert main(["keys", "init", "--key", str(unit_key)]) == 0
    assert oct(unit_key.stat().st_mode & 0o777) == "0o600"
    assert oct(unit_key.parent.stat().st_mode & 0o777) == "0o700"
    signer = load_key(unit_key)
    capsys.readouterr()

    assert main(["keys", "export", "--key", str(unit_key), "-o", str(tmp_path / "unit.pub")]) == 0
    out = capsys.readouterr().out
    assert f"# key id {signer.key_id}" in out and "-----BEGIN PUBLIC KEY-----" in out
    assert "PRIVATE" not in out and "PRIVATE" not in (tmp_path / "unit.pub").read_text()

    with EvidenceLog.open(tmp_path / "evidence", signer=signer) as log:
        log.append("alert", {"alert": {"alert_id": "a1"}})
    other_station = TrustStore.load(tmp_path / "elsewhere")
    assert not verify(tmp_path / "evidence", other_station).ok  # not yet trusted there

    assert main(["keys", "trust", str(tmp_path / "unit.pub"), "--trust", str(tmp_path / "elsewhere")]) == 0
    assert f"trusted key {signer.key_id}" in capsys.readouterr().out
    assert verify(tmp_path / "evidence", TrustStore.load(tmp_path / "elsewhere")).ok
    assert main(["evidence", "verify", str(tmp_path / "evidence"), "--trust", str(tmp_path / "elsewhere")]) == 0
    assert f"signed by {signer.key_id}, every signature verified" in capsys.readouterr().out


def test_init_trusts_the_stations_own_key_and_never_replaces_one_unasked(station: Path, capsys) -> None:
    assert main(["keys", "init"]) == 0
    key = load_key(station / "keys" / "signing.key")
    assert key.key_id in TrustStore.load(station / "trust")
    assert main(["keys", "init"]) == 2
    assert "a key is already there" in capsys.readouterr().err
    assert load_key(station / "keys" / "signing.key").key_id == key.key_id


def _write_p256(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    os.chmod(path, 0o600)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: None, "no signing key there; `borderwatch keys init` makes one"),
        (lambda p: (p.write_text("not a key\n"), os.chmod(p, 0o600)), "not a PEM private key"),
        (_write_p256, "not Ed25519"),
        (lambda p: (main(["keys", "init", "--key", str(p)]), os.chmod(p, 0o644)), "readable by others"),
    ],
    ids=["missing", "garbage", "wrong-type", "too-open"],
)
def test_a_bad_key_is_one_line_naming_it_and_exit_2(station: Path, tmp_path: Path, capsys, make, says) -> None:
    path = tmp_path / "signing.key"
    make(path)
    capsys.readouterr()
    assert main(["keys", "export", "--key", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and says in err and len(err.strip().splitlines()) == 1


def test_a_public_key_that_is_not_ed25519_is_refused(station: Path, tmp_path: Path, capsys) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "p256.pub").write_bytes(
        key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert main(["keys", "trust", str(tmp_path / "p256.pub")]) == 2
    assert "not Ed25519" in capsys.readouterr().err
