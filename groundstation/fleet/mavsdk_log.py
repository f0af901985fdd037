"""MAVSDK's own log lines, routed into Python's `logging` instead of straight to stderr.

MAVSDK prints every discovered component and every status text at debug level; an
operator needs its warnings and errors, the rest belongs in a log at debug level.
"""

from __future__ import annotations

import logging

from mavsdk.logging import LogLevel, log_subscribe

logger = logging.getLogger("mavsdk")

_LEVELS = {
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.WARN: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
}
_routed = False


def route_mavsdk_logs() -> None:
    """Once per process: MAVSDK's log lines go to the `mavsdk` logger, not to stderr."""
    global _routed
    if _routed:
        return

    def forward(level: LogLevel, message: str, file: str | None, line: int) -> bool:
        logger.log(_LEVELS.get(level, logging.INFO), "%s", message)
        return True  # handled: MAVSDK prints nothing itself

    log_subscribe(forward)
    _routed = True
