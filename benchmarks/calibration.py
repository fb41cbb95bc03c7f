"""Calibration of the report's primary test, interval and verdict by simulation (apex.report.simulate).

For every cell of the grid seeds {3, 5, 10} × model-to-model sd {0, 0.5, 1, 2} points × seed-vs-seed disagreement
{3, 6, 15}% × queries {300, 1000}, with queries shared by every seed and arm and per-query arm effects, it prints:
the A/A false-positive rate of the crossed test (= the verdict's, for one comparison), that of the pooled McNemar
test (the old primary test, for contrast), the coverage of the 95% interval (A/A and planted effects together) and
the power at planted effects of 1, 2 and 3 points, each with its Monte Carlo standard error. The goal: false
positives <= alpha within Monte Carlo error and coverage >= 93% in every cell.

    python benchmarks/calibration.py                 # the full grid, 1000 sweeps per scenario
    python benchmarks/calibration.py --sims 200 --seeds 3 --rank1 0.64
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import numpy as np

from apex.report.simulate import Calibration, Regime, calibrate


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=1000, help="simulated sweeps per scenario (default 1000)")
    parser.add_argument("--seeds", type=_ints, default=[3, 5, 10])
    parser.add_argument("--model-sd", type=_floats, default=[0.0, 0.5, 1.0, 2.0], help="points of rank@1")
    parser.add_argument("--disagreement", type=_floats, default=[3.0, 6.0, 15.0], help="percent")
    parser.add_argument("--queries", type=_ints, default=[300, 1000])
    parser.add_argument("--rank1", type=float, default=0.84, help="the baseline's rank@1 (default 0.84)")
    parser.add_argument("--arm-query-ratio", type=float, default=1.0, help="per-query arm effect sd / seed noise sd")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--rng", type=int, default=2026)
    args = parser.parse_args()

    rng = np.random.default_rng(args.rng)
    started = time.perf_counter()
    header = "seeds  model_sd  disagree  queries |  FPR crossed   FPR pooled | coverage  | power 1pt  2pt    3pt"
    print(f"alpha = {args.alpha}, rank@1 = {args.rank1:.2f}, {args.sims} simulated sweeps per scenario")
    print(header)
    print("-" * len(header))
    worst_fpr: tuple[float, str] = (0.0, "")
    worst_cov: tuple[float, str] = (1.0, "")
    for seeds, sd, dis, queries in itertools.product(args.seeds, args.model_sd, args.disagreement, args.queries):
        regime = Regime(seeds, queries, args.rank1, dis / 100, sd / 100, args.arm_query_ratio)
        cal = calibrate(regime, args.sims, rng, args.alpha)
        se = Calibration.se(cal.false_positive, args.sims)
        label = f"{seeds:>5}  {sd:>8.1f}  {dis:>7.0f}%  {queries:>7}"
        power = "  ".join(f"{100 * p:5.1f}" for p in cal.power.values())
        print(
            f"{label} | {100 * cal.false_positive:5.1f} ±{100 * se:3.1f}  {100 * cal.pooled_false_positive:7.1f}"
            f"     | {100 * cal.coverage:5.1f} ±{100 * Calibration.se(cal.coverage, 4 * args.sims):3.1f}"
            f" | {power}",
            flush=True,
        )
        worst_fpr = max(worst_fpr, (cal.false_positive, label))
        worst_cov = min(worst_cov, (cal.coverage, label))
    bound = args.alpha + 2 * math.sqrt(args.alpha * (1 - args.alpha) / args.sims)
    print(f"\nworst FPR {100 * worst_fpr[0]:.1f}% at [{worst_fpr[1].strip()}] (alpha + 2 MC se = {100 * bound:.1f}%)")
    print(f"worst coverage {100 * worst_cov[0]:.1f}% at [{worst_cov[1].strip()}] (goal >= 93%)")
    print(
        "power columns: rejection rate at a true difference of 1, 2, 3 points;"
        f" MC se of a power figure <= {50 / math.sqrt(args.sims):.1f} points"
    )
    print(f"{time.perf_counter() - started:.0f} s (numpy, vectorised over sweeps)")


if __name__ == "__main__":
    main()
