"""Map backgrounds: MBTiles files, tile folders, tile servers that cannot be reached, and files that are not tiles."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
from PyQt6.QtCore import QCoreApplication, QEvent
from PyQt6.QtGui import QColor
from PyQt6.QtWebEngineCore import QWebEngineUrlScheme

from groundstation.app.map_view import MapView
from groundstation.app.tiles import MBTILES_SCHEME, MBTiles, TileKind, TileSource, folder_layer_spec
from groundstation.runs.style import BACKGROUND_COLOR
from missions.errors import InputError

NORTH_BGR = (40, 40, 220)  # red
SOUTH_BGR = (200, 90, 20)  # blue


def png(bgr: tuple[int, int, int]) -> bytes:
    ok, data = cv2.imencode(".png", np.full((256, 256, 3), bgr, np.uint8))
    assert ok
    return data.tobytes()


def zoom1_tiles() -> dict[tuple[int, int, int], bytes]:
    """The world at zoom 1 in XYZ numbering: the northern tiles red, the southern ones blue."""
    return {(1, x, y): png(NORTH_BGR if y == 0 else SOUTH_BGR) for x in (0, 1) for y in (0, 1)}


def write_mbtiles(path: Path, tiles: dict[tuple[int, int, int], bytes], metadata: dict[str, str] | None) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)")
    if metadata is not None:
        db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        db.executemany("INSERT INTO metadata VALUES (?, ?)", metadata.items())
    # MBTiles numbers rows from the south.
    db.executemany(
        "INSERT INTO tiles VALUES (?, ?, ?, ?)", [(z, x, (1 << z) - 1 - y, data) for (z, x, y), data in tiles.items()]
    )
    db.commit()
    db.close()
    return path


@pytest.fixture
def mbtiles_file(tmp_path) -> Path:
    metadata = {"name": "test", "format": "png", "minzoom": "1", "maxzoom": "1", "attribution": "<b>Test</b> tiles"}
    return write_mbtiles(tmp_path / "world.mbtiles", zoom1_tiles(), metadata)


def test_the_mbtiles_scheme_is_registered_on_import():
    assert bytes(QWebEngineUrlScheme.schemeByName(MBTILES_SCHEME).name()) == MBTILES_SCHEME


def test_mbtiles_serves_tiles_in_xyz_numbering(mbtiles_file):
    mbtiles = MBTiles(mbtiles_file)
    assert mbtiles.tile(1, 0, 0) == png(NORTH_BGR)
    assert mbtiles.tile(1, 1, 1) == png(SOUTH_BGR)
    assert mbtiles.tile(2, 0, 0) is None
    assert (mbtiles.format, mbtiles.mime_type, mbtiles.min_zoom, mbtiles.max_zoom) == ("png", "image/png", 1, 1)
    assert mbtiles.attribution == "<b>Test</b> tiles"
    mbtiles.close()


def test_mbtiles_without_metadata_is_read_from_its_tiles(tmp_path):
    tiles = {(2, 1, 1): png(NORTH_BGR), (4, 3, 5): png(SOUTH_BGR)}
    mbtiles = MBTiles(write_mbtiles(tmp_path / "bare.mbtiles", tiles, metadata=None))
    assert (mbtiles.format, mbtiles.min_zoom, mbtiles.max_zoom, mbtiles.bounds_deg) == ("png", 2, 4, None)
    assert mbtiles.tile(4, 3, 5) == png(SOUTH_BGR)


def _not_sqlite(path: Path) -> Path:
    path.write_text("this is not a database\n" * 100)
    return path


def _no_tiles_table(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
    db.commit()
    db.close()
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_not_sqlite, "not an MBTiles file"),
        (_no_tiles_table, "not an MBTiles file: no such table: tiles"),
        (lambda p: write_mbtiles(p, {}, {"format": "png"}), "holds no tiles"),
        (lambda p: write_mbtiles(p, {(0, 0, 0): b"\x1f\x8b\x08vector"}, {"format": "pbf"}), "'pbf' format"),
        (lambda p: p, "no such MBTiles file"),
    ],
    ids=["not-sqlite", "no-tiles-table", "empty", "vector", "missing"],
)
def test_a_bad_mbtiles_file_is_an_input_error_naming_it(tmp_path, make, message):
    path = tmp_path / "bad tiles.mbtiles"
    make(path)
    with pytest.raises(InputError, match=message) as raised:
        MBTiles(path)
    assert str(raised.value).startswith(f"{path}: ")


def test_a_tile_folder_is_served_as_file_urls(tmp_path):
    for z, x, y in [(3, 4, 2), (5, 17, 9)]:
        (tmp_path / "tiles" / str(z) / str(x)).mkdir(parents=True, exist_ok=True)
        (tmp_path / "tiles" / str(z) / str(x) / f"{y}.jpg").write_bytes(b"jpeg")
    spec = folder_layer_spec(TileSource.folder(tmp_path / "tiles", attribution="Survey"))
    assert spec.url_template == f"{(tmp_path / 'tiles').as_uri()}/{{z}}/{{x}}/{{y}}.jpg"
    assert (spec.min_zoom, spec.max_zoom, spec.attribution) == (3, 5, "Survey")
    with pytest.raises(InputError, match="no such tile folder"):
        folder_layer_spec(TileSource.folder(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=re.escape("no {z}/{x}/{y}.png")):
        folder_layer_spec(TileSource.folder(tmp_path / "empty"))


def test_sources_say_what_they_are():
    assert TileSource.none().kind is TileKind.NONE
    assert TileSource.online("https://tiles.example/{z}/{x}/{y}.png").label == "https://tiles.example/{z}/{x}/{y}.png"
    assert TileSource.mbtiles("a/b.mbtiles").path == Path("a/b.mbtiles")


# ---- on the map ----------------------------------------------------------------------------


@pytest.fixture
def view(qtbot):
    view = MapView()
    view.resize(900, 700)
    view.show()
    with qtbot.waitSignal(view.ready, timeout=30_000):
        pass
    yield view
    view.close()
    view.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)


def colour_at(view: MapView, x: int, y: int) -> QColor:
    return view.grab().toImage().pixelColor(x, y)


def near(colour: QColor, rgb: tuple[int, int, int], tolerance: int = 6) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour.getRgb()[:3], rgb, strict=True))


def shows(view: MapView, qtbot, x: int, y: int, rgb: tuple[int, int, int], within_s: float = 5.0) -> bool:
    """Whether the pixel at (x, y) takes the colour `rgb` within `within_s`: a loaded tile fades in, and
    on a busy machine it is painted some frames after Leaflet counts it as loaded."""
    try:
        qtbot.waitUntil(lambda: near(colour_at(view, x, y), rgb), timeout=int(within_s * 1000))
    except qtbot.TimeoutError:
        return False
    return True


def bgr_to_rgb(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    return bgr[2], bgr[1], bgr[0]


BACKGROUND_RGB = tuple(int(BACKGROUND_COLOR[i : i + 2], 16) for i in (1, 3, 5))


def show_world(view: MapView, qtbot, loaded: int) -> None:
    """Zoom 1, the whole world 512 px tall in the middle of the 700 px view."""
    view.centre_on(0.0, 0.0, 1)
    qtbot.waitUntil(lambda: view.js("bw.inspect.tiles().loaded") >= loaded, timeout=10_000)
    qtbot.wait(300)


@pytest.mark.gui
def test_mbtiles_are_drawn_north_up(view, mbtiles_file, qtbot, screenshot):
    view.set_tiles(TileSource.mbtiles(mbtiles_file))
    show_world(view, qtbot, loaded=4)
    screenshot(view, "map-mbtiles")
    assert view.js("bw.inspect.tiles().url").startswith("mbtiles://")
    assert shows(view, qtbot, 450, 200, bgr_to_rgb(NORTH_BGR))
    assert shows(view, qtbot, 450, 500, bgr_to_rgb(SOUTH_BGR))
    # Beyond the poles: the plain background.
    assert shows(view, qtbot, 450, 40, BACKGROUND_RGB)
    # The file's attribution, as text.
    assert view.js("document.querySelector('.leaflet-control-attribution').textContent").endswith("Test tiles")

    view.set_tiles(TileSource.none())
    assert view.js("bw.inspect.tiles().url") is None
    qtbot.wait(300)
    assert shows(view, qtbot, 450, 200, BACKGROUND_RGB)


@pytest.mark.gui
def test_a_bad_mbtiles_file_is_refused_and_the_map_keeps_its_tiles(view, mbtiles_file, tmp_path):
    view.set_tiles(TileSource.mbtiles(mbtiles_file))
    bad = _not_sqlite(tmp_path / "notes.mbtiles")
    with pytest.raises(InputError, match="not an MBTiles file") as raised:
        view.set_tiles(TileSource.mbtiles(bad))
    assert str(bad) in str(raised.value)
    assert view.js("bw.inspect.tiles().url").startswith("mbtiles://")


@pytest.mark.gui
def test_a_tile_folder_is_drawn(view, tmp_path, qtbot):
    for (z, x, y), data in zoom1_tiles().items():
        (tmp_path / "tiles" / str(z) / str(x)).mkdir(parents=True, exist_ok=True)
        (tmp_path / "tiles" / str(z) / str(x) / f"{y}.png").write_bytes(data)
    view.set_tiles(TileSource.folder(tmp_path / "tiles"))
    show_world(view, qtbot, loaded=4)
    assert shows(view, qtbot, 450, 200, bgr_to_rgb(NORTH_BGR))
    assert shows(view, qtbot, 450, 500, bgr_to_rgb(SOUTH_BGR))


@pytest.mark.gui
def test_an_unreachable_tile_server_leaves_the_plain_background(view, qtbot):
    # Port 9 (discard) is closed: every tile fails at once.
    view.set_tiles(TileSource.online("http://127.0.0.1:9/{z}/{x}/{y}.png", "Nobody"))
    view.centre_on(0.0, 0.0, 1)
    qtbot.waitUntil(lambda: view.js("bw.inspect.tiles().errors") >= 4, timeout=10_000)
    qtbot.wait(300)
    assert view.js("bw.inspect.tiles().loaded") == 0
    assert shows(view, qtbot, 450, 200, BACKGROUND_RGB)
    assert shows(view, qtbot, 450, 500, BACKGROUND_RGB)
    assert view.page().errors == [] or all("127.0.0.1:9" in e for e in view.page().errors)
