"""The simulator answers a ground station as real PX4 does, but for the reasoned differences in
docs/px4-conformance.md; and the comparison itself."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from sitl.px4_sitl.conformance import (
    Target,
    allowed_differences,
    compare,
    intermittent_differences,
    items_reached,
    rate_bucket,
    record,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "px4-conformance.md"
OUT = Path(__file__).resolve().parents[2] / "out" / "conformance"


@pytest.mark.parametrize(
    ("px4", "sim", "allowed", "expected"),
    [
        ({"a": "1"}, {"a": "1"}, [], []),
        ({"a": "1"}, {"a": "2"}, [], ["a: PX4 '1', simulator '2'"]),
        ({"a.b": "1"}, {"a.b": "2"}, ["a.*"], []),
        ({"a": "1"}, {}, [], ["a: PX4 '1', simulator '(not recorded)'"]),
        ({}, {"x": "1"}, [], ["x: PX4 '(not recorded)', simulator '1'"]),
    ],
)
def test_compare_lists_every_difference_no_pattern_allows(px4, sim, allowed, expected):
    assert compare(px4, sim, allowed) == expected


def test_the_documented_differences_are_a_short_reasoned_table():
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    patterns = allowed_differences(DOC)
    assert len(patterns) == len(rows) and 0 < len(patterns) <= 12
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 4 and len(cells[3]) > 40, f"every allowed difference says why: {row}"


@pytest.mark.parametrize(("hz", "bucket"), [(0.0, "absent"), (0.5, "<0.75 Hz"), (1.0, "0.75-3 Hz"), (50, ">40 Hz")])
def test_rates_are_recorded_as_orders_of_magnitude(hz, bucket):
    assert rate_bucket(hz) == bucket


MISSION = [(3, 22), (3, 16), (2, 178), (3, 16), (2, 177), (2, 20)]  # takeoff, wp, speed, wp, jump to 1, return


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        ([0, 0, 2, 3, 3, 2, 3, 5, 5], [0, 2, 3, 2, 5]),  # PX4 752ecd3d, one run: the last wp told before Return
        ([0, 2, 2, 3, 2, 5, 5, 5], [0, 2, 3, 2, 5]),  # the next run: Return told alone
        ([0, 1, 2, 3, 2, 3, 5], [0, 2, 3, 2, 5]),  # a wp told before the speed change that follows it
        ([0, 2, 3, 2, 3], [0, 2, 3, 2, 3]),  # nothing folds into a report that never came
        ([0, 3, 2], [0, 3, 2]),  # a report out of order is not hidden
    ],
)
def test_items_reached_fold_only_what_px4_itself_may_fold(reports, expected):
    assert items_reached(reports, MISSION) == expected


@pytest.mark.px4
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_simulator_answers_as_px4_does(px4_fleet, sim_fleet):
    px4 = px4_fleet(1, speed_factor=1)
    inst = px4.instances[0]
    px4_record = record(Target(inst.port, inst.system_id, inst.home))
    px4.stop()
    sim = sim_fleet(1, speed_factor=1).vehicles[0]
    sim_record = record(Target(sim.port, sim.system_id, sim.home))
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rec in (("px4", px4_record), ("sim", sim_record)):
        (OUT / f"{name}.json").write_text(json.dumps(rec, indent=1))

    assert px4_record["script"] == "ran to the end", px4_record["script"]
    assert len(px4_record) > 150, "the session recorded what PX4 answered"
    allowed = allowed_differences(DOC)
    problems = compare(px4_record, sim_record, allowed)
    assert not problems, "the simulator answers otherwise than PX4:\n" + "\n".join(problems)
    # The list stays short and true: every allowed difference is still one.
    differing = [k for k in px4_record if px4_record[k] != sim_record.get(k)]
    at_times = intermittent_differences(DOC)
    stale = [p for p in allowed if p not in at_times and not any(fnmatchcase(k, p) for k in differing)]
    assert not stale, f"docs/px4-conformance.md allows differences that are gone: {stale}"
