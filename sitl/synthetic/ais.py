"""The synthetic world's vessels on AIS: position and static reports as NMEA, some dark, some lying.

An :class:`AisBroadcaster` turns the vessels of a :class:`~sitl.synthetic.world.World` into the
AIS traffic a shore receiver would hear: class A position reports (type 1) and voyage data
(type 5), class B position reports (type 18) and static data (type 24, parts A and B), as
``!AIVDM`` sentences encoded with pyais, at the reporting intervals of ITU-R M.1371 table 1:

* class A: every 10 s at 0–14 kn, 6 s at 14–23 kn, 2 s above 23 kn, 3 min at anchor (below
  0.5 kn, navigational status 1). The faster rates the table asks of a vessel changing course
  are not modelled: the world's vessels only turn at the ends of their paths.
* class B (carrier sense): every 30 s, 3 min below 2 kn.
* static and voyage data: every 6 min, both classes.

Each vessel starts at a random phase within its interval, so reports interleave as they do on
the air. Position, speed over ground and course come from the world's own motion of the
vessel (its pose differentiated over a second), true heading from its pose; so a report is
what that vessel's GPS would have said at the instant it is stamped with.

An :class:`AisScenario` says who does not tell the truth. Vessels are named by their index
among the world's vessels (``[o for o in world.objects if o.object_class is VESSEL]``), so
a scenario applies to every world made with the same site, seed and density. A scenario file
is JSON::

    {
      "seed": 7,                                   # optional (0): the vessels' report phases
      "vessels": [                                 # optional: vessels not listed report normally
        {"index": 0, "role": "dark"},              # sends nothing at all
        {"index": 2, "role": "spoof", "offset_m": [1500, -200]},   # reports itself 1.5 km east, 200 m south
        {"index": 3, "role": "spoof", "place_deg": [36.10, -5.40]},# reports itself moored there (lat, lon)
        {"index": 4, "class": "B"}                 # a normal vessel with a class B transponder
      ]
    }

``role`` is ``normal`` (the default), ``dark`` or ``spoof`` (which needs exactly one of
``offset_m``, east and north metres in the site's frame, or ``place_deg``, latitude and
longitude); ``class`` is ``A`` or ``B`` (default: B for small craft — ribs and fast boats —
A for the rest). Every vessel has a stable identity (:func:`identity`): an MMSI with Spain's
MID 224 (224070100 + index), a name, a call sign, a ship type and its length and beam.

:func:`udp_sender` sends the sentences to a UDP address, one datagram per AIS message, as
AIS-catcher and most AIS receivers forward them.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pyais

from missions.errors import InputError, UserError
from missions.geo import LocalFrame
from sitl.synthetic.world import World, WorldObject
from vision.ais.model import AisClass
from vision.detections import ObjectClass

KNOTS_PER_M_S = 3600.0 / 1852.0
MMSI_BASE = 224_070_100  # MID 224: Spain
STATIC_EVERY_S = 360.0
ANCHORED_BELOW_KN = 0.5
_MOTION_DT_S = 1.0

_NAMES = (
    "ESTRELLA DEL SUR",
    "VIRGEN DEL CARMEN",
    "NUEVO AMANECER",
    "MAR DE ALBORAN",
    "HERMANOS GARCIA",
    "PUNTA CARNERO",
    "ISLA VERDE",
    "LA LINEA",
    "CALA ARENAS",
    "ROSA DE LOS VIENTOS",
    "TARIFA BLUE",
    "SANTA MARIA",
    "BAHIA TRES",
    "PENON EXPRESS",  # AIS text is 6-bit ASCII: no Ñ
    "MIGUEL Y ANA",
    "CABO TRAFALGAR",
)
_SHIP_TYPES = {"rib": 37, "fast boat": 37, "fishing boat": 30, "patrol boat": 55, "coaster": 70, "container ship": 71}
_CLASS_B_KINDS = frozenset({"rib", "fast boat"})


class Role(enum.Enum):
    NORMAL = "normal"
    DARK = "dark"
    SPOOF = "spoof"


@dataclass(frozen=True)
class VesselAis:
    """What one vessel's transponder does. A spoofer has an offset (east, north metres) or a fixed false place."""

    role: Role = Role.NORMAL
    ais_class: AisClass | None = None  # None: by the vessel's kind
    offset_m: tuple[float, float] | None = None
    place_deg: tuple[float, float] | None = None  # lat, lon

    def to_json_dict(self) -> dict:
        out: dict = {"role": self.role.value}
        if self.ais_class is not None:
            out["class"] = self.ais_class.value
        if self.offset_m is not None:
            out["offset_m"] = list(self.offset_m)
        if self.place_deg is not None:
            out["place_deg"] = list(self.place_deg)
        return out


@dataclass(frozen=True)
class AisScenario:
    """Which vessels (by index among the world's vessels) are dark, spoof, or carry which class."""

    vessels: Mapping[int, VesselAis] = field(default_factory=dict)
    seed: int = 0
    source: str = field(default="<scenario>", compare=False)

    def of(self, index: int) -> VesselAis:
        return self.vessels.get(index, VesselAis())

    @classmethod
    def random(cls, world: World, seed: int = 0, dark: int = 1, spoof: int = 1) -> AisScenario:
        """`dark` vessels silent and `spoof` vessels 0.5–2 km off where they are, chosen at random."""
        vessels = world_vessels(world)
        if dark + spoof > len(vessels):
            raise UserError(f"{dark} dark and {spoof} spoofing vessels: the world has only {len(vessels)} vessels")
        rng = np.random.default_rng(seed)
        order = [int(i) for i in rng.permutation(len(vessels))]
        out: dict[int, VesselAis] = {}
        for n, index in enumerate(order):
            ais_class = default_class(vessels[index])
            if n < dark:
                out[index] = VesselAis(Role.DARK, ais_class)
            elif n < dark + spoof:
                angle, distance = rng.uniform(0, 2 * math.pi), rng.uniform(500.0, 2000.0)
                offset = (round(distance * math.sin(angle), 1), round(distance * math.cos(angle), 1))
                out[index] = VesselAis(Role.SPOOF, ais_class, offset_m=offset)
            else:
                out[index] = VesselAis(Role.NORMAL, ais_class)
        return cls(dict(sorted(out.items())), seed)

    @classmethod
    def load(cls, path: str | Path) -> AisScenario:
        source = str(path)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(source, f"cannot read the AIS scenario: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise InputError(source, f"not JSON: {exc}") from None
        return cls.from_json_dict(data, source)

    @classmethod
    def from_json_dict(cls, data: object, source: str = "<scenario>") -> AisScenario:
        if not isinstance(data, dict):
            raise InputError(source, "an AIS scenario is a JSON object with a 'vessels' list")
        seed = data.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InputError(source, f"must be an integer, not {seed!r}", "seed")
        entries = data.get("vessels", [])
        if not isinstance(entries, list):
            raise InputError(source, "must be a list of vessels", "vessels")
        vessels: dict[int, VesselAis] = {}
        for k, entry in enumerate(entries):
            index, vessel = _vessel_from_json(entry, source, f"vessels[{k}]")
            if index in vessels:
                raise InputError(source, f"vessel {index} is listed twice", f"vessels[{k}].index")
            vessels[index] = vessel
        return cls(vessels, seed, source)

    def to_json_dict(self) -> dict:
        return {"seed": self.seed, "vessels": [{"index": i, **v.to_json_dict()} for i, v in self.vessels.items()]}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json_dict(), indent=2) + "\n", encoding="utf-8")


def _vessel_from_json(entry: object, source: str, where: str) -> tuple[int, VesselAis]:
    if not isinstance(entry, dict):
        raise InputError(source, "must be an object with an 'index'", where)
    unknown = set(entry) - {"index", "role", "class", "offset_m", "place_deg"}
    if unknown:
        raise InputError(source, f"unknown field {sorted(unknown)[0]!r}", where)
    index = entry.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise InputError(source, f"must be a vessel index (0, 1, …), not {index!r}", f"{where}.index")
    try:
        role = Role(entry.get("role", "normal"))
    except ValueError:
        raise InputError(source, f"must be normal, dark or spoof, not {entry['role']!r}", f"{where}.role") from None
    ais_class = None
    if "class" in entry:
        try:
            ais_class = AisClass(entry["class"])
        except ValueError:
            raise InputError(source, f"must be A or B, not {entry['class']!r}", f"{where}.class") from None
    offset = _pair(entry, "offset_m", source, where)
    place = _pair(entry, "place_deg", source, where)
    if role is Role.SPOOF and (offset is None) == (place is None):
        raise InputError(
            source, "a spoofing vessel needs one of offset_m [east, north] or place_deg [lat, lon]", f"{where}.role"
        )
    if role is not Role.SPOOF and (offset is not None or place is not None):
        field_name = "offset_m" if offset is not None else "place_deg"
        raise InputError(
            source, f"only a spoofing vessel (role: spoof) has one, not a {role.value} one", f"{where}.{field_name}"
        )
    if place is not None and not (-90 <= place[0] <= 90 and -180 <= place[1] <= 180):
        raise InputError(source, f"must be [lat, lon] in degrees, not {list(place)}", f"{where}.place_deg")
    return index, VesselAis(role, ais_class, offset, place)


def _pair(entry: dict, key: str, source: str, where: str) -> tuple[float, float] | None:
    value = entry.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        raise InputError(source, f"must be two numbers, not {value!r}", f"{where}.{key}")
    return float(value[0]), float(value[1])


@dataclass(frozen=True)
class AisIdentity:
    mmsi: int
    name: str
    callsign: str
    ship_type: int
    length_m: float
    beam_m: float


def world_vessels(world: World) -> list[WorldObject]:
    """The world's vessels in the order scenarios count them."""
    return [o for o in world.objects if o.object_class is ObjectClass.VESSEL]


def default_class(vessel: WorldObject) -> AisClass:
    return AisClass.B if vessel.kind.name in _CLASS_B_KINDS else AisClass.A


def identity(index: int, vessel: WorldObject) -> AisIdentity:
    """A vessel's stable MMSI, name, call sign and ship type, from its index and kind alone."""
    name = _NAMES[index % len(_NAMES)] + ("" if index < len(_NAMES) else f" {index // len(_NAMES) + 1}")
    return AisIdentity(
        mmsi=MMSI_BASE + index,
        name=name,
        callsign=f"EB{index:04d}",
        ship_type=_SHIP_TYPES.get(vessel.kind.name, 90),
        length_m=vessel.kind.length_m,
        beam_m=vessel.kind.beam_m,
    )


def position_interval_s(ais_class: AisClass, speed_kn: float) -> float:
    """Seconds between position reports at a speed (ITU-R M.1371 table 1, turning ignored)."""
    if ais_class is AisClass.B:
        return 180.0 if speed_kn < 2.0 else 30.0
    if speed_kn < ANCHORED_BELOW_KN:
        return 180.0
    if speed_kn <= 14.0:
        return 10.0
    if speed_kn <= 23.0:
        return 6.0
    return 2.0


@dataclass(frozen=True)
class Broadcast:
    """One AIS message: when (the broadcaster's time), from which vessel, and its sentences."""

    time_s: float
    vessel: int
    mmsi: int
    msg_type: int
    sentences: tuple[str, ...]


@dataclass
class _Schedule:
    next_position_s: float
    next_static_s: float


class AisBroadcaster:
    """The world's vessels' AIS reports as time goes on; `step` them to a time, they go to `send`.

    `world_time` maps the broadcaster's time (the clock reports are due on) to the world's time
    (where the vessels are): the simulator's traffic stands still until a drone arms, but the
    transponders keep talking.
    """

    def __init__(
        self,
        world: World,
        scenario: AisScenario,
        site_frame: LocalFrame,
        send: Callable[[Sequence[str]], None] | None = None,
        world_time: Callable[[float], float] | None = None,
        start_s: float = 0.0,
    ) -> None:
        """Every transponder is switched on at `start_s`, its first report within one interval of it."""
        self.world = world
        self.scenario = scenario
        self.frame = site_frame
        self.send = send
        self.world_time = world_time or (lambda t: t)
        self.vessels = world_vessels(world)
        for index in scenario.vessels:
            if index >= len(self.vessels):
                raise InputError(
                    scenario.source,
                    f"the world has only {len(self.vessels)} vessels (0 to {len(self.vessels) - 1})",
                    f"vessel {index}",
                )
        self.identities = [identity(i, v) for i, v in enumerate(self.vessels)]
        self.classes = [scenario.of(i).ais_class or default_class(v) for i, v in enumerate(self.vessels)]
        self._rng = np.random.default_rng(scenario.seed)
        self._seq = 0
        self._schedules = [self._first(i, start_s) for i in range(len(self.vessels))]

    def ground_truth(self) -> dict:
        """Who is who on the air: each vessel's MMSI, name, class and role (with a spoofer's lie)."""
        out = []
        for i, (vessel, ident) in enumerate(zip(self.vessels, self.identities, strict=True)):
            entry = {
                "index": i,
                "world_id": vessel.id,
                "kind": vessel.kind.name,
                "mmsi": ident.mmsi,
                "name": ident.name,
                "callsign": ident.callsign,
                **self.scenario.of(i).to_json_dict(),
            }
            out.append({**entry, "class": self.classes[i].value})
        return {"site": self.world.site.name, "seed": self.scenario.seed, "vessels": out}

    def step(self, time_s: float) -> list[str]:
        """The sentences of every report due up to `time_s`, each message handed to `send`."""
        sentences: list[str] = []
        for report in self.reports_until(time_s):
            if self.send is not None:
                self.send(report.sentences)
            sentences.extend(report.sentences)
        return sentences

    def reports_until(self, time_s: float) -> list[Broadcast]:
        """Every report due up to `time_s` since the last call, in time order, each stamped with its instant."""
        due: list[Broadcast] = []
        for i, schedule in enumerate(self._schedules):
            if self.scenario.of(i).role is Role.DARK:
                continue
            while schedule.next_position_s <= time_s:
                report, speed_kn = self._position(i, schedule.next_position_s)
                due.append(report)
                schedule.next_position_s += position_interval_s(self.classes[i], speed_kn)
            while schedule.next_static_s <= time_s:
                due.extend(self._static(i, schedule.next_static_s))
                schedule.next_static_s += STATIC_EVERY_S
        due.sort(key=lambda r: (r.time_s, r.vessel, r.msg_type))
        return due

    def _first(self, index: int, start_s: float) -> _Schedule:
        _, _, speed_kn, _, _ = self._reported(index, start_s)
        interval = position_interval_s(self.classes[index], speed_kn)
        return _Schedule(start_s + float(self._rng.uniform(0, interval)), start_s + float(self._rng.uniform(0, 360)))

    def reported_xy(self, index: int, time_s: float) -> tuple[float, float]:
        """Where vessel `index`'s transponder says it is at `time_s`, in the site's metres (a spoofer lies)."""
        lat, lon, *_ = self._reported(index, time_s)
        return self.frame.xy(lon, lat)

    def _reported(self, index: int, time_s: float) -> tuple[float, float, float, float, int]:
        """(lat, lon, SOG kn, COG deg, true heading deg) as the vessel's transponder says them."""
        vessel, lie = self.vessels[index], self.scenario.of(index)
        t = self.world_time(time_s)
        x_m, y_m, heading_deg, _ = vessel.pose_at(t)
        x0, y0, _, _ = vessel.pose_at(t - _MOTION_DT_S / 2)
        x1, y1, _, _ = vessel.pose_at(t + _MOTION_DT_S / 2)
        speed_kn = math.hypot(x1 - x0, y1 - y0) / _MOTION_DT_S * KNOTS_PER_M_S
        course = math.degrees(math.atan2(x1 - x0, y1 - y0)) % 360.0 if speed_kn >= 0.1 else heading_deg
        if lie.place_deg is not None:
            return lie.place_deg[0], lie.place_deg[1], 0.0, heading_deg, round(heading_deg) % 360
        if lie.offset_m is not None:
            x_m, y_m = x_m + lie.offset_m[0], y_m + lie.offset_m[1]
        lon, lat = self.frame.lonlat(x_m, y_m)
        return lat, lon, speed_kn, course, round(heading_deg) % 360

    def _position(self, index: int, time_s: float) -> tuple[Broadcast, float]:
        lat, lon, speed_kn, course, heading = self._reported(index, time_s)
        data = {
            "mmsi": self.identities[index].mmsi,
            "lat": lat,
            "lon": lon,
            "speed": round(speed_kn, 1),
            "course": round(course, 1) % 360.0,
            "heading": heading,
            "second": int(time_s) % 60,
            "accuracy": 1,
        }
        if self.classes[index] is AisClass.A:
            moored = self.scenario.of(index).place_deg is not None
            anchored = speed_kn < ANCHORED_BELOW_KN
            data.update(type=1, status=5 if moored else 1 if anchored else 0, turn=-128)
        else:
            data.update(type=18, cs=1, display=0, dsc=1, band=1, msg22=1)
        return self._report(index, time_s, data), speed_kn

    def _static(self, index: int, time_s: float) -> list[Broadcast]:
        ident = self.identities[index]
        half_l, half_b = round(ident.length_m / 2), max(1, round(ident.beam_m / 2))
        dims = {"to_bow": half_l, "to_stern": half_l, "to_port": half_b, "to_starboard": half_b}
        if self.classes[index] is AisClass.A:
            draught = round(min(12.0, 0.8 + ident.length_m * 0.06), 1)
            data = {
                "type": 5,
                "mmsi": ident.mmsi,
                "ais_version": 2,
                "imo": 0,
                "callsign": ident.callsign,
                "shipname": ident.name,
                "ship_type": ident.ship_type,
                "epfd": 1,
                "draught": draught,
                "destination": "ALGECIRAS",
                **dims,
            }
            return [self._report(index, time_s, data)]
        return [
            self._report(index, time_s, {"type": 24, "partno": 0, "mmsi": ident.mmsi, "shipname": ident.name}),
            self._report(
                index,
                time_s,
                {
                    "type": 24,
                    "partno": 1,
                    "mmsi": ident.mmsi,
                    "ship_type": ident.ship_type,
                    "callsign": ident.callsign,
                    "vendorid": "BWSIM",
                    **dims,
                },
            ),
        ]

    def _report(self, index: int, time_s: float, data: dict) -> Broadcast:
        channel = "AB"[int(time_s * 10) % 2]  # transponders alternate between the two channels
        sentences = pyais.encode_dict(data, talker_id="AI", sentence_type="VDM", radio_channel=channel)
        if len(sentences) > 1:
            sentences = pyais.encode_dict(
                data, talker_id="AI", sentence_type="VDM", radio_channel=channel, seq_id=self._seq
            )
            self._seq = (self._seq + 1) % 10
        return Broadcast(time_s, index, self.identities[index].mmsi, int(data["type"]), tuple(sentences))


class UdpSender:
    """Each AIS message as one UDP datagram to an address, its sentences ending in CR LF."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)

    def __call__(self, sentences: Sequence[str]) -> None:
        # Nobody listening (ICMP unreachable) is no reason to stop the traffic.
        with contextlib.suppress(OSError):
            self._socket.sendto("".join(s + "\r\n" for s in sentences).encode("ascii"), self.address)

    def close(self) -> None:
        self._socket.close()


def udp_sender(url: str) -> UdpSender:
    """A sender to udp://HOST:PORT."""
    parts = urlsplit(url)
    expected = "expected udp://HOST:PORT, e.g. udp://127.0.0.1:10110"
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "udp" or not parts.hostname or port is None or port == 0 or parts.path not in ("", "/"):
        raise UserError(f"AIS output {url!r}: {expected}")
    return UdpSender(parts.hostname, port)


def broadcast_until(
    broadcaster: AisBroadcaster, clock: Callable[[], float], stop: threading.Event, every_s: float = 0.1
) -> None:
    """Step the broadcaster to `clock()` every `every_s` wall seconds until `stop` is set (a thread's body)."""
    while not stop.is_set():
        broadcaster.step(clock())
        if stop.wait(every_s):
            return


@contextlib.contextmanager
def broadcast_world(
    cameras, scenario: AisScenario, url: str, truth_path: Path, site_frame: LocalFrame
) -> Iterator[AisBroadcaster]:
    """The simulated cameras' world on AIS to `url` while the context lasts, stepped with the first vehicle's
    simulated time (sitl.synthetic.cameras' mount); who is dark and who lies is written to `truth_path`."""
    mount = cameras.mount
    send = udp_sender(url)
    try:
        broadcaster = AisBroadcaster(
            cameras.world, scenario, site_frame, send, lambda t: mount.world_time_s(0, t), start_s=mount.time_s(0)
        )
        truth_path.write_text(json.dumps(broadcaster.ground_truth(), indent=2) + "\n", encoding="utf-8")
        stop = threading.Event()
        thread = threading.Thread(
            target=broadcast_until, args=(broadcaster, lambda: mount.time_s(0), stop), name="sim-ais", daemon=True
        )
        thread.start()
        try:
            yield broadcaster
        finally:
            stop.set()
            thread.join(timeout=5.0)
    finally:
        send.close()
