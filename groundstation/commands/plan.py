"""`borderwatch plan`: a site in, patrol plans, maps and KPIs out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from groundstation.commands.progress import Progress
from missions.errors import InputError, RequestError
from missions.formats import load_site, read_site_unvalidated
from missions.formats.export import export_patrol, sortie_label
from missions.planners.camera import Camera
from missions.planners.kpi import compute_kpis, format_kpis
from missions.planners.output import sortie_plans
from missions.planners.patrol import Along, PatrolRequest, Pattern, plan_patrol

_CAMERA = Camera()
# The request fields that the planner's messages name, as the options that set them.
_OPTIONS = {
    "altitude_m": "--altitude",
    "spacing_m": "--spacing",
    "drones": "--drones",
    "speed_m_s": "--speed",
    "endurance_min": "--endurance",
    "reserve_pct": "--reserve",
    "margin_m": "--margin",
    "standoff_m": "--standoff",
}


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "plan",
        help="plan a patrol over a site and write .plan, GeoJSON, KML, a map and KPIs",
        description="Plan a patrol over a site (GeoJSON, KML or QGroundControl .plan).",
    )
    p.add_argument("site", metavar="SITE", help="site file: .geojson, .kml or .plan")
    p.add_argument("--pattern", choices=[x.value for x in Pattern], default=Pattern.COVERAGE.value)
    p.add_argument("--altitude", type=float, default=60.0, metavar="M", help="flight altitude above home (60)")
    spacing = p.add_argument_group("lane spacing (coverage): --spacing, or the camera it derives from")
    spacing.add_argument("--spacing", type=float, metavar="M", help="lane spacing in metres")
    spacing.add_argument("--sensor-width", type=float, metavar="MM", default=_CAMERA.sensor_width_mm)
    spacing.add_argument("--focal-length", type=float, metavar="MM", default=_CAMERA.focal_length_mm)
    spacing.add_argument("--image-width", type=int, metavar="PX", default=_CAMERA.image_width_px)
    spacing.add_argument("--side-overlap", type=float, metavar="PCT", default=100 * _CAMERA.side_overlap)
    p.add_argument("--drones", type=int, default=1, metavar="N", help="number of drones (1)")
    p.add_argument("--speed", type=float, default=10.0, metavar="M/S", help="cruise speed (10)")
    p.add_argument("--endurance", type=float, metavar="MIN", help="flight time of one battery")
    p.add_argument("--reserve", type=float, default=20.0, metavar="PCT", help="battery kept in reserve (20)")
    p.add_argument("--margin", type=float, default=10.0, metavar="M", help="distance kept from every fence (10)")
    p.add_argument("--standoff", type=float, metavar="M", help="perimeter inset / coast offset (half a footprint)")
    p.add_argument("--along", choices=[x.value for x in Along], help="perimeter: boundary or coast")
    p.add_argument("--route", metavar="FILE", help="loop: a GeoJSON LineString or a .plan whose mission is the route")
    p.add_argument("-o", "--output", metavar="OUT.plan", help="QGroundControl plan(s): OUT.plan or OUT-1.plan …")
    p.add_argument("--geojson", metavar="OUT", help="site and routes as GeoJSON")
    p.add_argument("--kml", metavar="OUT", help="site and routes as KML")
    p.add_argument("--map", metavar="OUT.html", help="preview map (works offline)")
    p.add_argument("--kpi", metavar="OUT.json", help="KPIs as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print no KPI summary")
    p.set_defaults(run=run)


def _request(args: argparse.Namespace) -> PatrolRequest:
    try:
        camera = Camera(args.sensor_width, args.focal_length, args.image_width, args.side_overlap / 100.0)
    except ValueError as exc:
        raise InputError("camera options", str(exc)) from None
    route = route_source = None
    if args.route:
        route = read_site_unvalidated(args.route).route
        route_source = args.route
        if not route:
            raise InputError(args.route, "holds no route: expected a LineString or a .plan mission")
    return PatrolRequest(
        pattern=Pattern(args.pattern),
        altitude_m=args.altitude,
        spacing_m=args.spacing,
        camera=camera,
        drones=args.drones,
        speed_m_s=args.speed,
        endurance_min=args.endurance,
        reserve_pct=args.reserve,
        margin_m=args.margin,
        standoff_m=args.standoff,
        along=Along(args.along) if args.along else None,
        route=route,
        route_source=route_source,
    )


def run(args: argparse.Namespace) -> int:
    site = load_site(args.site)
    for warning in site.warnings:
        print(f"borderwatch: warning: {warning}", file=sys.stderr)
    request = _request(args)
    progress = Progress(f"planning {request.pattern.value} over {site.name}")
    try:
        patrol = plan_patrol(site, request, progress=progress)
    except RequestError as exc:
        option = _OPTIONS.get(exc.parameter)
        if option is None:
            raise
        raise RequestError(exc.source, exc.parameter, option, exc.complaint) from None
    progress.done()
    for warning in patrol.warnings:
        print(f"borderwatch: warning: {warning}", file=sys.stderr)
    planned = sortie_plans(patrol)
    kpis = compute_kpis(patrol)
    written = export_patrol(site, planned, request.drones, plan=args.output, geojson=args.geojson, kml=args.kml)
    if args.map:
        from groundstation.runs.maps import MapRoute, write_preview_map

        map_routes = [
            MapRoute(
                sortie_label(p, request.drones),
                tuple((lat, lon) for lon, lat, _alt in p.route_deg),
                group=f"drone {p.drone}",
            )
            for p in planned
        ]
        written.append(write_preview_map(site, map_routes, args.map))
    if args.kpi:
        path = Path(args.kpi)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(kpis.to_dict(), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    if not args.quiet:
        print(format_kpis(kpis))
        for path in written:
            print(f"wrote {path}")
    return 0
