"""One module per file format, each with ``read_x(path) -> value`` and ``write_x(value, path, ...)``.

:func:`load_site` picks the reader by extension and validates what it read, as every site
to plan over must be; :func:`read_site_unvalidated` only reads (a route file, a recorded run).
"""

from __future__ import annotations

from pathlib import Path

from missions.errors import InputError
from missions.site import Site
from missions.validation import validate_site

SITE_SUFFIXES = (".geojson", ".json", ".kml", ".plan")
# Real sites shipped with the package (package data): the demo's Algeciras and two more.
BUNDLED_SITES = Path(__file__).resolve().parents[1] / "data" / "sites"


def read_site_unvalidated(path: str | Path) -> Site:
    """Read a site file by its extension, without validating it: see :func:`load_site`."""
    source = Path(path)
    suffix = source.suffix.lower()
    if suffix in (".geojson", ".json"):
        from missions.formats.geojson import read_site_geojson

        return read_site_geojson(source)
    if suffix == ".kml":
        from missions.formats.kml import read_site_kml

        return read_site_kml(source)
    if suffix == ".plan":
        from missions.formats.qgc_plan import read_site_plan

        return read_site_plan(source)
    raise InputError(str(source), f"unknown site format {suffix or '(no extension)'!r}: use {', '.join(SITE_SUFFIXES)}")


def load_site(path: str | Path) -> Site:
    """Read and validate a site file (GeoJSON, KML or QGroundControl `.plan`)."""
    if not Path(path).exists():
        raise InputError(str(path), "no such file")
    if Path(path).is_dir():
        raise InputError(str(path), "is a folder, not a site file")
    return validate_site(read_site_unvalidated(path))
