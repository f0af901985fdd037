"""One zone from one GeoJSON Feature: the rules a site file is read by, for shapes drawn by hand."""

from __future__ import annotations

import pytest

from missions.errors import InputError
from missions.formats.geojson import zone_from_feature
from missions.site import Role

SQUARE = [[-5.44, 36.13], [-5.42, 36.13], [-5.42, 36.11], [-5.44, 36.11], [-5.44, 36.13]]


def feature(geometry: dict, **props) -> dict:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def test_a_watch_polygon_and_a_no_fly_circle():
    watch = zone_from_feature("drawn", feature({"type": "Polygon", "coordinates": [SQUARE]}, role="watch", risk=4))
    assert (watch.role, watch.risk, watch.shape_deg.geom_type) == (Role.WATCH, 4, "Polygon")
    circle = zone_from_feature(
        "drawn", feature({"type": "Point", "coordinates": [-5.43, 36.12]}, role="no-fly", name="Tank", radius_m=150)
    )
    assert (circle.role, circle.name, circle.radius_m) == (Role.NO_FLY, "Tank", 150.0)


@pytest.mark.parametrize(
    ("geometry", "props", "message"),
    [
        ({"type": "Polygon", "coordinates": [SQUARE]}, {"role": "watch"}, "needs a 'risk'"),
        ({"type": "Polygon", "coordinates": [SQUARE]}, {"role": "launch"}, "a launch must be a Point"),
        ({"type": "Point", "coordinates": [-5.43, 36.12]}, {"role": "no-fly"}, "needs 'radius_m'"),
        ({"type": "Polygon", "coordinates": [SQUARE]}, {}, "needs properties with a 'role'"),
        ({"type": "Polygon", "coordinates": [SQUARE[:2]]}, {"role": "no-fly"}, "3 distinct points"),
    ],
)
def test_a_feature_that_is_no_zone_is_refused_naming_it(geometry, props, message):
    with pytest.raises(InputError, match=message) as caught:
        zone_from_feature("drawn", feature(geometry, **props), "new zone")
    assert str(caught.value).startswith("drawn: new zone: ")
