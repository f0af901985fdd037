"""One vehicle over MAVSDK: connect, upload and verify a plan, and command it, every failure a
:class:`FleetError` with its :class:`Reason`.

Each vehicle gets its own MAVSDK instance: vehicles fresh from the factory (and simulators)
all call themselves system 1, and one instance would take two of them for one system.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from mavsdk.asyncio import ComponentType, Configuration, Mavsdk, MavsdkConnectionError
from mavsdk.asyncio.plugins.action import ActionAsync, ActionError
from mavsdk.asyncio.plugins.mission_raw import MissionRawAsync, MissionRawError
from mavsdk.asyncio.plugins.telemetry import TelemetryAsync

from groundstation.fleet.feed import Feed
from groundstation.fleet.mavsdk_log import route_mavsdk_logs
from groundstation.fleet.mission import RawPlan, differences, from_mavsdk, raw_plan, to_mavsdk
from groundstation.fleet.reasons import action_reason, transfer_reason
from groundstation.fleet.state import (
    FleetError,
    FleetEvent,
    LandedState,
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


class VehicleLink:
    """A connected vehicle. Build it with :meth:`open`; :meth:`close` it when done."""

    def __init__(self, index: int, url: str, mavsdk: Any, system: Any, telemetry: VehicleTelemetry) -> None:
        self.index = index
        self.url = url
        self.name = vehicle_name(index)
        self._mavsdk = mavsdk
        self._system = system
        self._telemetry = telemetry
        self._action = ActionAsync(system)
        self._mission_raw = telemetry._mission_raw
        self._uploaded: RawPlan | None = None
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
    ) -> VehicleLink:
        route_mavsdk_logs()
        mavsdk = Mavsdk(Configuration.create_with_component_type(ComponentType.GROUND_STATION))
        try:
            try:
                await mavsdk.add_any_connection(url)
            except MavsdkConnectionError as exc:
                raise FleetError(index, Reason.CONNECTION_FAILED, f"cannot open {url}: {exc}") from None
            system = await mavsdk.first_autopilot(timeout_s=timeout_s)
            if system is None:
                raise FleetError(index, Reason.TIMEOUT, f"no autopilot heard on {url} within {timeout_s:g} s")
            telemetry = VehicleTelemetry(
                index,
                await system.get_system_id(),
                TelemetryAsync(system),
                MissionRawAsync(system),
                events if events is not None else Feed(keep=256),
                stale_after_s=stale_after_s,
                on_state=on_state,
            )
        except BaseException:
            mavsdk.destroy()
            raise
        telemetry.start()
        return cls(index, url, mavsdk, system, telemetry)

    async def close(self) -> None:
        self._refusal_watch.close()
        await self._telemetry.stop()
        self._mavsdk.destroy()

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
        m = self._mission_raw
        # MAVSDK 4.1 refuses to upload an empty list (NO_MISSION_AVAILABLE), so a plan without a fence
        # or rally points leaves whatever the vehicle holds; verify() then leaves those alone too.
        if raw.fence:
            await self._transfer("fence upload", m.upload_geofence, [to_mavsdk(i) for i in raw.fence], deadline)
        if raw.rally:
            await self._transfer("rally upload", m.upload_rally_points, [to_mavsdk(i) for i in raw.rally], deadline)
        await self._transfer("mission upload", m.upload_mission, [to_mavsdk(i) for i in raw.mission], deadline)
        self._uploaded = raw
        self._telemetry.expect_mission(len(raw.mission))
        if verify:
            await self.verify(raw, timeout_s=max(1.0, deadline - time.monotonic()))
        return raw

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

    async def check_mission(self, *, retry_for_s: float = 10.0, timeout_s: float = 10.0) -> None:
        """On the ground: wait until the vehicle accepts the uploaded mission, then leave it in Hold.

        PX4 accepts Mission mode while disarmed only once its mission check has passed (a
        refusal says why: a fence violation, an empty mission), so this waits the check out
        before anything is armed.
        """
        await self._start(retry_for_s, timeout_s)
        await self.pause(timeout_s)

    async def launch(self, *, retry_for_s: float = 10.0) -> float:
        """Check the uploaded mission on the ground, arm, start it; the time.monotonic() it was armed.

        PX4 disarms a vehicle left armed and idle on the pad (COM_DISARM_PRFLT; seconds under a
        sim speed factor), so the check is waited out before arming, then arm and start follow at
        once (MAVSDK's arm switches a vehicle in Mission mode to Hold first, so the mode cannot
        simply be set before arming). A vehicle that armed but would not start is disarmed again
        unless it is in the air.
        """
        await self.check_mission(retry_for_s=retry_for_s)
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
        give_up = time.monotonic() + retry_for_s
        while True:
            try:
                await self._command("start mission", self._mission_raw.start_mission, timeout_s)
            except FleetError as exc:
                if exc.reason is not Reason.COMMAND_DENIED or time.monotonic() >= give_up:
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

    def _explained(self, exc: FleetError) -> FleetError:
        """The error with the vehicle's own reason when it said one since the upload (PX4 says why in STATUSTEXT)."""
        while (event := self._refusal_watch.get_nowait()) is not None:
            if event.vehicle == self.index and event.reason in _REFUSAL_REASONS and event.severity >= Severity.WARNING:
                self._refusals.append(event)
        if not self._refusals:
            return exc
        said = self._refusals[-1]
        return FleetError(self.index, said.reason, f"{exc.detail}: {said.message.removeprefix(self.name + ': ')}")


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
        """Connects to every vehicle at once; if one fails, the others are closed and its FleetError raised."""
        events: Feed[FleetEvent] = Feed(keep=256)
        states: Feed[tuple[VehicleState, ...]] = Feed(keep=1)
        latest = [VehicleState(vehicle=i) for i in range(len(urls))]

        def on_state(state: VehicleState) -> None:
            latest[state.vehicle] = state
            states.publish(tuple(latest))

        options = {"timeout_s": timeout_s, "events": events, "stale_after_s": stale_after_s, "on_state": on_state}
        opening = [asyncio.create_task(VehicleLink.open(i, url, **options)) for i, url in enumerate(urls)]
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
