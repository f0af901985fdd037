"""Where the app keeps its settings and window layout (QSettings), and the few values it reads back.

Tests and `borderwatch gui --settings FILE` use an INI file of their own, so nothing a test
does leaks into the operator's settings.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QSettings

ORGANIZATION = "borderwatch"
APPLICATION = "borderwatch"

RUNS_DIR_KEY = "app/runs_dir"
TILES_KEY = "app/tiles"
LAST_SITE_KEY = "app/last_site"
AIS_URL_KEY = "app/ais_url"
TAK_URLS_KEY = "app/tak_urls"  # a JSON list of CoT destinations (vision.cot.destinations)
GEOMETRY_KEY = "window/geometry"
STATE_KEY = "window/state"
# Bump when docks are added or renamed: Qt refuses a saved state of another version.
WINDOW_STATE_VERSION = 1

DEFAULT_RUNS_DIR = Path("out") / "runs"


def app_settings(path: str | Path | None = None) -> QSettings:
    """The operator's settings, or those in the INI file `path` when one is given."""
    if path is not None:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def text_value(settings: QSettings, key: str, default: str = "") -> str:
    """A string setting; QSettings hands back None, lists or numbers for values other tools wrote."""
    value = settings.value(key, default)
    return value if isinstance(value, str) else default
