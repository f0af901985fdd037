import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import shapely

from missions.errors import InputError
from missions.formats.geojson import read_site_geojson
from missions.formats.kml import KML_NS, read_site_kml, write_kml
from missions.site import Role, Route, RoutePoint, Site
from sitl.testdata import SITES_DIR

DATA = Path(__file__).parent / "data"
GOOGLE_EARTH = DATA / "google-earth-harbour.kml"
SITE_FILES = sorted(SITES_DIR.glob("*.geojson"))


@pytest.fixture(scope="module")
def harbour() -> Site:
    return read_site_kml(GOOGLE_EARTH)


@pytest.mark.parametrize(
    ("name", "role", "geom_type", "radius_m", "risk"),
    [
        ("Harbour basin", Role.OPERATING_AREA, "Polygon", None, None),  # largest role-less polygon
        ("Ferry terminal", Role.WATCH, "Polygon", None, 1),  # other role-less polygon
        ("Police pad", Role.LAUNCH, "Point", None, None),  # role-less point
        ("Heliport and tank farm (part 1)", Role.NO_FLY, "Polygon", None, None),  # folder "No-fly zones"
        ("Heliport and tank farm (part 2)", Role.NO_FLY, "Polygon", None, None),
        ("Fuel terminal", Role.NO_FLY, "Point", 150.0, None),  # SchemaData radius_m
        ("Eastern anchorage", Role.WATCH, "Polygon", None, 4),  # ExtendedData role beats folder "My places"
        ("Shore", Role.COASTLINE, "LineString", None, None),  # folder "Coastline"
    ],
)
def test_google_earth_placemarks_get_their_roles(harbour, name, role, geom_type, radius_m, risk):
    zone = next(z for z in harbour.zones if z.name == name)
    assert (zone.role, zone.shape_deg.geom_type, zone.radius_m, zone.risk) == (role, geom_type, radius_m, risk)


def test_google_earth_file_as_a_whole(harbour):
    assert harbour.name == "Harbour survey"
    assert len(harbour.zones) == 8
    basin = next(z for z in harbour.zones if z.name == "Harbour basin")
    assert len(basin.shape_deg.interiors) == 1 and not basin.shape_deg.has_z
    assert harbour.route == (RoutePoint(36.13, -5.44, 0.0), RoutePoint(36.128, -5.438, 0.0))
    for placemark in ("Harbour basin", "Ferry terminal", "Police pad", "Drive to the pad", "Camera track"):
        assert any(placemark in w for w in harbour.warnings), placemark
    assert not any("Eastern anchorage" in w or "Shore" in w for w in harbour.warnings)
    assert harbour.area_m2 > 1e6


@pytest.mark.parametrize(
    ("folder", "role"),
    [
        ("No-fly zones", Role.NO_FLY),
        ("Keep out", Role.NO_FLY),
        ("Exclusion zones", Role.NO_FLY),
        ("Watch zones", Role.WATCH),
        ("WATCH", Role.WATCH),
        ("Operating areas", Role.OPERATING_AREA),
        ("Keep-in", Role.OPERATING_AREA),
    ],
)
def test_folder_names_give_polygon_roles(folder, role, tmp_path):
    path = tmp_path / "folder.kml"
    path.write_text(
        f'<kml xmlns="{KML_NS}"><Document><Folder><name>{folder}</name><Placemark><name>Z</name>'
        "<Polygon><outerBoundaryIs><LinearRing><coordinates>1,1 2,1 2,2 1,1</coordinates></LinearRing>"
        "</outerBoundaryIs></Polygon></Placemark></Folder></Document></kml>"
    )
    assert read_site_kml(path).zones[0].role is role


@pytest.mark.parametrize(("folder", "role"), [("Launch points", Role.LAUNCH), ("Rally points", Role.LAUNCH)])
def test_folder_names_give_point_roles(folder, role, tmp_path):
    path = tmp_path / "folder.kml"
    path.write_text(
        f"<kml><Folder><name>{folder}</name><Placemark><name>P</name>"
        "<Point><coordinates>1,1</coordinates></Point></Placemark></Folder></kml>"
    )
    site = read_site_kml(path)
    assert site.zones[0].role is role and site.warnings == ()


@pytest.mark.parametrize("path", SITE_FILES, ids=lambda p: p.name)
def test_site_round_trip_keeps_every_zone(path, tmp_path):
    site = read_site_geojson(path)
    write_kml(site, tmp_path / "site.kml")
    back = read_site_kml(tmp_path / "site.kml")
    assert sorted(back.zones, key=lambda z: z.name) == sorted(site.zones, key=lambda z: z.name)
    assert back.name == site.name and back.warnings == ()


def test_routes_are_written_and_the_first_reads_back_as_the_route(tmp_path):
    site = read_site_geojson(SITE_FILES[0])
    site = Site(site.name, site.source, site.zones, route=(RoutePoint(36.12, -5.43, 30.0), RoutePoint(36.13, -5.43)))
    patrol = [(-5.43, 36.12, 50.0), (-5.435, 36.125, 55.5)]  # lon, lat, alt like KML
    drone = Route("Drone 1", tuple(RoutePoint(lat, lon, alt) for lon, lat, alt in patrol))
    write_kml(site, tmp_path / "routes.kml", [drone])
    back = read_site_kml(tmp_path / "routes.kml")
    assert back.route == (RoutePoint(36.12, -5.43, 30.0), RoutePoint(36.13, -5.43, 0.0))
    assert any("'Drone 1'" in w for w in back.warnings)

    write_kml(Site(site.name, site.source, site.zones), tmp_path / "only.kml", [drone])
    assert read_site_kml(tmp_path / "only.kml").route == tuple(RoutePoint(lat, lon, alt) for lon, lat, alt in patrol)


def test_written_kml_is_styled_and_google_earth_can_draw_circles(tmp_path):
    site = read_site_geojson(next(p for p in SITE_FILES if p.name == "algeciras-port.geojson"))
    write_kml(site, tmp_path / "styled.kml")
    root = ET.parse(tmp_path / "styled.kml").getroot()
    ns = {"k": KML_NS}
    assert root.find("k:Document/k:Style[@id='no-fly']/k:LineStyle/k:color", ns).text == "ff0000ff"
    fuel = next(
        p for p in root.iterfind(".//k:Placemark", ns) if p.findtext("k:name", namespaces=ns) == "Fuel terminal"
    )
    assert fuel.find("k:MultiGeometry/k:Point", ns) is not None
    ring = fuel.findtext("k:MultiGeometry/k:LineString/k:coordinates", namespaces=ns).split()
    lonlat = [tuple(map(float, c.split(","))) for c in ring]
    assert lonlat[0] == lonlat[-1] and len(lonlat) > 32
    centre = site.frame.to_local(shapely.Point(-5.43, 36.12))
    radii = [site.frame.to_local(shapely.Point(c)).distance(centre) for c in lonlat]
    assert min(radii) == pytest.approx(150.0, abs=0.5) and max(radii) == pytest.approx(150.0, abs=0.5)


def kml_doc(placemark: str) -> str:
    return f'<?xml version="1.0"?>\n<kml xmlns="{KML_NS}"><Document>\n{placemark}\n</Document></kml>'


def polygon(coords: str) -> str:
    ring = f"<LinearRing><coordinates>{coords}</coordinates></LinearRing>"
    return f"<Polygon><outerBoundaryIs>{ring}</outerBoundaryIs></Polygon>"


BAD_KML = [
    ("<kml><Document><Placemark>", "line 1", None),
    ('<?xml version="1.0"?>\n<kml>\n<Document><name>x</Document></kml>', "line 3", None),
    ("", "not valid XML", None),
    ("<gpx></gpx>", "not a KML document", None),
    (kml_doc("<Folder><name>Empty</name></Folder>"), "no Placemark", None),
    (kml_doc("<Placemark><name>Pier</name>" + polygon("1,1 2,2 1,1") + "</Placemark>"), "at least 3", "'Pier'"),
    (kml_doc("<Placemark><name>Pier</name>" + polygon("1,1 2,x 3,1 1,1") + "</Placemark>"), "'2,x'", "'Pier'"),
    (kml_doc("<Placemark><name>Buoy</name><Point><coordinates>1</coordinates></Point></Placemark>"), "lon,lat", "Buoy"),
    (
        kml_doc("<Placemark><name>Buoy</name><Point><coordinates>36.1,-95.4</coordinates></Point></Placemark>"),
        "probably swapped",
        "'Buoy'",
    ),
    (
        kml_doc("<Placemark><name>Buoy</name><Point><coordinates>-185.4,36.1</coordinates></Point></Placemark>"),
        "out of range",
        "'Buoy'",
    ),
    (
        kml_doc(
            '<Placemark><name>Dock</name><ExtendedData><Data name="role"><value>parking</value></Data>'
            "</ExtendedData>" + polygon("1,1 2,1 2,2 1,1") + "</Placemark>"
        ),
        "unknown role 'parking'",
        "'Dock'",
    ),
    (
        kml_doc(
            '<Placemark><name>Dock</name><ExtendedData><Data name="risk"><value>high</value></Data>'
            "</ExtendedData>" + polygon("1,1 2,1 2,2 1,1") + "</Placemark>"
        ),
        "risk must be a number",
        "'Dock'",
    ),
    (
        kml_doc(
            "<Folder><name>No-fly zones</name><Placemark><name>Mast</name>"
            "<Point><coordinates>1,1</coordinates></Point></Placemark></Folder>"
        ),
        "needs radius_m",
        "'Mast'",
    ),
    (
        kml_doc("<Placemark><name>Hole</name><Polygon><innerBoundaryIs/></Polygon></Placemark>"),
        "outerBoundaryIs",
        "'Hole'",
    ),
]


@pytest.mark.parametrize(("text", "expected", "feature"), BAD_KML)
def test_bad_kml_is_refused_naming_file_and_placemark(text, expected, feature, tmp_path):
    path = tmp_path / "bad.kml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        read_site_kml(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert expected in message
    if feature:
        assert f"placemark {feature}" in message or feature in message


def test_coordinates_accept_any_whitespace_and_spaces_after_commas(tmp_path):
    path = tmp_path / "spaces.kml"
    path.write_text(
        kml_doc(
            "<Placemark><name>Area</name>"
            + polygon("\n\t1.0, 1.0,0\t2.0,1.0\r\n  2.0,2.0,  5   1.0,1.0\n")
            + "</Placemark>"
        )
    )
    area = read_site_kml(path).zones[0]
    assert area.role is Role.OPERATING_AREA
    assert list(area.shape_deg.exterior.coords) == [(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 1.0)]
