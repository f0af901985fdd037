"""Reading sites: every shared file loads, and every kind of bad input is named precisely."""

from __future__ import annotations

import json

import pytest
import shapely

from missions.errors import InputError
from missions.formats import load_site
from missions.formats.geojson import read_site_geojson, write_geojson
from missions.site import Role
from sitl.testdata import QGC_DIR, SITES_DIR

SITES = sorted(SITES_DIR.glob("*.geojson"))
PLANS = sorted(QGC_DIR.glob("*.plan"))


def test_shared_data_is_there():
    assert len(SITES) == 3 and len(PLANS) == 3


@pytest.mark.parametrize("path", SITES, ids=lambda p: p.stem)
def test_every_shared_site_loads_with_its_roles(path):
    site = load_site(path)
    assert len(site.operating_areas) == 1
    assert site.launch and site.no_fly and site.watch
    assert site.max_altitude_m == 120
    assert all(1 <= z.risk <= 5 for z in site.watch)
    assert site.keep_in_m.is_valid and site.keep_in_m.area > 1e6
    assert not site.warnings


def test_site_areas_match_the_shared_readme():
    areas_km2 = {p.stem: load_site(p).keep_in_m.area / 1e6 for p in SITES}
    assert areas_km2["algeciras-port"] == pytest.approx(5.5, abs=0.1)
    assert areas_km2["tarifa-coast"] == pytest.approx(14.6, abs=0.1)
    assert areas_km2["kilindini-mombasa"] == pytest.approx(24.7, abs=0.1)


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.stem)
def test_every_shared_qgc_plan_loads_as_a_site(path):
    site = load_site(path)
    assert site.launch, "rally points or the planned home become launch points"
    assert site.route or site.operating_areas


def test_circles_keep_their_radius_and_enclose_the_true_circle():
    site = load_site(SITES_DIR / "algeciras-port.geojson")
    fuel = next(z for z in site.no_fly if z.is_circle)
    assert fuel.radius_m == 150
    polygon = site.local(fuel)
    centre = site.frame.to_local(fuel.shape_deg)
    assert polygon.covers(centre.buffer(149.99, quad_segs=64))
    assert polygon.area < centre.buffer(152, quad_segs=64).area


def test_site_round_trips_through_geojson(tmp_path):
    site = load_site(SITES_DIR / "tarifa-coast.geojson")
    again = load_site(write_geojson(site, tmp_path / "again.geojson"))
    assert [(z.role, z.name, z.risk, z.radius_m) for z in again.zones] == [
        (z.role, z.name, z.risk, z.radius_m) for z in site.zones
    ]
    for a, b in zip(site.zones, again.zones, strict=True):
        assert a.shape_deg.equals_exact(b.shape_deg, 1e-12)


def test_plain_geojson_without_roles_gets_clear_defaults(tmp_path):
    big = [[-5.44, 36.13], [-5.42, 36.13], [-5.42, 36.11], [-5.44, 36.11], [-5.44, 36.13]]
    small = [[-5.435, 36.125], [-5.43, 36.125], [-5.43, 36.12], [-5.435, 36.125]]
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "zone A"},
                "geometry": {"type": "Polygon", "coordinates": [small]},
            },
            {"type": "Feature", "properties": {"name": "port"}, "geometry": {"type": "Polygon", "coordinates": [big]}},
            {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [-5.43, 36.115]}},
        ],
    }
    path = tmp_path / "plain.geojson"
    path.write_text(json.dumps(doc))
    site = load_site(path)
    assert site.operating_areas[0].name == "port"
    assert site.watch[0].name == "zone A" and site.watch[0].risk == 1
    assert site.launch[0].role is Role.LAUNCH
    assert any("'port' has no role; taken as the operating area" in w for w in site.warnings)
    assert any("plain.geojson" in w for w in site.warnings)


# ---- bad input ----------------------------------------------------------------------------

KEEP_IN = [[-5.44, 36.13], [-5.42, 36.13], [-5.42, 36.11], [-5.44, 36.11], [-5.44, 36.13]]
LAUNCH = {"type": "Point", "coordinates": [-5.43, 36.115]}


def _feature(role, geometry, **props):
    return {"type": "Feature", "properties": {"role": role, **props}, "geometry": geometry}


def _site(*extra, keep_in=KEEP_IN, launch=LAUNCH, **keep_in_props):
    return {
        "type": "FeatureCollection",
        "features": [
            _feature("operating-area", {"type": "Polygon", "coordinates": [keep_in]}, name="Port", **keep_in_props),
            _feature("launch", launch, name="Pad"),
            *extra,
        ],
    }


BOWTIE = [[-5.435, 36.125], [-5.425, 36.115], [-5.425, 36.125], [-5.435, 36.115], [-5.435, 36.125]]

BAD_SITES = [
    pytest.param("", "the file is empty", id="empty"),
    pytest.param("{ not json", "not valid JSON at line 1, column 3", id="malformed-json"),
    pytest.param(json.dumps([1, 2]), "not GeoJSON", id="not-geojson"),
    pytest.param(json.dumps({"type": "FeatureCollection", "features": []}), "no features", id="no-features"),
    pytest.param(
        _site(_feature("watch", {"type": "Polygon", "coordinates": [BOWTIE]}, name="Bow", risk=3)),
        "watch 'Bow': self-intersecting polygon",
        id="bowtie",
    ),
    pytest.param(
        _site(
            _feature("no-fly", {"type": "Polygon", "coordinates": [[[-5.43, 36.12], [-5.43, 36.12], [-5.43, 36.12]]]})
        ),
        "degenerate polygon",
        id="degenerate-ring",
    ),
    pytest.param(
        _site(
            _feature(
                "no-fly",
                {
                    "type": "Polygon",
                    "coordinates": [[[-5.43, 36.12], [-5.429, 36.12], [-5.428, 36.12], [-5.43, 36.12]]],
                },
                name="Flat",
            )
        ),
        "no-fly 'Flat': degenerate polygon",
        id="zero-area",
    ),
    pytest.param(
        _site(launch={"type": "Point", "coordinates": [-5.40, 36.115]}),
        "launch 'Pad': launch point is outside the operating area",
        id="launch-outside",
    ),
    pytest.param(
        _site(_feature("no-fly", {"type": "Point", "coordinates": [-5.4302, 36.1151]}, name="Tank", radius_m=100)),
        "launch 'Pad': launch point is inside no-fly zone 'Tank'",
        id="launch-in-keep-out",
    ),
    pytest.param(
        _site(launch={"type": "Point", "coordinates": [-5.43, 96.115]}),
        "launch 'Pad': latitude 96.115 is out of range",
        id="lat-out-of-range",
    ),
    pytest.param(
        _site(launch={"type": "Point", "coordinates": [-5.43, 196.115]}),
        "out of range",
        id="lat-lon-out-of-range",
    ),
    pytest.param(
        _site(launch={"type": "Point", "coordinates": [36.115, -5.43]}),
        "launch 'Pad': coordinates are probably swapped",
        id="swapped",
    ),
    pytest.param(
        _site(_feature("watch", {"type": "Polygon", "coordinates": [KEEP_IN]}, name="W", risk=7)),
        "risk must be a whole number from 1 to 5, got 7",
        id="risk-out-of-range",
    ),
    pytest.param(
        _site(_feature("watch", {"type": "Polygon", "coordinates": [KEEP_IN]}, name="W")),
        "a watch zone needs a 'risk'",
        id="risk-missing",
    ),
    pytest.param(
        _site(_feature("no-fly", {"type": "Point", "coordinates": [-5.425, 36.125]}, name="C")),
        "a no-fly Point needs 'radius_m'",
        id="circle-without-radius",
    ),
    pytest.param(
        _site(_feature("danger", {"type": "Point", "coordinates": [-5.425, 36.125]}, name="X")),
        "unknown role 'danger'",
        id="unknown-role",
    ),
    pytest.param(
        _site(_feature("no-fly", {"type": "Polygon", "coordinates": [KEEP_IN]}, name="All")),
        "the no-fly zones cover the whole operating area",
        id="nothing-left",
    ),
    pytest.param(
        _site(_feature("launch", {"type": "Point", "coordinates": ["a", 36.1]}, name="Bad")),
        "a position must hold numbers",
        id="non-numeric",
    ),
]


@pytest.mark.parametrize(("content", "message"), BAD_SITES)
def test_bad_site_is_refused_naming_file_and_feature(tmp_path, content, message):
    path = tmp_path / "bad-site.geojson"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(InputError) as caught:
        load_site(path)
    text = str(caught.value)
    assert str(path) in text
    assert message in text


def test_an_unambiguous_self_intersection_is_repaired_with_a_warning(tmp_path):
    # A spike that folds back along an edge: the polygon is clearly the square.
    spiky = [
        [-5.44, 36.13],
        [-5.42, 36.13],
        [-5.42, 36.11],
        [-5.43, 36.11],
        [-5.43, 36.105],
        [-5.43, 36.11],
        [-5.44, 36.11],
        [-5.44, 36.13],
    ]
    path = tmp_path / "spike.geojson"
    path.write_text(json.dumps(_site(keep_in=spiky)))
    site = load_site(path)
    assert site.keep_in_m.is_valid
    assert shapely.Polygon(site.operating_areas[0].shape_deg).is_valid
    assert any("repaired an invalid polygon" in w and "spike.geojson" in w and "'Port'" in w for w in site.warnings)


def test_site_altitude_limit_is_read_and_defaults_to_120(tmp_path):
    path = tmp_path / "limit.geojson"
    path.write_text(json.dumps(_site(max_altitude_m=90)))
    assert load_site(path).max_altitude_m == 90
    path.write_text(json.dumps(_site()))
    assert load_site(path).max_altitude_m == 120


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_site(tmp_path / "nope.geojson")
    odd = tmp_path / "site.shp"
    odd.write_text("x")
    with pytest.raises(InputError, match=r"unknown site format '\.shp'"):
        load_site(odd)


def test_reader_alone_does_not_validate(tmp_path):
    path = tmp_path / "far.geojson"
    path.write_text(json.dumps(_site(launch={"type": "Point", "coordinates": [-5.40, 36.115]})))
    assert read_site_geojson(path).launch
