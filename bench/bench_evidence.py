"""Signed evidence: what signing and verifying cost per record, beside bare SHA-256 in the same run.

1. Appending N alert records (each with a 60 kB JPEG snapshot, fsynced as the log always does)
   to a signed log and to an unsigned one (the hash chain alone), in the same run.
2. Verifying both logs: hashes, links and snapshots alone, then every signature and the signed head.
3. The bare cost of one SHA-256 of a record's canonical JSON, and of one Ed25519 signature and
   verification, so the ratios say where the time goes.

Goal (issue 15): the evidence log keeps up with 100 alerts a second on one core, signed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

from vision.evidence import EvidenceLog, canonical_json
from vision.evidence_verify import verify
from vision.signing import Signer, TrustStore

RECORDS = 400
GOAL_PER_S = 100.0


def _alert(n: int) -> dict:
    return {"alert": {"alert_id": f"cam1:enter-anchorage-{n}", "zone": "Anchorage", "rule": "enter",
                      "message": f"vessel {n} entered Anchorage", "lat_deg": 36.127, "lon_deg": -5.4245}}  # fmt: skip


def _append(directory: Path, signer: Signer | None, jpeg: bytes) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to append RECORDS records and close."""
    wall, cpu = time.perf_counter(), time.process_time()
    with EvidenceLog.open(directory, signer=signer) as log:
        for n in range(RECORDS):
            log.append("alert", _alert(n), snapshot_jpeg=jpeg)
    return time.perf_counter() - wall, time.process_time() - cpu


def _timed(fn, repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat


def main() -> int:
    jpeg = b"\xff\xd8" + os.urandom(60_000) + b"\xff\xd9"
    signer = Signer.generate()
    trust = TrustStore({signer.key_id: signer.public})
    with tempfile.TemporaryDirectory(prefix="bench-evidence-") as tmp:
        plain_dir, signed_dir = Path(tmp) / "plain", Path(tmp) / "signed"
        plain_wall, plain_cpu = _append(plain_dir, None, jpeg)
        signed_wall, signed_cpu = _append(signed_dir, signer, jpeg)
        verify_plain = _timed(lambda: verify(plain_dir), 3)
        verify_signed = _timed(lambda: verify(signed_dir, trust), 3)
        assert verify(signed_dir, trust).ok

    body = canonical_json({"seq": 1, **_alert(1), "prev_sha256": "0" * 64}).encode()
    sha_s = _timed(lambda: hashlib.sha256(body).hexdigest(), 20000)
    digest = hashlib.sha256(body).hexdigest().encode()
    sign_s = _timed(lambda: signer.sign(digest), 2000)
    signature = signer.sign(digest)
    check_s = _timed(lambda: trust.verify(signer.key_id, digest, signature), 2000)

    per_s_signed = RECORDS / signed_cpu
    print(f"{RECORDS} alert records with a 60 kB snapshot each, fsynced; one process, one core")
    print(f"{'':28}{'records/s (wall)':>18}{'CPU ms/record':>15}{'verify ms/record':>18}")
    print(f"{'hash chain only (baseline)':28}{RECORDS / plain_wall:>18.0f}{plain_cpu / RECORDS * 1000:>15.2f}"
          f"{verify_plain / RECORDS * 1000:>18.3f}")  # fmt: skip
    print(f"{'signed (Ed25519)':28}{RECORDS / signed_wall:>18.0f}{signed_cpu / RECORDS * 1000:>15.2f}"
          f"{verify_signed / RECORDS * 1000:>18.3f}")  # fmt: skip
    print(f"ratios signed/baseline: append CPU {signed_cpu / plain_cpu:.2f}×, wall {signed_wall / plain_wall:.2f}×, "
          f"verify {verify_signed / verify_plain:.2f}×")  # fmt: skip
    print(f"bare costs: SHA-256 of a record {sha_s * 1e6:.1f} µs, Ed25519 sign {sign_s * 1e6:.1f} µs "
          f"({sign_s / sha_s:.0f}× the hash), verify {check_s * 1e6:.1f} µs ({check_s / sha_s:.0f}×)")  # fmt: skip
    ok = per_s_signed >= GOAL_PER_S and RECORDS / signed_wall >= GOAL_PER_S
    print(f"{'PASS' if ok else 'FAIL'}  signed log keeps up with {GOAL_PER_S:.0f} alerts/s on one core: "
          f"{RECORDS / signed_wall:.0f}/s wall, {per_s_signed:.0f}/s of CPU")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
