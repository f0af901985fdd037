"""The fleet link as the Qt side sees it: commands that return at once, signals that carry frozen snapshots.

Everything MAVSDK does runs on the :class:`AsyncLoop`'s thread; the fleet's two feeds are read
there once each and fanned out as signals. Snapshots reach Qt newest-only, at most ten times a
second: a UI thread busy for a moment skips snapshots instead of queueing them. Every failure
becomes one line on :attr:`FleetController.failed` naming the vehicle and the action (and, for
callers that want it, the exception of the returned Future); nothing raises into Qt.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from PyQt6.QtCore import QObject, Qt, pyqtSignal

from groundstation.app.async_loop import AsyncLoop
from groundstation.fleet import (
    FleetCommand,
    FleetError,
    FleetEvent,
    FleetLink,
    Reason,
    VehicleLink,
    VehicleState,
    allowed,
)
from groundstation.fleet.flight import FlightOptions
from groundstation.fleet.mission import raw_plan
from groundstation.fleet.sorties import SortiesOutcome, fly_sorties
from groundstation.fleet.state import vehicle_name
from missions.plan import MissionPlan

log = logging.getLogger(__name__)

STATES_PERIOD_S = 0.1  # at most 10 snapshots a second reach Qt
FLEET = -1  # the "vehicle" of a failure that concerns the whole fleet (connecting)


class FleetController(QObject):
    connected = pyqtSignal(object)  # tuple of urls
    disconnected = pyqtSignal()
    states = pyqtSignal(object)  # tuple[VehicleState, ...]
    event = pyqtSignal(object)  # FleetEvent
    failed = pyqtSignal(str)  # "vehicle 2: start: arm refused: denied"
    busy = pyqtSignal(int, str)  # vehicle, action
    done = pyqtSignal(int, str)
    sortie = pyqtSignal(int, int, int)  # vehicle, sortie number from 1, sorties planned
    _states_ready = pyqtSignal()

    def __init__(
        self,
        loop: AsyncLoop,
        recorder: Any = None,
        parent: QObject | None = None,
        *,
        options: FlightOptions | None = None,
        stale_after_s: float = 2.0,
    ) -> None:
        super().__init__(parent)
        self._loop = loop
        self._recorder = recorder
        self._options = options or FlightOptions()
        self._stale_after_s = stale_after_s
        # Owned by the loop thread:
        self._fleet: FleetLink | None = None
        self._session: asyncio.Task | None = None
        self._stop_session: asyncio.Event | None = None
        self._flying: dict[int, asyncio.Task] = {}
        self._recorded: dict[int, VehicleState] = {}
        # Handed from the loop thread to the UI thread, newest only:
        self._lock = threading.Lock()
        self._pending: tuple[VehicleState, ...] | None = None
        self._states_ready.connect(self._deliver_states, Qt.ConnectionType.QueuedConnection)
        self.urls: tuple[str, ...] | None = None  # while connected
        self.latest: tuple[VehicleState, ...] = ()  # the snapshot last emitted (UI thread)

    @property
    def loop(self) -> AsyncLoop:
        return self._loop

    @property
    def is_connected(self) -> bool:
        return self.urls is not None

    def allowed(self, command: FleetCommand, state: VehicleState | None, *, has_plan: bool, busy=()) -> bool:
        """The fleet's rule for `command` on a vehicle in `state` (see groundstation.fleet.commands)."""
        return allowed(command, state, connected=self.is_connected, has_plan=has_plan, busy=busy)

    def set_recorder(self, recorder: Any) -> None:
        """Anything with record_state(VehicleState) and record_event(FleetEvent), and optionally
        add_plan(vehicle, plan, sortie); called on the loop thread. None stops recording."""
        self._recorder = recorder

    # -- the link ------------------------------------------------------------------------------

    def connect_fleet(self, urls: Sequence[str], timeout_s: float = 30.0) -> concurrent.futures.Future:
        """Opens the fleet and keeps it open until :meth:`disconnect_fleet`; the Future holds the urls."""
        urls = tuple(urls)
        if not urls:
            return self._fail_now(FLEET, "connect", "no vehicle URLs given")
        return self._submit(FLEET, "connect", self._connect(urls, timeout_s))

    def disconnect_fleet(self) -> concurrent.futures.Future:
        return self._submit(FLEET, "disconnect", self._disconnect())

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """For app exit: closes the link and stops the loop, within about `timeout_s` whatever happens."""
        if self._loop.running:
            try:
                self._loop.submit(self._disconnect(), log_errors=False).result(timeout=timeout_s * 0.6)
            except Exception as exc:
                log.warning("fleet: closing the link at exit: %s", exc or type(exc).__name__)
            self._loop.stop(timeout_s * 0.4)

    # -- commands ------------------------------------------------------------------------------

    def upload(self, vehicle: int, plan: MissionPlan) -> concurrent.futures.Future:
        async def work(link: VehicleLink) -> None:
            await link.upload(raw_plan(plan), timeout_s=self._options.upload_timeout_s)
            self._record_plan(vehicle, plan, 1)

        return self._command(vehicle, FleetCommand.UPLOAD, work, exclusive=True)

    def start_mission(self, vehicle: int) -> concurrent.futures.Future:
        """Starts what the vehicle holds as Flight does: health, mission check on the ground, arm, start."""

        async def work(link: VehicleLink) -> None:
            if link.uploaded is None and link.state.mission_total <= 0:
                raise FleetError(vehicle, Reason.MISSION_REJECTED, "no mission on the vehicle: upload a plan first")
            o = self._options
            await link.wait_healthy(o.health_timeout_s)
            await link.launch(retry_for_s=o.start_retry_s)

        return self._command(vehicle, FleetCommand.START, work, exclusive=True)

    def fly(self, vehicle: int, plans: Sequence[MissionPlan]) -> concurrent.futures.Future:
        """Flies `plans` one after another: upload, start, wait until landed and disarmed, next.
        The Future holds a :class:`SortiesOutcome`."""
        plans = tuple(plans)

        async def work(link: VehicleLink) -> SortiesOutcome:
            if not plans:
                raise FleetError(vehicle, Reason.MISSION_REJECTED, "no plans to fly")

            def on_sortie(number: int, count: int) -> None:
                self.sortie.emit(vehicle, number, count)
                self._record_plan(vehicle, plans[number - 1], number)

            self._flying[vehicle] = asyncio.current_task()
            try:
                outcome = await fly_sorties(link, [raw_plan(p) for p in plans], self._options, on_sortie=on_sortie)
            finally:
                self._flying.pop(vehicle, None)
            if not outcome.ok:
                last = outcome.flights[-1]
                why = last.error.detail if last.error is not None else "the mission was not completed"
                reason = last.error.reason if last.error is not None else Reason.MISSION_REJECTED
                raise FleetError(vehicle, reason, f"sortie {len(outcome.flights)}/{outcome.planned}: {why}")
            return outcome

        return self._command(vehicle, FleetCommand.FLY, work, exclusive=True)

    def pause(self, vehicle: int) -> concurrent.futures.Future:
        return self._command(vehicle, FleetCommand.PAUSE, lambda link: link.pause())

    def resume(self, vehicle: int) -> concurrent.futures.Future:
        return self._command(vehicle, FleetCommand.RESUME, lambda link: link.resume())

    def return_to_launch(self, vehicle: int) -> concurrent.futures.Future:
        return self._command(vehicle, FleetCommand.RETURN, lambda link: link.return_to_launch())

    def land(self, vehicle: int) -> concurrent.futures.Future:
        return self._command(vehicle, FleetCommand.LAND, lambda link: link.land())

    # -- on the loop thread ----------------------------------------------------------------------

    async def _connect(self, urls: tuple[str, ...], timeout_s: float) -> tuple[str, ...]:
        await self._disconnect()
        opened: asyncio.Future[tuple[str, ...]] = asyncio.get_running_loop().create_future()
        self._stop_session = asyncio.Event()
        self._session = asyncio.create_task(self._hold(urls, timeout_s, opened), name="fleet session")
        return await opened

    async def _hold(self, urls: tuple[str, ...], timeout_s: float, opened: asyncio.Future) -> None:
        stop = self._stop_session
        assert stop is not None
        try:
            async with FleetLink.connect(list(urls), timeout_s=timeout_s, stale_after_s=self._stale_after_s) as fleet:
                self._fleet, self.urls = fleet, urls
                pumps = [
                    asyncio.create_task(self._pump_states(fleet), name="fleet states to Qt"),
                    asyncio.create_task(self._pump_events(fleet), name="fleet events to Qt"),
                ]
                self.connected.emit(urls)
                opened.set_result(urls)
                try:
                    await stop.wait()
                finally:
                    flights = list(self._flying.values())
                    for task in (*pumps, *flights):
                        task.cancel()
                    await asyncio.gather(*pumps, *flights, return_exceptions=True)
                    self._fleet, self.urls = None, None
                    self._recorded.clear()
            self.disconnected.emit()
        except BaseException as exc:
            if not opened.done():
                opened.set_exception(exc) if isinstance(exc, Exception) else opened.cancel()
            else:
                if isinstance(exc, Exception):
                    log.exception("fleet: the link failed")
                self.disconnected.emit()
            if not isinstance(exc, Exception):
                raise
        finally:
            if self._session is asyncio.current_task():
                self._session = self._stop_session = None

    async def _disconnect(self) -> None:
        session, stop = self._session, self._stop_session
        if session is None:
            return
        if self._fleet is None:
            session.cancel()  # still connecting
        elif stop is not None:
            stop.set()
        await asyncio.gather(session, return_exceptions=True)

    async def _pump_states(self, fleet: FleetLink) -> None:
        with fleet.states.subscribe(keep=1, replay_latest=True) as states:
            async for snapshot in states:
                self._record_states(snapshot)
                with self._lock:
                    idle = self._pending is None
                    self._pending = snapshot
                if idle:
                    self._states_ready.emit()
                await asyncio.sleep(STATES_PERIOD_S)  # the feed keeps one: the newest waits meanwhile

    async def _pump_events(self, fleet: FleetLink) -> None:
        with fleet.events.subscribe(keep=1024) as events:
            async for event in events:
                self._record("record_event", event)
                self.event.emit(event)
                if event.reason is Reason.LINK_LOST:
                    self.failed.emit(event.message)

    def _deliver_states(self) -> None:
        with self._lock:
            snapshot, self._pending = self._pending, None
        if snapshot is not None:
            self.latest = snapshot
            self.states.emit(snapshot)

    def _vehicle(self, vehicle: int) -> VehicleLink:
        fleet = self._fleet
        if fleet is None:
            raise FleetError(vehicle, Reason.LINK_LOST, "not connected")
        if not 0 <= vehicle < len(fleet):
            raise FleetError(vehicle, Reason.COMMAND_DENIED, f"no such vehicle in a fleet of {len(fleet)}")
        return fleet[vehicle]

    def _command(
        self, vehicle: int, action: str, work: Callable[[VehicleLink], Awaitable[Any]], *, exclusive: bool = False
    ) -> concurrent.futures.Future:
        """`work` on the vehicle's link, between busy and done; an `exclusive` one (a new plan or a
        start) is refused while the vehicle flies its sorties."""

        async def run() -> Any:
            link = self._vehicle(vehicle)
            if exclusive and vehicle in self._flying:
                raise FleetError(vehicle, Reason.COMMAND_DENIED, "busy flying its sorties")
            self.busy.emit(vehicle, action)
            try:
                return await work(link)
            finally:
                self.done.emit(vehicle, action)

        return self._submit(vehicle, action, run())

    def _submit(self, vehicle: int, action: str, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        async def reported() -> Any:
            try:
                return await coro
            except FleetError as exc:
                self._report(one_line(exc.vehicle, action, exc.detail))
                raise
            except TimeoutError:
                self._report(one_line(vehicle, action, "timed out"))
                raise
            except Exception as exc:
                log.exception("fleet: %s failed", action)
                self._report(one_line(vehicle, action, f"failed: {exc}"))
                raise

        try:
            return self._loop.submit(reported(), log_errors=False)
        except RuntimeError as exc:
            return self._fail_now(vehicle, action, str(exc))

    def _fail_now(self, vehicle: int, action: str, message: str) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_exception(
            FleetError(vehicle, Reason.COMMAND_DENIED, message) if vehicle >= 0 else RuntimeError(message)
        )
        self._report(one_line(vehicle, action, message))
        return future

    def _report(self, line: str) -> None:
        log.warning("fleet: %s", line)
        self.failed.emit(line)

    def _record_states(self, snapshot: tuple[VehicleState, ...]) -> None:
        for state in snapshot:
            if self._recorded.get(state.vehicle) is not state:
                self._recorded[state.vehicle] = state
                self._record("record_state", state)

    def _record_plan(self, vehicle: int, plan: MissionPlan, sortie: int) -> None:
        if hasattr(self._recorder, "add_plan"):
            self._record("add_plan", vehicle, plan, sortie)

    def _record(self, method: str, *args: Any) -> None:
        recorder = self._recorder
        if recorder is None:
            return
        try:
            getattr(recorder, method)(*args)
        except Exception:  # a full disk must not stop the telemetry reaching the operator
            log.exception("fleet: the recorder's %s failed", method)


def one_line(vehicle: int, action: str, detail: str) -> str:
    who = "fleet" if vehicle < 0 else vehicle_name(vehicle)
    return f"{who}: {action}: {detail}"


__all__ = ["FleetController", "FleetEvent", "one_line"]
