"""One vehicle over MAVSDK: connect, upload and verify a plan, and command it, every failure a
:class:`FleetError` with its :class:`Reason`.

Vehicles on one connection share a MAVSDK instance and are told apart by system id; each
connection has its own (fleet.connections says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from mavsdk.asyncio.plugins.action import ActionAsync, ActionError
from mavsdk.asyncio.plugins.mavlink_direct import MavlinkDirectAsync
from mavsdk.asyncio.plugins.mission_raw import MissionRawAsync, MissionRawError
from mavsdk.asyncio.plugins.telemetry import TelemetryAsync

from groundstation.fleet.connections import MavsdkConnection, VehicleAddress, parse_addresses
from groundstation.fleet.feed import Feed
from groundstation.fleet.mission import RawPlan, differences, from_mavsdk, raw_plan, to_mavsdk
from groundstation.fleet.reasons import action_reason, transfer_reason
from groundstation.fleet.state import (
    FleetError,
    FleetEvent,
    LandedState,
    MissionState,
    Reason,
    Severity,
    VehicleState,
    vehicle_name,
)
from groundstation.fleet.telemetry import VehicleTelemetry
from missions.plan import MissionPlan

T = TypeVar("T")

# Reasons a vehicle gives (in STATUSTEXT) that explain why it refused to start.
_REFUSAL_REASONS = (Reason.FENCE_VIOLATION, Reason.MISSION_REJECTED, Reason.BATTERY_LOW, Reason.FAILSAFE)
# ... and those that say the mission itself will not be flown: no use waiting or retrying after one.
_MISSION_REFUSED = (Reason.FENCE_VIOLATION, Reason.MISSION_REJECTED)
_MISSION_TAKEN = frozenset({MissionState.NOT_STARTED, MissionState.ACTIVE, MissionState.PAUSED, MissionState.COMPLETE})
# PX4 checks a fresh upload within a few of its navigator's cycles: a MISSION_CURRENT sent in this
# long after the upload may still describe the mission before.
_MISSION_CHECK_GRACE_S = 0.3


class VehicleLink:
    """A connected vehicle. Build it with :meth:`open`; :meth:`close` it when done."""

    def __init__(
        self, index: int, url: str, connection: MavsdkConnection | None, system: Any, telemetry: VehicleTelemetry
    ) -> None:
        self.index = index
        self.url = url
        self.name = vehicle_name(index)
        self._own_connection = connection  # closed with the vehicle when it is not shared
        self._system = system
        self._telemetry = telemetry
        self._action = ActionAsync(system)
        self._mission_raw = telemetry._mission_raw
        self._uploaded: RawPlan | None = None
        self._uploaded_at = -math.inf
        self._refusals: list[FleetEvent] = []
        self._refusal_watch = telemetry.events.subscribe(keep=64)

    @classmethod
    async def open(
        cls,
        index: int,
        url: str,
        *,
        timeout_s: float = 10.0,
        events: Feed[FleetEvent] | None = None,
        stale_after_s: float = 2.0,
        on_state: Callable[[VehicleState], None] | None = None,
        connection: MavsdkConnection | None = None,
    ) -> VehicleLink:
        """The vehicle at `url` (a connection URL, `?system=N` to pick one of several on it), on the shared
        `connection` to that URL when one is given, else on a MAVSDK instance of its own."""
        try:
            address = VehicleAddress.parse(url)
        except ValueError as exc:
            raise FleetError(index, Reason.CONNECTION_FAILED, str(exc)) from None
        own = connection is None
        if connection is None:
            connection = MavsdkConnection(address.connection)
        try:
            await connection.open(index)
            system = await connection.system(index, address.system_id, timeout_s)
            telemetry = VehicleTelemetry(
                index,
                await system.get_system_id(),
                TelemetryAsync(system),
                MissionRawAsync(system),
                MavlinkDirectAsync(system),
                events if events is not None else Feed(keep=256),
                stale_after_s=stale_after_s,
                on_state=on_state,
            )
        except BaseException:
            if own:
                connection.destroy()
            raise
        telemetry.start()
        return cls(index, url, connection if own else None, system, telemetry)

    async def close(self) -> None:
        self._refusal_watch.close()
        await self._telemetry.stop()
        if self._own_connection is not None:
            self._own_connection.destroy()

    # -- what the vehicle tells us -------------------------------------------------------------

    @property
    def state(self) -> VehicleState:
        return self._telemetry.state

    @property
    def states(self) -> Feed[VehicleState]:
        return self._telemetry.states

    @property
    def events(self) -> Feed[FleetEvent]:
        return self._telemetry.events

    @property
    def uploaded(self) -> RawPlan | None:
        return self._uploaded

    async def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Until the vehicle has a global position and a home position."""
        await self._bounded(self._telemetry.wait_healthy(), timeout_s, "no global and home position")

    async def wait_for(self, predicate: Callable[[VehicleState], bool], timeout_s: float, what: str) -> VehicleState:
        """The first snapshot that satisfies `predicate`; FleetError(TIMEOUT) naming `what` otherwise."""

        async def first() -> VehicleState:
            if predicate(self.state):
                return self.state
            with self.states.subscribe() as sub:
                async for state in sub:
                    if predicate(state):
                        return state
            raise FleetError(self.index, Reason.LINK_LOST, f"link closed while waiting for {what}")

        return await self._bounded(first(), timeout_s, what)

    # -- the plan ----------------------------------------------------------------------------------

    async def upload(self, plan: MissionPlan | RawPlan, *, timeout_s: float = 60.0, verify: bool = True) -> RawPlan:
        """Mission, fence and rally to the vehicle (fence first, so PX4 checks the mission against it)."""
        raw = plan if isinstance(plan, RawPlan) else raw_plan(plan)
        if not raw.mission:
            raise FleetError(self.index, Reason.MISSION_REJECTED, "the plan has no mission items")
        deadline = time.monotonic() + timeout_s
        self._drain_refusals()
        await self._send(raw, deadline)
        if verify:
            try:
                await self.verify(raw, timeout_s=max(1.0, deadline - time.monotonic()))
            except FleetError as exc:
                if exc.reason is not Reason.VERIFY_FAILED or deadline - time.monotonic() < 1.0:
                    raise
                # PX4 SITL fresh from boot can replace a mission uploaded in its first seconds: the
                # navigator's first `mission` publication resets the mission manager's count
                # (MavlinkMissionManager::check_active_mission), and the download finds 0 items.
                # One more upload settles it; a vehicle that corrupts what it stores fails again.
                self._telemetry.emit(Reason.VERIFY_FAILED, f"{exc.detail}; uploading again", Severity.NOTICE)
                await self._send(raw, deadline)
                await self.verify(raw, timeout_s=max(1.0, deadline - time.monotonic()))
        return raw

    async def _send(self, raw: RawPlan, deadline: float) -> None:
        m = self._mission_raw
        # MAVSDK 4.1 refuses to upload an empty list (NO_MISSION_AVAILABLE), so a plan without a fence
        # or rally points leaves whatever the vehicle holds; verify() then leaves those alone too.
        if raw.fence:
            await self._transfer("fence upload", m.upload_geofence, [to_mavsdk(i) for i in raw.fence], deadline)
        if raw.rally:
            await self._transfer("rally upload", m.upload_rally_points, [to_mavsdk(i) for i in raw.rally], deadline)
        await self._transfer("mission upload", m.upload_mission, [to_mavsdk(i) for i in raw.mission], deadline)
        self._uploaded = raw
        self._uploaded_at = time.monotonic()
        self._telemetry.expect_mission(len(raw.mission))

    async def verify(self, raw: RawPlan, *, timeout_s: float = 60.0) -> None:
        """Download mission, fence and rally and compare them with what was sent (an empty fence or rally
        list was not sent, so it is not checked)."""
        deadline = time.monotonic() + timeout_s
        m = self._mission_raw
        problems: list[str] = []
        for what, download, sent in (
            ("mission", m.download_mission, raw.mission),
            ("fence", m.download_geofence, raw.fence),
            ("rally", m.download_rallypoints, raw.rally),
        ):
            if not sent and what != "mission":
                continue
            items = await self._transfer(f"{what} download", download, None, deadline)
            problems += differences(sent, [from_mavsdk(i) for i in items], what)
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise FleetError(self.index, Reason.VERIFY_FAILED, "; ".join(problems[:3]) + more)

    # -- commands ----------------------------------------------------------------------------------

    async def arm(self, timeout_s: float = 10.0) -> None:
        await self._command("arm", self._action.arm, timeout_s)

    async def disarm(self, timeout_s: float = 10.0) -> None:
        await self._command("disarm", self._action.disarm, timeout_s)

    async def start_mission(self, *, retry_for_s: float = 10.0, timeout_s: float = 10.0) -> None:
        """Switch to MISSION; PX4 refuses while it still checks a fresh upload, so a refusal is retried
        for `retry_for_s`. When it still refuses, the error carries the reason the vehicle gave."""
        await self._start(retry_for_s, timeout_s)
        self._telemetry.emit(Reason.MISSION_STARTED, "mission started")

    async def check_mission(self, *, timeout_s: float = 15.0) -> None:
        """On the ground, before anything is armed: until the vehicle holds the uploaded mission as valid.

        PX4 checks a fresh upload (against its fence, among others). Until the mission passes,
        MISSION_CURRENT says there is none; when it fails, PX4 says why ("Geofence violation for
        waypoint 4") and that ends the wait with its words. An autopilot that reports no
        mission_state leaves the verdict to the start itself.
        """
        deadline = time.monotonic() + timeout_s
        since = self._uploaded_at + _MISSION_CHECK_GRACE_S
        while True:
            refused = self._mission_refusal()
            if refused is not None:
                raise FleetError(self.index, refused.reason, f"mission refused: {_words(refused, self.name)}")
            if self._telemetry.mission_state_at > since:
                state = self.state.mission_state
                if state in _MISSION_TAKEN or state is MissionState.UNKNOWN:
                    return
            if time.monotonic() >= deadline:
                if self._telemetry.mission_state_at <= since:
                    return  # it never said: the start will tell
                raise FleetError(
                    self.index,
                    Reason.MISSION_REJECTED,
                    f"the vehicle still reports no valid mission {timeout_s:g} s after the upload",
                )
            await asyncio.sleep(0.1)

    async def launch(self, *, retry_for_s: float = 10.0) -> float:
        """Check the uploaded mission on the ground, arm, start it; the time.monotonic() it was armed.

        PX4 disarms a vehicle left armed and idle on the pad (COM_DISARM_PRFLT; seconds under a
        sim speed factor), so the check is waited out before arming, then arm and start follow at
        once (MAVSDK's arm switches a vehicle in Mission mode to Hold first, so the mode cannot
        simply be set before arming). A vehicle that armed but would not start is disarmed again
        unless it is in the air.
        """
        await self.check_mission(timeout_s=retry_for_s)
        await self.arm()
        armed_at = time.monotonic()
        try:
            await self.start_mission(retry_for_s=retry_for_s)
        except FleetError:
            with contextlib.suppress(FleetError):
                if self.state.landed_state is not LandedState.IN_AIR:
                    await self.disarm()
            raise
        return armed_at

    async def _start(self, retry_for_s: float, timeout_s: float) -> None:
        """Mission mode; a refusal is retried (PX4 refuses while it still checks a fresh upload) unless
        the vehicle has said why it will not fly this mission."""
        give_up = time.monotonic() + retry_for_s
        while True:
            try:
                await self._command("start mission", self._mission_raw.start_mission, timeout_s)
            except FleetError as exc:
                retry = exc.reason is Reason.COMMAND_DENIED and time.monotonic() < give_up
                if not retry or self._mission_refusal() is not None:
                    raise self._explained(exc) from None
                await asyncio.sleep(0.5)
            else:
                return

    async def pause(self, timeout_s: float = 10.0) -> None:
        await self._command("pause", self._mission_raw.pause_mission, timeout_s)

    async def resume(self, timeout_s: float = 10.0) -> None:
        """Back to MISSION from where the vehicle paused: the current item is left as it is."""
        await self._command("resume", self._mission_raw.start_mission, timeout_s)

    async def return_to_launch(self, timeout_s: float = 10.0) -> None:
        await self._command("return", self._action.return_to_launch, timeout_s)

    async def land(self, timeout_s: float = 10.0) -> None:
        await self._command("land", self._action.land, timeout_s)

    # -- plumbing ---------------------------------------------------------------------------------

    async def _bounded(self, awaitable: Awaitable[T], timeout_s: float, what: str) -> T:
        try:
            return await asyncio.wait_for(awaitable, timeout=max(timeout_s, 0.0))
        except TimeoutError:
            raise FleetError(self.index, Reason.TIMEOUT, f"{what}: no result within {timeout_s:g} s") from None

    async def _command(self, what: str, call: Callable[[], Awaitable[Any]], timeout_s: float) -> None:
        try:
            await self._bounded(call(), timeout_s, what)
        except (ActionError, MissionRawError) as exc:
            result = exc.result.name
            # MissionRaw reports a denied mode change as ERROR (MAVSDK maps it so, "FIXME").
            reason = action_reason("COMMAND_DENIED" if result == "ERROR" else result)
            raise FleetError(self.index, reason, f"{what} {_said(result, reason)}") from None

    async def _transfer(self, what: str, call: Callable[..., Awaitable[T]], items: list | None, deadline: float) -> T:
        """One MAVSDK mission transfer; one that runs out of MAVSDK's own retries (a lossy link) is
        started again while `deadline` allows, so the whole transfer is bounded, not each packet."""
        args = () if items is None else (items,)
        while True:
            try:
                return await self._bounded(call(*args), deadline - time.monotonic(), what)
            except MissionRawError as exc:
                reason = transfer_reason(exc.result.name)
                if reason is Reason.TIMEOUT and deadline - time.monotonic() > 1.0:
                    self._telemetry.emit(Reason.TIMEOUT, f"{what} timed out; trying again", Severity.NOTICE)
                    await asyncio.sleep(0.2)
                    continue
                failure = FleetError(self.index, reason, f"{what} {_said(exc.result.name, reason)}")
                raise self._explained(failure) from None
            except FleetError:
                m = self._mission_raw
                with contextlib.suppress(Exception):
                    await (m.cancel_mission_upload if items is not None else m.cancel_mission_download)()
                raise

    def _drain_refusals(self) -> None:
        while self._refusal_watch.get_nowait() is not None:
            pass
        self._refusals.clear()

    def _collect_refusals(self) -> None:
        while (event := self._refusal_watch.get_nowait()) is not None:
            if event.vehicle == self.index and event.reason in _REFUSAL_REASONS and event.severity >= Severity.WARNING:
                self._refusals.append(event)

    def _mission_refusal(self) -> FleetEvent | None:
        """What the vehicle said since the upload that means it will not fly this mission, if anything."""
        self._collect_refusals()
        return next((e for e in reversed(self._refusals) if e.reason in _MISSION_REFUSED), None)

    def _explained(self, exc: FleetError) -> FleetError:
        """The error with the vehicle's own reason when it said one since the upload (PX4 says why in STATUSTEXT)."""
        self._collect_refusals()
        if not self._refusals:
            return exc
        said = self._mission_refusal() or self._refusals[-1]
        return FleetError(self.index, said.reason, f"{exc.detail}: {_words(said, self.name)}")


def _words(event: FleetEvent, name: str) -> str:
    """What the vehicle said, without our "vehicle N: says" around it."""
    text = event.message.removeprefix(name + ": ")
    return text.removeprefix("says ").strip("'\"") if text.startswith("says ") else text


def _said(result_name: str, reason: Reason) -> str:
    words = result_name.lower().replace("_", " ")
    return {Reason.TIMEOUT: "timed out", Reason.LINK_LOST: f"failed: {words}"}.get(reason, f"refused: {words}")


class FleetLink:
    """N vehicles: `async with FleetLink.connect(urls, timeout_s=10) as fleet:`.

    `states` publishes a tuple with every vehicle's newest snapshot whenever one changes;
    `events` carries every vehicle's events. Both are feeds: subscribe as many times as needed.
    """

    def __init__(self, vehicles: list[VehicleLink], states: Feed[tuple[VehicleState, ...]], events: Feed[FleetEvent]):
        self.vehicles = tuple(vehicles)
        self.states = states
        self.events = events

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, urls: list[str] | tuple[str, ...], *, timeout_s: float = 10.0, stale_after_s: float = 2.0
    ) -> AsyncIterator[FleetLink]:
        """Connects to every vehicle at once; if one fails, the others are closed and its FleetError raised.

        Vehicles on the same connection URL share one MAVSDK instance (see fleet.connections);
        a list of addresses that cannot work is a FleetError for the first vehicle it names.
        """
        try:
            addresses = parse_addresses(urls)
        except ValueError as exc:
            raise FleetError(0, Reason.CONNECTION_FAILED, str(exc)) from None
        connections = {a.connection: MavsdkConnection(a.connection) for a in addresses}
        try:
            async with cls._connect(urls, addresses, connections, timeout_s, stale_after_s) as fleet:
                yield fleet
        finally:
            for connection in connections.values():
                connection.destroy()

    @classmethod
    @contextlib.asynccontextmanager
    async def _connect(cls, urls, addresses, connections, timeout_s: float, stale_after_s: float):
        events: Feed[FleetEvent] = Feed(keep=256)
        states: Feed[tuple[VehicleState, ...]] = Feed(keep=1)
        latest = [VehicleState(vehicle=i) for i in range(len(urls))]

        def on_state(state: VehicleState) -> None:
            latest[state.vehicle] = state
            states.publish(tuple(latest))

        options = {"timeout_s": timeout_s, "events": events, "stale_after_s": stale_after_s, "on_state": on_state}
        opening = [
            asyncio.create_task(VehicleLink.open(i, url, connection=connections[a.connection], **options))
            for i, (url, a) in enumerate(zip(urls, addresses, strict=True))
        ]
        try:
            await asyncio.wait(opening)
        except BaseException:
            for task in opening:
                task.cancel()
            await asyncio.gather(*opening, return_exceptions=True)
            await _close_opened(opening)
            raise
        failures = [t.exception() for t in opening if t.exception() is not None]
        if failures:
            await _close_opened(opening)
            raise failures[0]
        fleet = cls([t.result() for t in opening], states, events)
        try:
            yield fleet
        finally:
            await fleet.close()

    async def close(self) -> None:
        await asyncio.gather(*(v.close() for v in self.vehicles), return_exceptions=True)
        self.states.close()
        self.events.close()

    def __len__(self) -> int:
        return len(self.vehicles)

    def __getitem__(self, index: int) -> VehicleLink:
        return self.vehicles[index]

    def __iter__(self):
        return iter(self.vehicles)


async def _close_opened(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is None:
            await task.result().close()
