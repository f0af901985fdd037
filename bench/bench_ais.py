"""Dark vessels and lying positions: the AIS watch scored against the synthetic world's ground truth.

Three scenarios (seeds 1-3) over the Algeciras site: 26 vessels crossing the watch zones, 4 of them
dark and 3 spoofing, their AIS sent at AIS's real rates over real UDP to the station's feed, a camera
hovering over each part of every watch zone (see sitl.synthetic.ais_score: detections are the
world's vessels with 3 m of noise, seen 9 frames in 10, so the figures measure matching and rules).
Printed: right bindings, dark-vessel recall and precision, spoofed-position recall, the time from a
dark vessel's first chance to be called dark to its alert, and the watch's cost per frame against
the alert rules' in the same run.

Goals (issue 16): ≥ 95 % right bindings, dark recall ≥ 90 % with precision ≥ 95 %, spoof recall ≥ 90 %.
"""

from __future__ import annotations

import time

import numpy as np

from missions.formats import BUNDLED_SITES, load_site
from sitl.synthetic.ais_score import AisScore, score_ais

SEEDS = (1, 2, 3)
MINUTES = 15.0


def main() -> int:
    site = load_site(BUNDLED_SITES / "algeciras-port.geojson")
    scores: list[AisScore] = []
    started = time.perf_counter()
    for seed in SEEDS:
        score = score_ais(site, seed=seed, minutes=MINUTES, density=2.0, dark=4, spoof=3)
        scores.append(score)
        for line in score.lines():
            print(f"  {line}")
    total = AisScore(0, sum(s.vessels for s in scores), sum(s.dark for s in scores), sum(s.spoof for s in scores))
    for name in ("fixes_scored", "fixes_right", "fixes_wrong", "dark_expected", "dark_alerted", "dark_alerts",
                 "dark_alerts_right", "spoof_expected", "spoof_alerted", "frames", "watch_s", "rules_s"):  # fmt: skip
        setattr(total, name, sum(getattr(s, name) for s in scores))
    total.dark_delays_s = [d for s in scores for d in s.dark_delays_s]
    total.dark_times_s = [d for s in scores for d in s.dark_times_s]
    print(f"all {len(SEEDS)} scenarios ({len(SEEDS) * MINUTES:g} simulated minutes in "
          f"{time.perf_counter() - started:.0f} s):")  # fmt: skip
    for line in total.lines()[1:]:
        print(f"  {line}")
    goals = {
        "right bindings ≥ 95 %": total.right_bindings >= 0.95,
        "dark recall ≥ 90 %": total.dark_recall >= 0.90,
        "dark precision ≥ 95 %": total.dark_precision >= 0.95,
        "spoof recall ≥ 90 %": total.spoof_recall >= 0.90,
    }
    delays = np.array(total.dark_delays_s)
    if delays.size:
        print(f"  dark vessel alerted {np.median(delays):.1f} s (median) after the zone's limit")
    for goal, met in goals.items():
        print(f"  goal {goal}: {'met' if met else 'NOT MET'}")
    return 0 if all(goals.values()) else 1
