"""Where the map's background comes from: an MBTiles file, a tile folder, a tile server, or nothing.

A patrol is often planned and flown where there is no internet, so the map never needs a
network: an MBTiles file (one SQLite database of tiles) is served to the page through the
``mbtiles:`` URL scheme, a folder of ``{z}/{x}/{y}.png`` files through file URLs, and with
neither the map has a plain background.

Importing this module registers the ``mbtiles:`` scheme with Qt WebEngine. Chromium reads
its list of custom schemes once, when it starts, so the import has to happen before the
QApplication is created; ``map_view`` imports this module, and so does anything importing
``map_view`` at the top of the file.
"""

from __future__ import annotations

import contextlib
import enum
import os
import socket
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from PyQt6 import sip
from PyQt6.QtCore import QBuffer, QByteArray, QIODevice, QObject, QUrl, pyqtSignal
from PyQt6.QtWebEngineCore import (
    QWebEngineProfile,
    QWebEngineUrlRequestJob,
    QWebEngineUrlScheme,
    QWebEngineUrlSchemeHandler,
)

from missions.errors import InputError

_HANDLERS: dict[int, MBTilesSchemeHandler] = {}

ONLINE_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
ONLINE_ATTRIBUTION = "© OpenStreetMap contributors"
_ONLINE_PROBE = ("tile.openstreetmap.org", 443)

MBTILES_SCHEME = b"mbtiles"

_MIME_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}
_IMAGE_SUFFIXES = frozenset(_MIME_TYPES)


def _register_scheme() -> None:
    scheme = QWebEngineUrlScheme(MBTILES_SCHEME)
    scheme.setSyntax(QWebEngineUrlScheme.Syntax.Host)
    # Secure, so that a page of any origin may show its tiles; CORS, so that a tile could be
    # read back into a canvas.
    scheme.setFlags(QWebEngineUrlScheme.Flag.SecureScheme | QWebEngineUrlScheme.Flag.CorsEnabled)
    QWebEngineUrlScheme.registerScheme(scheme)


if QWebEngineUrlScheme.schemeByName(MBTILES_SCHEME).name() != MBTILES_SCHEME:
    _register_scheme()


class TileKind(enum.Enum):
    NONE = "none"
    MBTILES = "mbtiles"
    FOLDER = "folder"
    ONLINE = "online"


@dataclass(frozen=True)
class TileSource:
    """What the map draws under the site: :meth:`mbtiles`, :meth:`folder`, :meth:`online` or :meth:`none`.

    Nothing is opened here: a bad file is reported when the map is given the source, so a
    path kept in the settings from an earlier session cannot stop the app from starting.
    """

    kind: TileKind
    path: Path | None = None
    url_template: str = ""
    attribution: str = ""

    @classmethod
    def none(cls) -> TileSource:
        return cls(TileKind.NONE)

    @classmethod
    def mbtiles(cls, path: str | os.PathLike[str], attribution: str = "") -> TileSource:
        """Raster tiles from an MBTiles file; its own attribution is used when none is given."""
        return cls(TileKind.MBTILES, path=Path(path), attribution=attribution)

    @classmethod
    def folder(cls, path: str | os.PathLike[str], attribution: str = "") -> TileSource:
        """A ``{z}/{x}/{y}.png`` (or .jpg, .webp) tree, in the XYZ numbering of web maps."""
        return cls(TileKind.FOLDER, path=Path(path), attribution=attribution)

    @classmethod
    def online(cls, url_template: str, attribution: str = "") -> TileSource:
        """A tile server, e.g. ``https://tile.openstreetmap.org/{z}/{x}/{y}.png``.

        Whether the network allows it is the app's decision; tiles that fail to load leave
        the plain background.
        """
        return cls(TileKind.ONLINE, url_template=url_template, attribution=attribution)

    @property
    def label(self) -> str:
        if self.kind is TileKind.ONLINE:
            return self.url_template
        if self.path is not None:
            return str(self.path)
        return "plain background"


@dataclass(frozen=True)
class TileLayerSpec:
    """A source opened and checked: what the page's tile layer is built from."""

    url_template: str
    attribution: str = ""
    min_zoom: int | None = None
    max_zoom: int | None = None
    bounds_deg: tuple[float, float, float, float] | None = None  # west, south, east, north

    def to_json_dict(self) -> dict:
        return {
            "url": self.url_template,
            "attribution": self.attribution,
            "minNativeZoom": self.min_zoom,
            "maxNativeZoom": self.max_zoom,
            "bounds": (
                [[self.bounds_deg[1], self.bounds_deg[0]], [self.bounds_deg[3], self.bounds_deg[2]]]
                if self.bounds_deg
                else None
            ),
        }


class MBTiles:
    """A read-only MBTiles file.

    MBTiles numbers rows from the south (TMS), web maps from the north (XYZ): :meth:`tile`
    takes XYZ numbers and flips the row.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        source = str(self.path)
        if not self.path.is_file():
            raise InputError(source, "no such MBTiles file")
        try:
            # Read-only and immutable: the map never writes, and another program may hold the file.
            self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            first = self._db.execute("SELECT zoom_level, tile_data FROM tiles LIMIT 1").fetchone()
            self.metadata = self._read_metadata()
            zooms = self._db.execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
        except sqlite3.Error as exc:
            self.close()
            raise InputError(source, f"not an MBTiles file: {exc}") from exc
        if first is None:
            self.close()
            raise InputError(source, "the MBTiles file holds no tiles")
        self.format = (self.metadata.get("format") or _sniff_format(bytes(first[1]))).lower()
        if self.format not in _MIME_TYPES:
            self.close()
            raise InputError(source, f"tiles in {self.format!r} format cannot be shown; png, jpg or webp are")
        self.mime_type = _MIME_TYPES[self.format]
        self.min_zoom = _int_or(self.metadata.get("minzoom"), zooms[0])
        self.max_zoom = _int_or(self.metadata.get("maxzoom"), zooms[1])
        self.bounds_deg = _bounds(self.metadata.get("bounds"))
        self.attribution = self.metadata.get("attribution", "")

    def _read_metadata(self) -> dict[str, str]:
        try:
            rows = self._db.execute("SELECT name, value FROM metadata").fetchall()
        except sqlite3.OperationalError:
            # The metadata table is required by the specification but missing from some
            # files that are otherwise fine; everything in it can be worked out from the tiles.
            return {}
        return {str(name): str(value) for name, value in rows if value is not None}

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        row = (1 << z) - 1 - y
        found = self._db.execute(
            "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?", (z, x, row)
        ).fetchone()
        return bytes(found[0]) if found else None

    def layer_spec(self, url_template: str, attribution: str = "") -> TileLayerSpec:
        return TileLayerSpec(
            url_template, attribution or self.attribution, self.min_zoom, self.max_zoom, self.bounds_deg
        )

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()


def folder_layer_spec(source: TileSource) -> TileLayerSpec:
    """Check a tile folder and build the file URL template of its tiles."""
    assert source.path is not None
    if not source.path.is_dir():
        raise InputError(str(source.path), "no such tile folder")
    zooms = sorted(int(p.name) for p in source.path.iterdir() if p.is_dir() and p.name.isdigit())
    suffix = _first_tile_suffix(source.path, zooms)
    if suffix is None:
        raise InputError(str(source.path), "no {z}/{x}/{y}.png (or .jpg, .webp) tiles in the folder")
    base = QUrl.fromLocalFile(str(source.path.resolve())).toString()
    return TileLayerSpec(f"{base}/{{z}}/{{x}}/{{y}}.{suffix}", source.attribution, zooms[0], zooms[-1])


def _first_tile_suffix(root: Path, zooms: list[int]) -> str | None:
    # Stops at the first tile: a folder of a whole region holds millions.
    for z in zooms:
        with os.scandir(root / str(z)) as columns:
            for column in columns:
                if not column.is_dir():
                    continue
                with os.scandir(column.path) as tiles:
                    for tile in tiles:
                        suffix = tile.name.rpartition(".")[2].lower()
                        if suffix in _IMAGE_SUFFIXES:
                            return suffix
    return None


def _sniff_format(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"\x1f\x8b"):
        return "pbf"
    return "unknown"


def _int_or(text: str | None, default: int | None) -> int | None:
    try:
        return int(float(text)) if text is not None else default
    except ValueError:
        return default


def _bounds(text: str | None) -> tuple[float, float, float, float] | None:
    try:
        west, south, east, north = (float(v) for v in (text or "").split(","))
    except ValueError:
        return None
    return west, south, east, north


class MBTilesSchemeHandler(QWebEngineUrlSchemeHandler):
    """Answers ``mbtiles://HOST/z/x/y`` from the MBTiles file registered under HOST.

    One per profile, shared by the maps that use the profile; each map registers its file
    under a host of its own. Requests arrive on the UI thread; an indexed SQLite read of one
    tile takes well under a millisecond.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._files: dict[str, MBTiles] = {}
        self._next = 0
        self.served = 0

    @classmethod
    def of(cls, profile: QWebEngineProfile) -> MBTilesSchemeHandler:
        """The profile's handler, installed on first use."""
        # Held here, not found through the profile: Qt keeps the C++ handler alive but PyQt
        # lets go of its Python half, whose requestStarted would then never run.
        key = sip.unwrapinstance(profile)
        handler = _HANDLERS.get(key)
        if handler is None:
            handler = _HANDLERS[key] = cls(profile)
            profile.destroyed.connect(lambda: _HANDLERS.pop(key, None))
            profile.installUrlSchemeHandler(QByteArray(MBTILES_SCHEME), handler)
        return handler

    def add(self, mbtiles: MBTiles) -> str:
        """Serve the file; the URL template of its tiles."""
        self._next += 1
        host = f"t{self._next}"
        self._files[host] = mbtiles
        return f"{MBTILES_SCHEME.decode()}://{host}/{{z}}/{{x}}/{{y}}"

    def remove(self, url_template: str) -> None:
        host = QUrl(url_template.split("{", 1)[0]).host()
        mbtiles = self._files.pop(host, None)
        if mbtiles is not None:
            mbtiles.close()

    def requestStarted(self, job: QWebEngineUrlRequestJob | None) -> None:
        assert job is not None
        url = job.requestUrl()
        mbtiles = self._files.get(url.host())
        try:
            z, x, y = (int(part) for part in url.path().strip("/").split("/"))
        except ValueError:
            job.fail(QWebEngineUrlRequestJob.Error.UrlInvalid)
            return
        data = mbtiles.tile(z, x, y) if mbtiles is not None else None
        if data is None:
            job.fail(QWebEngineUrlRequestJob.Error.UrlNotFound)
            return
        buffer = QBuffer(job)
        buffer.setData(data)
        buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        job.reply(mbtiles.mime_type.encode(), buffer)
        self.served += 1


class OnlineProbe(QObject):
    """Whether the online tile server answers, asked on a thread of its own; ``answered`` comes on the interface's."""

    answered = pyqtSignal(bool)

    def start(self) -> None:
        threading.Thread(target=self._probe, name="tile-probe", daemon=True).start()

    def _probe(self) -> None:
        try:
            with socket.create_connection(_ONLINE_PROBE, timeout=1.5):
                reachable = True
        except OSError:
            reachable = False
        with contextlib.suppress(RuntimeError):  # the window is gone: nobody asks any more
            self.answered.emit(reachable)
