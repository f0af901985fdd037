"""Sealed case files as an investigator meets them: exported from a run, checked offline on another
machine with only the trusted keys; a forger who replaces the public key, or edits, deletes,
reorders or cuts records and recomputes every hash, is caught with the record named; any one byte
changed anywhere in the file is caught; a file that is no case file is one line and exit 2."""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from groundstation.commands.cli import main
from groundstation.runs.casefile import (
    MANIFEST,
    SEAL,
    SEAL_FORMAT,
    SUMMARY,
    CaseFileError,
    export_case,
    verify_case,
    zip_bytes,
)
from groundstation.runs.recorder import FORMAT, RUN_JSON, SITE_FILE
from sitl.tsa import LocalTsa, openssl_available
from vision.evidence import ZERO_SHA256, EvidenceLog, canonical_json, record_sha256
from vision.signing import Signer, TrustStore, create_key, key_id, parse_public, public_pem
from vision.stamping import HeadStamper
from vision.timestamps import load_tsa_roots

SITE = Path(__file__).resolve().parents[1] / "data" / "sites" / "algeciras-north.geojson"
ZONE = "Eastern anchorage"
START_S = 1_765_000_000.0

needs_openssl = pytest.mark.skipif(not openssl_available(), reason="the local TSA needs openssl on PATH")


def jpeg(n: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + bytes([n]) * 300 + b"\xff\xd9"


def alert(source: str, n: int) -> dict:
    return {
        "alert_id": f"{source}:enter-eastern-anchorage-{n}", "time_s": START_S + n,
        "iso_time": f"2025-12-06T05:46:{n:02d}Z", "rule": "enter", "zone": ZONE, "risk": 4, "severity": "high",
        "object_class": "vessel", "track_id": n,
        "lat_deg": 36.1264, "lon_deg": -5.4240 + 0.0005 * n, "count": 1, "message": f"vessel {n} entered {ZONE}",
        "source": source,
    }  # fmt: skip


def write_log(directory: Path, signer: Signer, source: str, records: int, stamper=None) -> None:
    """``records`` alerts, a snapshot on the odd ones, a head signed after the third and at close."""
    with EvidenceLog.open(directory, signer=signer) as log:
        log.on_head = stamper
        for n in range(1, records + 1):
            payload = {"alert": alert(source, n), "frame_index": n, "pose": None, "detection": None}
            log.append("alert", payload, snapshot_jpeg=jpeg(n) if n % 2 else None, time_s=START_S + n)
            if n == 3:
                log.sign_head()


def write_run(run: Path, station: Signer, unit: Signer, tsa_url: str | None = None, records: int = 6) -> Path:
    run.mkdir(parents=True)
    shutil.copy(SITE, run / SITE_FILE)
    document = {"format": FORMAT, "site_name": "algeciras-north", "started": "2025-12-06T05:46:00Z",
                "ended": "2025-12-06T06:10:00Z", "vehicles": [], "camera": None, "time_scale": 1.0}  # fmt: skip
    (run / RUN_JSON).write_text(json.dumps(document))
    stampers = [HeadStamper(run / d, tsa_url) for d in ("evidence", "onboard/unit-1")] if tsa_url else [None, None]
    write_log(run / "evidence", station, "drone-1", records, stampers[0])
    write_log(run / "onboard" / "unit-1", unit, "unit-1", 4, stampers[1])
    for stamper in stampers:
        if stamper is not None:
            stamper.close()
    return run


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Signer, Signer, Path]:
    """The station's key (a file, for --key), a unit's, and a trust folder holding both."""
    folder = tmp_path_factory.mktemp("keys")
    station = create_key(folder / "station.key")
    unit = Signer.generate()
    store = TrustStore.load(folder / "trust")
    store.trust(station.public)
    store.trust(unit.public)
    return station, unit, folder / "trust"


@pytest.fixture(scope="module")
def tsa():
    if not openssl_available():
        yield None
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("no_proxy", "127.0.0.1")
        with LocalTsa() as tsa:
            yield tsa


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, keys, tsa) -> Path:
    station, unit, _ = keys
    return write_run(tmp_path_factory.mktemp("runs") / "20251206T054600Z-algeciras-north", station, unit,
                     tsa.url if tsa else None)  # fmt: skip


@pytest.fixture
def trust(keys) -> TrustStore:
    return TrustStore.load(keys[2])


@pytest.fixture(scope="module")
def whole_case(tmp_path_factory, run_dir, keys) -> bytes:
    out = tmp_path_factory.mktemp("case") / "case.zip"
    export_case(run_dir, out, keys[0], TrustStore.load(keys[2]))
    return out.read_bytes()


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


def reseal(
    files: dict[str, bytes], sealer: Signer, manifest_edit: Callable[[dict], None] | None = None, as_id: str = ""
) -> bytes:
    """What a forger does after changing files: the manifest's hashes recomputed, sealed again with the
    key the forger has (saying it is key ``as_id``, if given), zipped the way export zips."""
    manifest = json.loads(files[MANIFEST])
    if manifest_edit:
        manifest_edit(manifest)
    body = {p: d for p, d in files.items() if p not in (MANIFEST, SEAL)}
    manifest["files"] = [{"path": p, "sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for p, d in body.items()]
    raw = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    digest = hashlib.sha256(raw).hexdigest()
    seal = {"format": SEAL_FORMAT, "manifest_sha256": digest, "signer": as_id or sealer.key_id,
            "signature": sealer.sign(digest.encode())}  # fmt: skip
    return zip_bytes([(MANIFEST, raw), (SEAL, (canonical_json(seal) + "\n").encode()), *body.items()])


def log_docs(files: dict[str, bytes], log: str = "evidence") -> list[dict]:
    return [json.loads(line) for line in files[f"{log}/evidence.jsonl"].decode().splitlines()]


def put_docs(files: dict[str, bytes], docs: list[dict], log: str = "evidence", anchor: str = ZERO_SHA256) -> None:
    """The records back with every hash and link recomputed (the signatures stay: the forger has no key)."""
    prev = anchor
    for doc in docs:
        doc["prev_sha256"] = prev
        doc["sha256"] = record_sha256(doc)
        prev = doc["sha256"]
    files[f"{log}/evidence.jsonl"] = "".join(canonical_json(d) + "\n" for d in docs).encode()


# ---------------------------------------------------------------------------------------------- export


def test_a_whole_run_exports_and_verifies_with_only_the_trusted_keys(whole_case: bytes, keys, trust, tsa) -> None:
    station, unit, _ = keys
    report = verify_case(whole_case, trust)
    assert report.ok, report.problems
    assert [(c.path, c.first_seq, c.last_seq, c.snapshots, c.withheld) for c in report.logs] == [
        ("evidence", 1, 6, 3, 0),
        ("onboard/unit-1", 1, 4, 2, 0),
    ]
    assert len(report.alerts) == 10 and report.sealed_by == station.key_id
    assert {k.key_id for k in report.keys} == {station.key_id, unit.key_id} and all(k.trusted for k in report.keys)
    assert [c.head.seq for c in report.logs] == [6, 4]
    if tsa is not None:
        assert [c.tokens for c in report.logs] == [2, 2]
        roots = load_tsa_roots(tsa.ca_cert_path)
        checked = verify_case(whole_case, trust, roots)
        assert checked.ok and checked.tokens_checked and checked.heads_without_token == ()


def test_the_manifest_lists_every_file_with_its_hash_and_the_seal_covers_it(whole_case: bytes, keys) -> None:
    files = members(whole_case)
    manifest = json.loads(files[MANIFEST])
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert set(listed) == set(files) - {MANIFEST, SEAL}
    assert all(hashlib.sha256(files[p]).hexdigest() == h for p, h in listed.items())
    assert json.loads(files[SEAL])["manifest_sha256"] == hashlib.sha256(files[MANIFEST]).hexdigest()
    assert {k["key_id"] for k in manifest["keys"]} == {keys[0].key_id, keys[1].key_id}
    assert files[f"keys/{keys[1].key_id}.pub"] == public_pem(keys[1].public)
    assert manifest["alerts"] is None and manifest["withheld"] == []
    assert list(files)[:3] == [MANIFEST, SEAL, SUMMARY]


def test_the_summary_shows_each_alert_from_its_signed_record(whole_case: bytes, keys) -> None:
    page = members(whole_case)[SUMMARY].decode()
    for n in range(1, 7):
        assert f"drone-1:enter-eastern-anchorage-{n}" in page
    assert page.count('<section class="alert">') == 10
    assert page.count("data:image/jpeg;base64,") == 5  # the odd records' snapshots, in the page itself
    assert page.count('<use href="#site"/>') == 10 and 'id="site"' in page  # the site's zones under each alert
    assert ZONE in page and "vessel" in page and "2025-12-06T05:46:03Z" in page and "36.126400, -5.422500" in page
    assert f"key {keys[1].key_id} (fingerprint" in page
    assert "<script" not in page and 'src="http' not in page and 'href="http' not in page


def test_chosen_alerts_get_the_chain_segment_that_proves_them(run_dir: Path, keys, trust, tmp_path: Path) -> None:
    out = tmp_path / "case.zip"
    result = export_case(run_dir, out, keys[0], trust, alert_ids=["drone-1:enter-eastern-anchorage-2",
                                                                  "drone-1:enter-eastern-anchorage-3"])  # fmt: skip
    assert (result.alerts, result.records, result.logs, result.snapshots, result.withheld) == (2, 5, 1, 1, 1)
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    files = members(out.read_bytes())
    manifest = json.loads(files[MANIFEST])
    docs = log_docs(files)
    assert [d["seq"] for d in docs] == [2, 3, 4, 5, 6]  # from the first chosen alert to the newest signed head
    assert manifest["logs"] == [{"path": "evidence", "first_seq": 2, "last_seq": 6, "head_seq": 6,
                                 "anchor_sha256": docs[0]["prev_sha256"]}]  # fmt: skip
    assert [w["seq"] for w in manifest["withheld"]] == [5]  # record 3's snapshot goes; record 5's is withheld
    assert sorted(p for p in files if "/snapshots/" in p) == [f"evidence/snapshots/{docs[1]['snapshot']}"]
    assert "onboard/unit-1/evidence.jsonl" not in files
    report = verify_case(out.read_bytes(), trust)
    assert report.ok, report.problems
    assert report.logs[0].withheld == 1 and report.alerts == tuple(manifest["alerts"])


def test_an_alert_the_run_does_not_have_is_a_user_error(run_dir: Path, tmp_path: Path, keys, capsys) -> None:
    args = ["evidence", "export", str(run_dir), "-o", str(tmp_path / "c.zip"), "--key", str(keys[0].path)]
    assert main([*args, "--trust", str(keys[2]), "--alert", "drone-9:made-up"]) == 2
    err = capsys.readouterr().err
    assert "no alert 'drone-9:made-up'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c.zip").exists()


def test_evidence_that_does_not_verify_is_not_exported(tmp_path: Path, keys, trust, capsys) -> None:
    run = write_run(tmp_path / "run", keys[0], keys[1])
    path = run / "evidence" / "evidence.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2] + lines[3:]))
    args = ["evidence", "export", str(run), "-o", str(tmp_path / "c.zip"), "--key", str(keys[0].path)]
    assert main([*args, "--trust", str(keys[2])]) == 1
    err = capsys.readouterr().err
    assert "record 4" in err and "not exported" in err and not (tmp_path / "c.zip").exists()


def test_a_sealing_key_the_station_does_not_trust_is_a_user_error(run_dir: Path, tmp_path: Path, keys, capsys) -> None:
    stranger = create_key(tmp_path / "stranger.key")
    args = ["evidence", "export", str(run_dir), "-o", str(tmp_path / "c.zip"), "--key", str(stranger.path)]
    assert main([*args, "--trust", str(keys[2])]) == 2
    err = capsys.readouterr().err
    assert f"key {stranger.key_id}, which seals the case, is not in this station's trust store" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "c.zip").exists()


# ---------------------------------------------------------------------------------------------- the CLI


def test_export_and_verify_on_another_machine_with_only_the_trusted_keys(run_dir: Path, keys, tmp_path, capsys) -> None:
    station, unit, _ = keys
    case = tmp_path / "case.zip"
    args = ["evidence", "export", str(run_dir), "-o", str(case), "--key", str(station.path), "--trust", str(keys[2])]
    assert main(args) == 0
    assert "10 alert(s), 10 records from 2 log(s)" in capsys.readouterr().out
    assert main(args) == 2 and "already there" in capsys.readouterr().err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = Path(shutil.copy(case, elsewhere / "CASE.zip"))
    for signer in (station, unit):
        (elsewhere / f"{signer.key_id}.pem").write_bytes(public_pem(signer.public))
        assert (
            main(["keys", "trust", str(elsewhere / f"{signer.key_id}.pem"), "--trust", str(elsewhere / "trust")]) == 0
        )
    capsys.readouterr()
    assert main(["evidence", "verify", str(moved), "--trust", str(elsewhere / "trust")]) == 0
    out = capsys.readouterr().out
    assert "case file intact: 10 records (evidence 1–6, onboard/unit-1 1–4), 10 alert(s)" in out
    assert f"every signature verified; sealed by {station.key_id}" in out and "trusted here" in out

    assert main(["evidence", "verify", str(moved), "--trust", str(tmp_path / "nobody")]) == 1
    out = capsys.readouterr().out
    assert f"evidence record 1: signed by key {station.key_id}, which is not trusted" in out
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: None, "no such case file"),
        (lambda p: p.write_bytes(b"not a zip at all\n"), "not a zip file"),
        (lambda p: p.write_bytes(zip_bytes([("notes.txt", b"hello\n")])), "not a case file"),
    ],
    ids=["missing", "not-a-zip", "another-zip"],
)
def test_what_is_no_case_file_is_one_line_and_exit_2(tmp_path: Path, keys, capsys, make, says) -> None:
    path = tmp_path / "CASE.zip"
    make(path)
    assert main(["evidence", "verify", str(path), "--trust", str(keys[2])]) == 2
    err = capsys.readouterr().err
    assert says in err and str(path) in err and len(err.strip().splitlines()) == 1


def test_a_damaged_case_file_is_one_line_and_exit_1(whole_case: bytes, tmp_path: Path, keys, capsys) -> None:
    files = members(whole_case)
    at = whole_case.index(files["evidence/evidence.jsonl"]) + files["evidence/evidence.jsonl"].index(b"vessel 1")
    damaged = bytearray(whole_case)
    damaged[at] ^= 0x04  # "vessel" becomes "ressel"
    (tmp_path / "CASE.zip").write_bytes(damaged)
    assert main(["evidence", "verify", str(tmp_path / "CASE.zip"), "--trust", str(keys[2])]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path / 'CASE.zip'}: evidence record 1: ") and len(out.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------- forgeries


def forge_with_own_key(files: dict[str, bytes], station: Signer, forger: Signer, as_id: str) -> bytes:
    """A forger's case: record 2 edited, every record and head re-signed with the forger's key under the id
    ``as_id``, the forger's public key shipped as keys/<as_id>.pub, the manifest sealed again with it."""
    docs = log_docs(files)
    docs[1]["payload"]["alert"]["zone"] = "Inner harbour"
    for doc in docs:
        doc["signer"] = as_id
    put_docs(files, docs)
    for doc in docs:
        doc["signature"] = forger.sign(doc["sha256"].encode())
    files["evidence/evidence.jsonl"] = "".join(canonical_json(d) + "\n" for d in docs).encode()
    heads = []
    for line in files["evidence/heads.jsonl"].decode().splitlines():
        head = json.loads(line)
        body = {"seq": head["seq"], "sha256": docs[head["seq"] - 1]["sha256"], "time": head["time"], "signer": as_id}
        heads.append({**body, "signature": forger.sign(canonical_json(body).encode())})
    files["evidence/heads.jsonl"] = "".join(canonical_json(h) + "\n" for h in heads).encode()
    files.pop("evidence/timestamps.jsonl", None)  # the TSA's tokens are for the true heads: gone
    del files[f"keys/{station.key_id}.pub"]
    files[f"keys/{as_id}.pub"] = public_pem(forger.public)
    return reseal(files, forger, as_id=as_id)


def trusting_what_it_ships(case: bytes) -> TrustStore:
    """The verifier this design is not: one that takes the keys in the case file as they come."""
    keys = [parse_public(d, p) for p, d in members(case).items() if p.startswith("keys/")]
    return TrustStore({key_id(k): k for k in keys})


@pytest.mark.parametrize("under_station_name", [False, True], ids=["forgers-own-id", "under-the-stations-id"])
def test_replacing_the_public_key_in_the_case_file_is_caught_naming_the_record(
    whole_case: bytes, keys, trust, under_station_name: bool
) -> None:
    station, forger = keys[0], Signer.generate()
    as_id = station.key_id if under_station_name else forger.key_id
    forged = forge_with_own_key(members(whole_case), station, forger, as_id)
    if not under_station_name:
        assert verify_case(forged, trusting_what_it_ships(forged)).ok  # the forgery holds up against its own key

    report = verify_case(forged, trust)
    assert not report.ok and report.first_bad_record == ("evidence", 1), report.problems
    if under_station_name:
        assert report.problems[0].reason == (
            f"the signature does not match key {station.key_id}; the case file's keys/{station.key_id}.pub holds "
            f"another key ({forger.key_id}): it was replaced"
        )
    else:
        assert report.problems[0].reason == f"signed by key {forger.key_id}, which is not trusted"
    assert any(p.where == SEAL for p in report.problems)


def test_a_key_file_replaced_alone_is_named(whole_case: bytes, keys, trust) -> None:
    forger = Signer.generate()
    files = members(whole_case)
    files[f"keys/{keys[1].key_id}.pub"] = public_pem(forger.public)
    report = verify_case(reseal(files, keys[0]), trust)  # even re-sealed with the station's own key
    assert not report.ok
    assert [str(p) for p in report.problems] == [
        f"keys/{keys[1].key_id}.pub: holds key {forger.key_id}, not {keys[1].key_id}: the public key was replaced"
    ]


def _edit(docs):
    docs[1]["payload"]["alert"]["zone"] = "Inner harbour"


def _delete(docs):
    docs.pop(2)
    for seq, doc in enumerate(docs, 1):
        doc["seq"] = seq


def _insert(docs):
    docs.insert(3, {**docs[3], "payload": {"alert": {"alert_id": "made-up"}}})
    for seq, doc in enumerate(docs, 1):
        doc["seq"] = seq


def _reorder(docs):
    docs.insert(1, docs.pop(3))
    for seq, doc in enumerate(docs, 1):
        doc["seq"] = seq


@pytest.mark.parametrize(
    ("tamper", "seq"),
    [(_edit, 2), (_delete, 3), (_insert, 4), (_reorder, 2)],
    ids=["edit", "delete", "insert", "reorder"],
)
def test_records_changed_and_every_hash_recomputed_are_caught_naming_the_record(
    whole_case: bytes, keys, trust, tamper, seq: int
) -> None:
    files = members(whole_case)
    docs = log_docs(files)
    tamper(docs)
    put_docs(files, docs)
    report = verify_case(reseal(files, keys[0], lambda m: m["logs"][0].update(last_seq=len(docs))), trust)
    assert not report.ok and report.first_bad_record == ("evidence", seq), report.problems
    assert "signature does not match" in report.problems[0].reason


def test_records_cut_off_the_end_are_caught_against_the_signed_head(whole_case: bytes, keys, trust) -> None:
    files = members(whole_case)
    fifth = log_docs(files)[4]
    files["evidence/evidence.jsonl"] = b"".join(files["evidence/evidence.jsonl"].splitlines(keepends=True)[:4])
    del files[f"evidence/snapshots/{fifth['snapshot']}"]
    report = verify_case(reseal(files, keys[0], lambda m: m["logs"][0].update(last_seq=4)), trust)
    assert not report.ok and report.first_bad_record == ("evidence", 6), report.problems
    assert "signed as the head at" in report.problems[0].reason and "records cut off" in report.problems[0].reason


def test_a_swapped_snapshot_is_caught_naming_the_record(whole_case: bytes, keys, trust) -> None:
    files = members(whole_case)
    snaps = sorted(p for p in files if p.startswith("evidence/snapshots/"))
    files[snaps[0]] = files[snaps[1]]
    report = verify_case(reseal(files, keys[0]), trust)
    assert not report.ok and report.first_bad_record == ("evidence", 1)
    assert "its snapshot" in report.problems[0].reason and "was altered" in report.problems[0].reason


@needs_openssl
def test_a_token_from_another_tsa_is_caught_naming_the_record(whole_case: bytes, trust, tsa) -> None:
    with LocalTsa(name="someone else") as other:
        report = verify_case(whole_case, trust, load_tsa_roots(other.ca_cert_path))
    assert not report.ok and report.first_bad_record == ("evidence", 3)
    assert "timestamp token of its head does not verify" in report.problems[0].reason


# ---------------------------------------------------------------------------------------------- fuzz


def regions(data: bytes) -> dict[str, Sequence[int]]:
    """Where each member's bytes lie in the zip, and the zip's own headers between them."""
    spans = {}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            start = info.header_offset + 30 + len(info.filename)
            spans[info.filename] = range(start, start + info.file_size)
    covered = {i for span in spans.values() for i in span}
    return {**spans, "zip headers": [i for i in range(len(data)) if i not in covered]}


def test_a_thousand_single_byte_changes_anywhere_are_all_detected(whole_case: bytes, trust) -> None:
    """Without TSA roots: what catches a changed token is the sealed manifest, not the TSA's signature."""
    spans = regions(whole_case)
    kinds = {
        "log": [n for n in spans if n.endswith("evidence.jsonl")],
        "heads": [n for n in spans if n.endswith("heads.jsonl")],
        "tokens": [n for n in spans if n.endswith("timestamps.jsonl")],
        "snapshots": [n for n in spans if "/snapshots/" in n],
        "manifest": [MANIFEST],
        "seal": [SEAL],
        "summary": [SUMMARY],
        "keys": [n for n in spans if n.startswith("keys/")],
        "site": [SITE_FILE],
        "zip headers": ["zip headers"],
    }
    kinds = {k: v for k, v in kinds.items() if v}
    rng = random.Random(15)
    missed, by_kind = [], dict.fromkeys(kinds, 0)
    for i in range(1000):
        kind = list(kinds)[i % len(kinds)]
        at = rng.choice(spans[rng.choice(kinds[kind])])
        changed = bytearray(whole_case)
        changed[at] ^= rng.randrange(1, 256)
        try:
            detected = not verify_case(bytes(changed), trust).ok
        except CaseFileError:
            detected = True  # the zip's end record hit: no longer a zip at all
        by_kind[kind] += 1
        if not detected:
            missed.append((kind, at))
    assert missed == [], missed
    assert all(n >= 90 for n in by_kind.values()), by_kind
