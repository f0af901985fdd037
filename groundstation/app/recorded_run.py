"""A recorded run's alerts as the app shows them: each as its verified evidence record says it.

The rows are the report's (`groundstation.runs.report`): an alert with a verified record is shown as
the record holds it, with who signed it and its snapshot; a line of ``alerts.jsonl`` that differs
from its record, or has none, or whose record's log does not verify, is shown as the line says it,
unverified, with the reason. An alert with a verified record and a line that differs is shown as the
record says it, and the line's difference is told beside it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from groundstation.app.alerts_panel import AlertEntry
from groundstation.runs.kpis import evidence_kpis
from groundstation.runs.reader import EvidenceAlert, RunData


def recorded_alerts(run: RunData) -> list[AlertEntry]:
    """One entry per alert id, oldest first."""
    entries = {alert_id: _verified_entry(record) for alert_id, record in run.verified_alerts.items()}
    for check in run.unverified_alerts:
        alert_id = check.alert.alert_id
        known = entries.get(alert_id)
        if known is None:
            entries[alert_id] = AlertEntry(check.alert, None, evidence=check.unverified_line, verified=False)
        elif known.verified and check.fields:
            note = f"; {check.source} differs from it in {', '.join(check.fields)}"
            entries[alert_id] = replace(known, evidence=known.evidence + note)
    return sorted(entries.values(), key=lambda e: (e.alert.time_s, e.alert.alert_id))


def run_verdict(run: RunData) -> tuple[str, bool]:
    """What the run's evidence is worth, in a line, and whether every alert shown is verified."""
    shown = recorded_alerts(run)
    unverified = sum(1 for e in shown if not e.verified)
    evidence = evidence_kpis(run)
    alerts = f"{len(shown)} alert(s), {len(shown) - unverified} verified"
    alerts += f", {unverified} UNVERIFIED (in red)" if unverified else ""
    ok = evidence.ok and not unverified
    return f"Recorded run {run.directory.name}: {alerts}. Evidence: {evidence.verdict}", ok


def _verified_entry(record: EvidenceAlert) -> AlertEntry:
    return AlertEntry(record.alert, _snapshot(record.snapshot), evidence=record.signed_by, verified=True)


def _snapshot(path: Path | None) -> bytes | None:
    """The snapshot a verified record names (its hash was checked with the record); None when it cannot be read."""
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None
