"""The preview map renders with Leaflet from local files, with no network at all."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import folium
import pytest
import shapely

from groundstation.runs.maps import (
    WEB_ASSETS_ENV,
    MapRoute,
    WebAssetsMissing,
    external_assets,
    write_preview_map,
)
from groundstation.runs.style import NO_FLY_DASH, route_color
from missions.site import Role, Site, Zone


def algeciras_site() -> Site:
    """The Port of Algeciras, hand-built so that every kind of zone is present."""
    return Site(
        name="algeciras-port",
        source="test",
        zones=(
            Zone(
                Role.OPERATING_AREA,
                "Algeciras port patrol area",
                shapely.Polygon(
                    [
                        (-5.44, 36.135),
                        (-5.425, 36.137),
                        (-5.418, 36.125),
                        (-5.422, 36.112),
                        (-5.433, 36.108),
                        (-5.442, 36.115),
                        (-5.444, 36.125),
                    ]
                ),
            ),
            Zone(Role.NO_FLY, "Fuel terminal", shapely.Point(-5.43, 36.12), radius_m=150.0),
            Zone(
                Role.NO_FLY,
                "Port authority heliport",
                shapely.box(-5.4385, 36.13, -5.4365, 36.1315),
            ),
            Zone(
                Role.WATCH,
                "Eastern anchorage",
                shapely.Polygon([(-5.426, 36.133), (-5.42, 36.126), (-5.423, 36.12), (-5.429, 36.128)]),
                risk=4,
            ),
            # folium pastes tooltips raw into a JavaScript template literal: this name must not break the page.
            Zone(
                Role.WATCH,
                "Quay `B` <north> ${x}",
                shapely.Polygon([(-5.441, 36.117), (-5.434, 36.111), (-5.431, 36.115), (-5.438, 36.121)]),
                risk=2,
            ),
            Zone(
                Role.WATCH,
                "Ferry ramp",
                shapely.Polygon([(-5.437, 36.126), (-5.434, 36.126), (-5.434, 36.128), (-5.437, 36.128)]),
                risk=5,
            ),
            Zone(Role.LAUNCH, "Port police pad", shapely.Point(-5.438, 36.1245)),
            Zone(
                Role.COASTLINE,
                "Shore",
                shapely.LineString([(-5.443, 36.137), (-5.4445, 36.125), (-5.442, 36.112), (-5.434, 36.106)]),
            ),
        ),
    )


ROUTES = (
    MapRoute("Drone 1", ((36.1245, -5.438), (36.131, -5.427), (36.127, -5.421), (36.122, -5.426))),
    MapRoute("Drone 2", ((36.1245, -5.438), (36.118, -5.438), (36.113, -5.432), (36.111, -5.427))),
)


def linked_assets(page: str) -> list[str]:
    return re.findall(r"<script\b[^>]*\bsrc=\"([^\"]*)\"", page) + re.findall(r"<link\b[^>]*\bhref=\"([^\"]*)\"", page)


def test_links_only_local_leaflet_files_that_exist(tmp_path: Path) -> None:
    out = write_preview_map(algeciras_site(), ROUTES, tmp_path / "maps" / "patrol map.html")

    page = out.read_text(encoding="utf-8")
    links = linked_assets(page)
    assert sorted(unquote(u) for u in links) == [
        "patrol map_files/leaflet/leaflet.css",
        "patrol map_files/leaflet/leaflet.js",
    ]
    assert not [u for u in links if u.startswith(("http://", "https://", "//"))]
    assert external_assets(page) == []
    for url in links:
        assert (out.parent / unquote(url)).is_file()
    assert (out.parent / "patrol map_files" / "leaflet" / "images" / "layers.png").is_file()
    for cdn_only in ("jquery", "bootstrap", "awesome", "fontawesome", "glyphicons"):
        assert cdn_only not in page.lower()


def test_leaves_folium_defaults_alone_for_other_maps(tmp_path: Path) -> None:
    write_preview_map(algeciras_site(), ROUTES, tmp_path / "map.html")

    assert any("cdn.jsdelivr.net/npm/leaflet" in url for _, url in folium.Map.default_js)


def test_optional_tiles_add_a_layer_but_no_remote_script(tmp_path: Path) -> None:
    tiles = "https://tiles.example.org/{z}/{x}/{y}.png"

    page = write_preview_map(algeciras_site(), ROUTES, tmp_path / "map.html", tiles_url=tiles).read_text()

    assert "tiles.example.org/{z}/{x}/{y}.png" in page
    assert external_assets(page) == []


def test_missing_assets_say_how_to_install_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "node_modules"
    empty.mkdir()
    monkeypatch.setenv(WEB_ASSETS_ENV, str(empty))

    with pytest.raises(WebAssetsMissing, match=r"run `make setup`.*npm ci") as error:
        write_preview_map(algeciras_site(), ROUTES, tmp_path / "map.html")

    assert str(empty / "leaflet" / "dist") in str(error.value)
    assert WEB_ASSETS_ENV in str(error.value)
    assert not (tmp_path / "map.html").exists()


def test_asset_folder_can_be_given_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    modules = tmp_path / "elsewhere" / "node_modules"
    shutil.copytree(
        Path(__file__).parents[2] / "groundstation" / "web" / "node_modules" / "leaflet", modules / "leaflet"
    )
    monkeypatch.setenv(WEB_ASSETS_ENV, str(modules))

    out = write_preview_map(algeciras_site(), ROUTES, tmp_path / "map.html")

    assert (tmp_path / "map_files" / "leaflet" / "leaflet.js").read_bytes() == (
        modules / "leaflet" / "dist" / "leaflet.js"
    ).read_bytes()
    assert out.is_file()


def test_each_drone_gets_its_own_colour() -> None:
    colours = [route_color(i) for i in range(20)]

    assert len(set(colours)) == len(colours)


def test_leaflet_draws_the_map_offline_in_chromium(tmp_path: Path, chromium) -> None:
    site = algeciras_site()
    out = write_preview_map(site, ROUTES, tmp_path / "patrol map.html", title="Algeciras patrol")

    dom = chromium("--dump-dom", out.as_uri()).stdout
    screenshot = tmp_path / "map.png"
    chromium(f"--screenshot={screenshot}", "--window-size=1200,900", out.as_uri())
    print(f"map screenshot: {screenshot}")

    assert "leaflet-container" in dom
    paths = re.findall(r"<path\b[^>]*>", dom)
    interactive = [p for p in paths if "leaflet-interactive" in p]
    assert len(interactive) >= len(site.zones) + len(ROUTES)
    for index in range(len(ROUTES)):
        assert sum(f'stroke="{route_color(index)}"' in p for p in interactive) == 2  # the line and its start
    assert sum(f'stroke-dasharray="{NO_FLY_DASH}"' in p for p in interactive) == len(site.no_fly)
    assert "Watch zone, risk 5" in dom
    assert "Drone 2" in dom
    assert screenshot.stat().st_size > 10_000


def test_sorties_of_one_drone_share_a_colour_and_a_legend_row(tmp_path: Path, chromium) -> None:
    site = algeciras_site()
    first = ROUTES[0].points_deg
    sorties = [MapRoute(f"drone {d} sortie {k}", first, group=f"drone {d}") for d in (1, 2) for k in range(1, 7)]
    out = write_preview_map(site, sorties, tmp_path / "sorties.html")
    dom = chromium("--dump-dom", out.as_uri()).stdout
    legend = dom[dom.index("borderwatch-legend") :]
    assert legend.count(">drone 1<") == 1 and legend.count(">drone 2<") == 1
    interactive = [p for p in re.findall(r"<path\b[^>]*>", dom) if "leaflet-interactive" in p]
    # Six sortie lines and one start ring per drone, each drone in its own colour.
    assert sum(f'stroke="{route_color(0)}"' in p for p in interactive) == 7
    assert sum(f'stroke="{route_color(1)}"' in p for p in interactive) == 7
