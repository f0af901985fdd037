"""A progress line on stderr for work that takes a while; silent for quick work."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Call with a fraction done; shows it once the work has run longer than ``after_s``."""

    def __init__(self, label: str, stream: TextIO | None = None, after_s: float = 1.0, every_s: float = 0.5) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.after_s = after_s
        self.every_s = every_s
        self._start = time.monotonic()
        self._last = -1.0
        self._shown = False

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self._start < self.after_s or now - self._last < self.every_s:
            return
        self._last = now
        self._shown = True
        tty = getattr(self.stream, "isatty", lambda: False)()
        end = "\r" if tty else "\n"
        self.stream.write(f"{self.label}: {100 * min(max(fraction, 0.0), 1.0):3.0f} %{end}")
        self.stream.flush()

    def done(self) -> None:
        if self._shown:
            elapsed = time.monotonic() - self._start
            self.stream.write(f"{self.label}: done in {elapsed:.1f} s\n")
            self.stream.flush()
