"""A unit out of radio range for 30 s, then the broker restarted: the station still gets every
alert once and in order, and its copy of the unit's evidence is the onboard chain, head and all.

The unit is a process of its own, as onboard, raising an alert with its evidence record every
0.2 s through the pipeline's sink (`PublishToBus`), and reaches the broker only through a TCP
proxy; the station's `Receiver` connects directly. The cut is a silence, not a reset: nothing
passes and no socket closes, so the unit learns of it only by its keepalive, and whatever it
sent into the silence is lost on the way and must be sent again. The broker restart then
closes every link at once, and what the broker owed the station must survive in its
persistence.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from groundstation.link import identity as ids
from groundstation.link import pki
from groundstation.link.broker import Broker, free_port
from groundstation.link.receiver import Handlers, Receiver, station_endpoint
from tests.groundstation.link.tcp_proxy import Outage, TcpProxy
from vision.alerts import Alert
from vision.evidence import LOG_NAME, EvidenceLog, EvidenceRecord
from vision.evidence_verify import verify

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
SITE = "algeciras"
CUT_S = 30.0
WAIT_S = 15.0

# Unit 1 of algeciras with a 2 s keepalive: it notices a silent link within about 4 s.
ONBOARD = textwrap.dedent("""
    import json, select, sys, time
    from pathlib import Path
    from vision.alerts import Alert, AlertSeverity, RuleKind
    from vision.bus.outbox import Outbox
    from vision.bus.publisher import Endpoint, Publisher
    from vision.bus.sink import PublishToBus
    from vision.detections import Detections, ObjectClass
    from vision.evidence import EvidenceLog
    from vision.pipeline import FrameResult

    host, port, ca, cert, key, outbox_dir, evidence_dir, every_s, most_s = sys.argv[1:]
    endpoint = Endpoint(host, int(port), Path(ca), Path(cert), Path(key))
    with EvidenceLog.open(evidence_dir) as log, Outbox(outbox_dir) as box:
        unit = Publisher(endpoint, "algeciras", 1, box, keepalive_s=2, reconnect_s=(1, 2), status_every_s=1.0)
        sink = PublishToBus(unit, evidence_dir)
        unit.start()
        print("connected" if unit.wait_connected(10) else "not connected", flush=True)
        n, tick, deadline = 0, time.monotonic(), time.monotonic() + float(most_s)
        while time.monotonic() < deadline:
            now = time.time()
            alert = Alert(
                f"cam1:enter-anchorage-{n}", now, "", RuleKind.ENTER, "Anchorage", 4, AlertSeverity.HIGH,
                ObjectClass.VESSEL, n, 36.127, -5.4245, 1, f"vessel {n} entered Anchorage", "cam1",
            )
            jpeg = b"\\xff\\xd8" + n.to_bytes(4, "big") * 256 + b"\\xff\\xd9" if n % 2 == 0 else None
            log.append("alert", {"alert": alert.to_json_dict()}, snapshot_jpeg=jpeg, time_s=now)
            sink(FrameResult(n, now, Detections("cam1", now, n), (alert,), None, 0, 0, now, evidence_records=1), None)
            n += 1
            tick += float(every_s)
            # A line (or EOF) on stdin: the test has what it needs; stop raising alerts.
            if select.select([sys.stdin], [], [], max(0.0, tick - time.monotonic()))[0]:
                break
        drained = unit.wait_drained(30)
        print(json.dumps({"alerts": n, "drained": drained, "acked": unit.acked, "refused": unit.refused}), flush=True)
        unit.close()
""")


class Heard:
    """What the station's receiver hands on, with bounded waits."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self.evidence: list[EvidenceRecord] = []
        self.statuses: list[str] = []
        self.problems: list[str] = []
        self._changed = threading.Condition()
        self.handlers = Handlers(
            alert=lambda _u, a: self._add(self.alerts, a),
            evidence=lambda _u, r, _j: self._add(self.evidence, r),
            status=lambda v: self._add(self.statuses, v.state),
            problem=lambda line: self._add(self.problems, line),
        )

    def _add(self, into: list, item) -> None:
        with self._changed:
            into.append(item)
            self._changed.notify_all()

    def wait(self, done, within_s: float = WAIT_S) -> bool:
        with self._changed:
            return self._changed.wait_for(done, timeout=within_s)

    def last_seq(self) -> int:
        with self._changed:
            return self.evidence[-1].seq if self.evidence else 0


def onboard_records(directory: Path) -> list[EvidenceRecord]:
    """The records of the unit's log as far as written (the unit may be half-way through a line)."""
    try:
        data = (directory / LOG_NAME).read_bytes()
    except FileNotFoundError:
        return []
    return [EvidenceRecord.from_json(json.loads(line)) for line in data[: data.rfind(b"\n") + 1].splitlines()]


@pytest.fixture
def cleanup():
    """Whatever the test starts, stopped at its end whichever way it ends (proxies, receivers, processes)."""
    stops: list = []
    yield stops.append
    for stop in reversed(stops):
        stop()


def start_onboard(pki_dir: Path, proxy: TcpProxy, tmp_path: Path, cleanup, most_s: float) -> subprocess.Popen[str]:
    creds = pki.client_credentials(pki_dir, ids.unit(SITE, 1))
    args = [proxy.host, str(proxy.port), str(creds.ca), str(creds.cert), str(creds.key)]
    args += [str(tmp_path / "outbox"), str(tmp_path / "onboard"), "0.2", str(most_s)]
    proc = subprocess.Popen(
        [sys.executable, "-c", ONBOARD, *args], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    cleanup(lambda: (proc.kill(), proc.wait()))
    ready, _, _ = select.select([proc.stdout], [], [], WAIT_S)
    assert ready and proc.stdout.readline().strip() == "connected", "the unit did not connect through the proxy"
    return proc


def test_a_30_s_link_cut_and_a_broker_restart_lose_nothing_and_keep_the_chain(mosquitto, pki_dir, tmp_path, cleanup):
    state, port = tmp_path / "broker", free_port()
    heard = Heard()
    proxy = TcpProxy(("127.0.0.1", port), lifetime_s=150).start()
    cleanup(proxy.close)
    onboard, ground = tmp_path / "onboard", tmp_path / "ground"

    with Broker(pki_dir, state_dir=state, port=port):
        station = Receiver(
            station_endpoint(pki_dir, SITE, "127.0.0.1", port), SITE, client_id=f"station-{SITE}-outage",
            evidence_dir=ground, handlers=heard.handlers, reconnect_s=(1, 2),
        )  # fmt: skip
        cleanup(station.close)
        station.start()
        assert station.wait_connected(WAIT_S), heard.problems
        time.sleep(0.3)  # the SUBACK
        unit = start_onboard(pki_dir, proxy, tmp_path, cleanup, most_s=CUT_S + 40)
        assert heard.wait(lambda: len(heard.alerts) >= 10), "alerts do not flow before the cut"

        proxy.cut(Outage.SILENCE)
        cut_at = time.monotonic()
        assert heard.wait(lambda: "offline" in heard.statuses, 10.0), "the broker never gave up on the silent unit"
        through_the_cut = len(heard.alerts)
        time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
        assert len(heard.alerts) == through_the_cut, "alerts got through a cut link: the proxy did not cut it"
        raised_while_cut = onboard_records(onboard)[-1].seq
        proxy.restore()

        assert heard.wait(lambda: heard.last_seq() >= raised_while_cut and heard.statuses[-1] == "online"), (
            f"after the cut: {heard.last_seq()} of {raised_while_cut} evidence records arrived"
        )

    # Broker down: the unit keeps raising alerts into its outbox.
    time.sleep(2.0)
    raised_while_down = onboard_records(onboard)[-1].seq
    with Broker(pki_dir, state_dir=state, port=port):
        assert heard.wait(lambda: heard.last_seq() >= raised_while_down), (
            f"after the restart: {heard.last_seq()} of {raised_while_down} evidence records arrived"
        )
        time.sleep(1.0)  # a few alerts raised and sent on the restarted broker
        unit.stdin.write("stop\n")
        unit.stdin.flush()
        out, _ = unit.communicate(timeout=40)
        summary = json.loads(out.strip().splitlines()[-1])
        records = onboard_records(onboard)
        assert heard.wait(lambda: len(heard.alerts) >= summary["alerts"] and heard.last_seq() >= len(records)), (
            f"{len(heard.alerts)} of {summary['alerts']} alerts, {heard.last_seq()} of {len(records)} records arrived"
        )
        time.sleep(0.3)  # room for a late repeat to show, were one to get past the receiver

    assert summary["drained"] and summary["refused"] == 0, summary
    assert unit.returncode == 0
    raised = [r.payload["alert"]["alert_id"] for r in records]
    assert len(raised) == summary["alerts"] > (CUT_S + 5) / 0.2
    assert [a.alert_id for a in heard.alerts] == raised, "alerts missing, repeated or out of order"
    assert [r.seq for r in heard.evidence] == list(range(1, len(records) + 1))

    with EvidenceLog.open(onboard) as log:
        head = (log.last_seq, log.last_sha256)
    copy = verify(ground / "unit-1")
    assert copy.ok, copy.reason
    assert copy.records == len(records) and copy.snapshots_verified == (len(records) + 1) // 2
    assert (heard.evidence[-1].seq, heard.evidence[-1].sha256) == head
    assert station.units[1].evidence_copied == head
    assert (ground / "unit-1" / LOG_NAME).read_bytes() == (onboard / LOG_NAME).read_bytes()
    assert station.counters.malformed == 0 and station.counters.evidence_refused == 0
    print(
        f"{summary['alerts']} alerts and records; {station.counters.repeats} QoS 1 repeat(s) dropped by the station; "
        f"{proxy.accepted} connection(s) through the proxy"
    )
