"""Turning what MAVSDK and the vehicle say into a :class:`Reason`."""

from __future__ import annotations

import re

from groundstation.fleet.state import Reason, Severity

# PX4's own wording (commander, navigator, battery failsafe); lower-cased before matching.
_TEXT_RULES: tuple[tuple[re.Pattern[str], Reason], ...] = (
    (re.compile(r"geofence|fence"), Reason.FENCE_VIOLATION),
    (re.compile(r"battery|low charge|power"), Reason.BATTERY_LOW),
    (re.compile(r"mission.*(reject|invalid|feasib|fail)|(reject|invalid).*mission"), Reason.MISSION_REJECTED),
    (re.compile(r"failsafe|link lost|gps lost|no gps|position lost|data link"), Reason.FAILSAFE),
    (re.compile(r"denied|reject|not allowed|refus"), Reason.COMMAND_DENIED),
)  # fmt: skip


def classify_status_text(text: str) -> Reason:
    lowered = text.lower()
    for pattern, reason in _TEXT_RULES:
        if pattern.search(lowered):
            return reason
    return Reason.STATUS_TEXT


def severity_of(status_text_type: int) -> Severity:
    """MAVSDK's StatusTextType counts DEBUG=0 … EMERGENCY=7; everything from CRITICAL up is CRITICAL."""
    return Severity(min(int(status_text_type), int(Severity.CRITICAL)))


def _result_reason(result_name: str, otherwise: Reason) -> Reason:
    if "TIMEOUT" in result_name:
        return Reason.TIMEOUT
    if result_name in ("NO_SYSTEM", "CONNECTION_ERROR"):
        return Reason.LINK_LOST
    return otherwise


def action_reason(result_name: str) -> Reason:
    """An ActionResult / MissionRawResult name as a Reason."""
    return _result_reason(result_name, Reason.COMMAND_DENIED)


def transfer_reason(result_name: str) -> Reason:
    """A MissionRawResult name from an upload or download as a Reason."""
    return _result_reason(result_name, Reason.MISSION_REJECTED)
