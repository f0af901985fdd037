"""PublishToBus queues each frame's alerts, the evidence log's records (each once, across restarts) and
track news, tells the publisher the evidence head, and sends track updates live."""

from __future__ import annotations

import json

import pytest

from vision.bus.outbox import Outbox, OutboxFull
from vision.bus.sink import PublishToBus
from vision.bus.tracks import TrackEvent, TrackEventKind
from vision.camera import CameraPose
from vision.detections import Detection, Detections, ObjectClass
from vision.evidence import ZERO_SHA256, EvidenceLog
from vision.evidence_verify import read_records
from vision.pipeline import FrameResult


class FakePublisher:
    """Publisher's pipeline-facing half, without the network: puts go to a real outbox."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.frames = 0
        self.sent_detections: list[Detections] = []
        self.sent_poses: list[CameraPose | None] = []
        self.sent_tracks: list[TrackEvent] = []
        self.evidence_head = (0, ZERO_SHA256)

    def count_frame(self) -> None:
        self.frames += 1

    def put_alert(self, alert) -> None:
        self.outbox.put("alerts", json.dumps(alert.to_json_dict()).encode())

    def put_evidence(self, record, snapshot, mark) -> None:
        self.outbox.put("evidence", json.dumps([record.seq, snapshot is not None]).encode(), mark=mark)

    def publish_detections(self, detections: Detections, pose: CameraPose | None = None) -> None:
        self.sent_detections.append(detections)
        self.sent_poses.append(pose)

    def put_track(self, event: TrackEvent) -> None:
        self.outbox.put("tracks", json.dumps([event.kind.value, event.track_id]).encode())

    def publish_track(self, event: TrackEvent) -> None:
        self.sent_tracks.append(event)


def result(alerts=(), evidence_records=0, detections=(), time_s=0.0, pose=None) -> FrameResult:
    return FrameResult(
        0, time_s, Detections("cam1", time_s, 0, tuple(detections)), tuple(alerts), pose, 0, 0, 0, evidence_records
    )


def heads(directory) -> list[tuple[int, str]]:
    return [(r.seq, r.sha256) for _, r in read_records(directory)]


def queued(outbox: Outbox) -> list[tuple[str, object]]:
    return [(e.topic, json.loads(e.payload)) for e in outbox.peek(100)]


def test_alerts_and_new_evidence_are_queued_in_order_and_detections_sent(tmp_path, evidence_dir, alert, jpeg):
    with Outbox(tmp_path / "outbox") as box:
        publisher = FakePublisher(box)
        sink = PublishToBus(publisher, evidence_dir)  # the log's three records are queued at once
        with EvidenceLog.open(evidence_dir) as log:
            log.append("alert", {"n": 4}, snapshot_jpeg=jpeg(4), time_s=1_750_000_004)
        boat = Detection(ObjectClass.VESSEL, 0.9, (1.0, 2.0, 3.0, 4.0))

        sink(result([alert(4)], evidence_records=1, detections=[boat]), None)
        sink(result(), None)

        assert [(t, p if t == "evidence" else p["alert_id"]) for t, p in queued(box)] == [
            ("evidence", [1, True]),
            ("evidence", [2, False]),
            ("evidence", [3, True]),
            ("alerts", alert(4).alert_id),
            ("evidence", [4, True]),
        ]
        assert publisher.frames == 2
        assert [len(d) for d in publisher.sent_detections] == [1]


def test_a_restart_queues_what_was_kept_but_not_queued_and_nothing_twice(tmp_path, evidence_dir):
    with Outbox(tmp_path / "outbox") as box:
        PublishToBus(FakePublisher(box), evidence_dir)
        for entry in box.peek(100):
            box.ack(entry.id)
    # The unit died after KeepEvidence wrote record 4 and before PublishToBus saw it.
    with EvidenceLog.open(evidence_dir) as log:
        log.append("alert", {"n": 4}, time_s=1_750_000_004)

    with Outbox(tmp_path / "outbox") as box:
        PublishToBus(FakePublisher(box), evidence_dir)

        assert queued(box) == [("evidence", [4, False])]


def test_another_evidence_log_starts_from_its_first_record(tmp_path, evidence_dir):
    other = tmp_path / "other-run"
    with EvidenceLog.open(other) as log:
        log.append("alert", {"n": 1}, time_s=1_750_000_001)
    with Outbox(tmp_path / "outbox") as box:
        PublishToBus(FakePublisher(box), evidence_dir)
        PublishToBus(FakePublisher(box), other)

        assert [p for _, p in queued(box)] == [[1, True], [2, False], [3, True], [1, False]]


def test_the_publisher_is_told_the_head_of_what_is_queued_also_after_a_restart(tmp_path, evidence_dir):
    with Outbox(tmp_path / "outbox") as box:
        publisher = FakePublisher(box)
        PublishToBus(publisher, evidence_dir)
        assert publisher.evidence_head == heads(evidence_dir)[-1]
    with Outbox(tmp_path / "outbox") as box:
        publisher = FakePublisher(box)
        sink = PublishToBus(publisher, evidence_dir)  # nothing new to queue: the head is the one queued before
        assert len(box) == 3 and publisher.evidence_head == heads(evidence_dir)[-1]
        with EvidenceLog.open(evidence_dir) as log:
            log.append("alert", {"n": 4}, time_s=1_750_000_004)

        sink(result(evidence_records=1), None)

        assert publisher.evidence_head == heads(evidence_dir)[-1] and publisher.evidence_head[0] == 4


def test_without_evidence_the_head_stays_none(tmp_path):
    with Outbox(tmp_path / "outbox") as box:
        publisher = FakePublisher(box)
        PublishToBus(publisher)(result(), None)

        assert publisher.evidence_head == (0, ZERO_SHA256)


def test_a_record_the_full_outbox_refused_is_not_in_the_head_and_is_queued_next_time(tmp_path, evidence_dir):
    with Outbox(tmp_path / "outbox", max_entries=4) as box:
        publisher = FakePublisher(box)
        sink = PublishToBus(publisher, evidence_dir)
        with EvidenceLog.open(evidence_dir) as log:
            for n in (4, 5):
                log.append("alert", {"n": n}, time_s=1_750_000_000 + n)

        with pytest.raises(OutboxFull):
            sink(result(evidence_records=2), None)
        assert publisher.evidence_head == heads(evidence_dir)[3], "the head is record 4, the last one queued"

        box.max_entries = 10  # the broker took some: there is room again
        with EvidenceLog.open(evidence_dir) as log:
            log.append("alert", {"n": 6}, time_s=1_750_000_006)
        sink(result(evidence_records=1), None)

        assert [p[0] for _, p in queued(box)] == [1, 2, 3, 4, 5, 6]
        assert publisher.evidence_head == heads(evidence_dir)[-1]


def boat(track_id: int, x_m: float) -> Detection:
    return Detection(
        ObjectClass.VESSEL, 0.9, (1.0, 2.0, 3.0, 4.0), track_id, x_m=x_m, y_m=0.0, lat_deg=36.1, lon_deg=-5.4
    )


def test_track_news_is_queued_updates_go_live_and_close_ends_what_is_alive(tmp_path):
    with Outbox(tmp_path / "outbox") as box:
        publisher = FakePublisher(box)
        sink = PublishToBus(publisher)
        for i in range(25):  # boat 1 east at 5 m/s; boat 2 still, then gone
            items = [boat(1, 5.0 * i / 10)] + ([boat(2, 300.0)] if i < 5 else [])
            sink(result(detections=items, time_s=1_750_000_000 + i / 10), None)
        assert [p for _, p in queued(box)] == [["new", 1], ["new", 2]]
        assert [(e.kind, e.track_id) for e in publisher.sent_tracks] == [(TrackEventKind.UPDATE, 1)] * 2

        sink(result(time_s=1_750_000_003.5), None)  # boat 2 unseen for 3 s
        sink.close()

        assert [p for _, p in queued(box)] == [["new", 1], ["new", 2], ["end", 2], ["end", 1]]
        assert len(sink.track_events) == 0


def test_frames_without_detections_send_their_pose_twice_a_second(tmp_path):
    with Outbox(tmp_path / "outbox") as box:
        publisher = FakePublisher(box)
        sink = PublishToBus(publisher)
        pose = CameraPose(36.13, -5.43, 60.0)
        for i in range(20):  # 2 s of frames at 10 a second, nothing in sight
            sink(result(time_s=100.0 + i / 10, pose=pose), None)
        sink(result(time_s=102.0), None)  # no pose: nothing to send
        boat = Detection(ObjectClass.VESSEL, 0.9, (1.0, 2.0, 3.0, 4.0))
        sink(result(detections=[boat], time_s=102.05, pose=pose), None)  # detections: always

    assert [d.frame_time_s for d in publisher.sent_detections] == pytest.approx([100.0, 100.5, 101.0, 101.5, 102.05])
    assert publisher.sent_poses == [pose] * 5
