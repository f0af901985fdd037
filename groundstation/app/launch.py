"""Opening the window: the Qt application, its settings, the main window, and how it ends.

`borderwatch gui` and `borderwatch demo --gui` both come through here, so that Qt stays in
`groundstation.app`: the commands and the demo hand over what to open, never a widget.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication

from groundstation.app.demo_driver import DemoConsole, DemoDriver, DemoOutcome, DemoSteps
from groundstation.app.main_window import MainWindow
from groundstation.app.settings import RUNS_DIR_KEY, app_settings
from groundstation.app.station_link import BusConfig, BusInfo
from groundstation.app.tiles import TileSource
from groundstation.app.video_panel import StreamConfig

SIGNAL_POLL_MS = 200  # Qt's loop runs C++; a timer lets Python see Ctrl-C this often


@dataclass(frozen=True)
class WindowOptions:
    settings: str | None = None  # an .ini file for settings and layout; the user's own by default
    runs_dir: str | None = None  # where run folders are recorded
    tiles: TileSource | None = None  # None: online tiles when the network answers
    quit_after_s: float | None = None  # close the window this long after it opened (or after the demo ends)
    screenshot: str | None = None  # saved just before that
    midway: tuple[float, str] | None = None  # (seconds, png): the window saved that long after it opened
    bus: BusConfig | None = None  # the event bus onboard units publish on; None: the station hears no units
    cot_urls: tuple[str, ...] | None = None  # TAK destinations for this session (--cot); None: the app's setting


@dataclass(frozen=True)
class Opening:
    """What the window opens with: a site, a fleet to connect, video streams to watch, a recorded run, AIS."""

    site: str | None = None
    connect: Sequence[str] = ()
    streams: Sequence[StreamConfig] = field(default_factory=tuple)
    run: str | None = None
    ais: str | None = None  # an AIS source (udp://, tcp://, an .nmea log), read over the site's map


def tile_source(text: str) -> TileSource:
    """A --tiles argument: an .mbtiles file, a tile folder or a URL template; ValueError naming it otherwise."""
    if "://" in text and "{z}" in text:
        return TileSource.online(text, "")
    path = Path(text)
    if path.is_dir():
        return TileSource.folder(path)
    if path.suffix.lower() == ".mbtiles" and path.is_file():
        return TileSource.mbtiles(path)
    raise ValueError(f"{text}: expected an .mbtiles file, a tile folder or a URL with {{z}}/{{x}}/{{y}}")


def run_window(options: WindowOptions, opening: Opening = Opening()) -> int:
    """The app until its window is closed."""
    app, window = _open(options)
    with _closed_by_signals(window):
        window.link.started.connect(_say_bus)
        window.link.problem.connect(lambda line: print(f"event bus: {line}", file=sys.stderr, flush=True))
        if opening.site:
            window.open_site(opening.site)
        if opening.ais:
            window.open_ais(opening.ais)  # before the streams, so that their pipelines start with it
        if opening.connect:
            window.connect_fleet(list(opening.connect))
        for stream in opening.streams:
            window.add_stream(stream)
        if opening.run:
            window.open_run(opening.run)
        if options.quit_after_s is not None:
            QTimer.singleShot(int(options.quit_after_s * 1000), lambda: _close(window, options.screenshot))
        _midway(window, options)
        if window.isVisible():  # a signal may have closed it already
            app.exec()
    return 0


def drive_demo(
    options: WindowOptions,
    steps: DemoSteps,
    console: DemoConsole,
    outcome: DemoOutcome,
    on_finished: Callable[[], None],
) -> bool:
    """The demo driven through the window (see DemoDriver), filling `outcome`; `on_finished` is
    called when every drone is down and the report is written. True when it got that far, False
    when the window was closed first. Ctrl-C or SIGTERM close the window and raise KeyboardInterrupt
    once everything the window started is stopped."""
    app, window = _open(options)
    driver = DemoDriver(window, steps, console, outcome)
    finished: list[bool] = []

    def done() -> None:
        finished.append(True)
        on_finished()
        if options.quit_after_s is not None:
            QTimer.singleShot(int(options.quit_after_s * 1000), lambda: _close(window, options.screenshot))
        else:
            console.say("close the window to end the demo")

    driver.finished.connect(done)
    interrupted: list[bool] = []

    def on_interrupt(*_: object) -> None:
        # Raising here, as the terminal demo does, would raise inside a Qt slot and abort the process.
        interrupted.append(True)
        driver.stop()
        window.close()

    previous = {sig: signal.signal(sig, on_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    ticker = QTimer()
    ticker.timeout.connect(lambda: None)
    ticker.start(SIGNAL_POLL_MS)
    _midway(window, options)
    try:
        QTimer.singleShot(0, driver.start)
        app.exec()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        ticker.stop()
        driver.stop()
        window.close()  # stops the fleet link, the streams and the recording before the simulator goes
    if interrupted:
        raise KeyboardInterrupt
    return bool(finished)


def _open(options: WindowOptions) -> tuple[QApplication, MainWindow]:
    os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox" if _is_root() else "")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("borderwatch")
    settings = app_settings(options.settings)
    if options.runs_dir:
        settings.setValue(RUNS_DIR_KEY, str(options.runs_dir))
    window = MainWindow(settings, tiles=options.tiles, probe_online_tiles=options.tiles is None, bus=options.bus,
                        cot_urls=options.cot_urls)  # fmt: skip
    window.show()
    return app, window


@contextlib.contextmanager
def _closed_by_signals(window: MainWindow) -> Iterator[None]:
    """Ctrl-C and SIGTERM close the window as its Quit does, so that what it started (the fleet link,
    the streams, the bus's own broker) stops with it rather than outliving a killed process."""
    previous = {sig: signal.signal(sig, lambda *_: window.close()) for sig in (signal.SIGINT, signal.SIGTERM)}
    ticker = QTimer()
    ticker.timeout.connect(lambda: None)
    ticker.start(SIGNAL_POLL_MS)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        ticker.stop()
        window.close()


def _say_bus(info: BusInfo) -> None:
    """On the terminal too, where whoever starts the units can copy it."""
    print(info, flush=True)
    if info.embedded:
        for n in range(1, info.units + 1):
            print(f"  unit {n}: borderwatch onboard … {info.onboard_args(n)}", flush=True)


def _midway(window: MainWindow, options: WindowOptions) -> None:
    if options.midway is not None:
        seconds, png = options.midway
        QTimer.singleShot(int(seconds * 1000), lambda: _save(window, png))


def _save(window: MainWindow, screenshot: str) -> None:
    Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(screenshot)


def _close(window: MainWindow, screenshot: str | None) -> None:
    if screenshot:
        _save(window, screenshot)
    window.close()


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
