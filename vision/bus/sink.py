"""The pipeline's end of the bus: each frame's alerts, evidence and track events into the outbox, its detections out.

`PublishToBus` goes after `vision.sinks.KeepEvidence` in a pipeline's sinks. KeepEvidence
reports only how many records it kept (``FrameResult.evidence_records``), so the records
themselves are read back from the log as written, which is what the ground must receive to
hold the same hash chain. How far the log has been queued is an outbox mark, stored with each
record's put: records kept before a crash but never queued are queued at the next start. The
publisher is told the newest record queued (its ``evidence_head``), which its status reports.

Track events (`vision.bus.tracks.TrackEvents`) are made from each frame's tracked detections;
``close`` ends the tracks still alive, so a station does not keep them on its map.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

from vision.bus.publisher import Publisher
from vision.bus.tracks import TrackEvent, TrackEventKind, TrackEvents
from vision.evidence import LOG_NAME, SNAPSHOTS, ZERO_SHA256, EvidenceRecord
from vision.frames import Frame
from vision.pipeline import FrameResult

POSE_PERIOD_S = 0.5  # frames without detections: their pose, at most twice a second of frame time


class EvidenceTail:
    """The records appended to an evidence log since the last read, with their snapshots.

    ``head`` is the seq and sha256 of the newest record at or before ``after_seq`` read so far:
    passed over as handed on before, or handed on by this tail.
    """

    def __init__(self, directory: str | os.PathLike[str], after_seq: int = 0) -> None:
        self.directory = Path(directory)
        self.after_seq = after_seq
        self.head: tuple[int, str] = (0, ZERO_SHA256)
        self._offset = 0

    def new_records(self) -> Iterator[tuple[EvidenceRecord, bytes | None]]:
        try:
            with open(self.directory / LOG_NAME, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        # Only whole lines: the writer may be half-way through the next one.
        whole = data[: data.rfind(b"\n") + 1]
        for line in whole.splitlines(keepends=True):
            record = EvidenceRecord.from_json(json.loads(line))
            if record.seq > self.after_seq:
                snapshot = None
                if record.snapshot is not None:
                    snapshot = (self.directory / SNAPSHOTS / record.snapshot).read_bytes()
                yield record, snapshot
            # Past a record only once the reader comes back for the next: one it failed to
            # queue (a full outbox) is read again next time, not skipped.
            self._offset += len(line)
            self.after_seq = max(self.after_seq, record.seq)
            self.head = (record.seq, record.sha256)


class PublishToBus:
    """A pipeline sink: the frame's alerts, new evidence records and track news queued, its track updates
    and detections sent live. ``close`` when the stream ends.

    ``evidence_dir`` is the directory `KeepEvidence` writes to (None: no evidence to send);
    ``track_events`` what makes the track events, one per stream (a default `TrackEvents`).
    """

    def __init__(
        self,
        publisher: Publisher,
        evidence_dir: str | os.PathLike[str] | None = None,
        track_events: TrackEvents | None = None,
    ) -> None:
        self.publisher = publisher
        self.track_events = track_events if track_events is not None else TrackEvents()
        self._pose_sent_s = -math.inf
        self._tail: EvidenceTail | None = None
        if evidence_dir is not None:
            # Keyed by the log's path: another log (another run's folder) starts from its first record.
            self._mark = f"evidence_seq:{Path(evidence_dir).resolve()}"
            self._tail = EvidenceTail(evidence_dir, after_seq=publisher.outbox.mark(self._mark) or 0)
            self._queue_evidence()

    def __call__(self, result: FrameResult, frame: Frame) -> FrameResult:
        self.publisher.count_frame()
        for alert in result.alerts:
            self.publisher.put_alert(alert)
        if result.evidence_records:
            self._queue_evidence()
        self._send_tracks(self.track_events.update(result.detections))
        # Every frame with detections; the others at most twice a second, for the pose: what the ground
        # draws the area seen from.
        time_s = result.detections.frame_time_s
        if len(result.detections) or (result.pose is not None and time_s - self._pose_sent_s >= POSE_PERIOD_S):
            self._pose_sent_s = time_s
            self.publisher.publish_detections(result.detections, result.pose)
        return result

    def close(self) -> None:
        """End every track still alive (queued, as every ``end``); the publisher stays open."""
        self._send_tracks(self.track_events.close())

    def _send_tracks(self, events: list[TrackEvent]) -> None:
        for event in events:
            if event.kind is TrackEventKind.UPDATE:
                self.publisher.publish_track(event)
            else:
                self.publisher.put_track(event)

    def _queue_evidence(self) -> None:
        assert self._tail is not None
        try:
            for record, snapshot in self._tail.new_records():
                self.publisher.put_evidence(record, snapshot, mark=(self._mark, record.seq))
        finally:
            # The tail's head is the last record queued, now or (passed over) before a restart;
            # a record that failed to queue is not past it.
            if self._tail.head[0]:
                self.publisher.evidence_head = self._tail.head
