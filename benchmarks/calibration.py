"""Calibration of the report's verdicts by simulation, one table per regime users meet (docs/report.md).

Regimes (two data models: apex.report.simulate's latent-threshold model and apex.report.regimes' Beta-difficulty,
logistic, t(3)-seed model):

1. equal arms, independent queries, 3-10 seeds (simulate.py): A/A false positives, coverage, power at 2 points;
2. clustered queries: 1, 2, 5 queries per relevant document (and overlapping documents), document-level share of
   the arm effect 0 / 0.3 / 0.7, rank@1 and a graded nDCG-like metric, 3 and 5 seeds; the same test without the
   clusters for contrast;
3. two seeds (both data models);
4. stop choice with unequal arms (seed counts 3 vs 5, 2 vs 5; model sd 2 vs 1, 3 vs 1, 3 vs 0.5 points): headline
   bias and false "better" of the report's cross-fitted rule, and of the old rule for contrast;
5. pilot-based power: 3-seed × 300-query pilots, model sd 0-2 points; when the plan promises >= 80%, how often the
   true power is >= 75% (target: >= 90% of pilots), for the upper-limit plan and the old point-estimate plan.

Every rate is printed with its Monte Carlo standard error; a regime passes when its worst A/A rate is <= alpha +
2 MC s.e., coverage >= 93%, bias <= 0.05 points, false "better" <= alpha / 2 + 2 MC s.e.

    python benchmarks/calibration.py              # every regime, 1,000 sweeps a cell (a few minutes on 2 cores)
    python benchmarks/calibration.py --sims 4000 --regimes clustered,two_seeds
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import numpy as np

from apex.report.regimes import (
    StopRegime,
    Sweep,
    aa_rates,
    plan_from_pilots,
    stop_choice_bias,
    stop_choice_false_better,
)
from apex.report.simulate import Regime, calibrate

REGIMES = ("equal", "clustered", "two_seeds", "stop", "pilot")


def _se(rate: float, n: int) -> float:
    return math.sqrt(max(rate * (1.0 - rate), 1e-12) / n)


def _verdict(worst: float, n: int, alpha: float, coverage: float) -> str:
    bound = alpha + 2 * _se(alpha, n)
    ok = worst <= bound and coverage >= 0.93
    return f"worst A/A {100 * worst:.1f}% ± {100 * _se(worst, n):.1f} (bound {100 * bound:.1f}%), min coverage " + (
        f"{100 * coverage:.1f}%: {'PASS' if ok else 'FAIL'}"
    )


def equal_arms(sims: int, alpha: float, rng: np.random.Generator) -> None:
    print("\n== 1. equal arms, independent queries (apex.report.simulate), rank@1 84%, 300 queries ==")
    print("seeds model_sd disagree |  A/A crossed     pooled | coverage | power 2pt")
    worst, cover = 0.0, 1.0
    for seeds, sd, dis in itertools.product((3, 5, 10), (0.0, 1.0, 2.0), (6.0, 15.0)):
        cal = calibrate(Regime(seeds, 300, 0.84, dis / 100, sd / 100), sims, rng, alpha, effects=(0.02,))
        fp = f"{100 * cal.false_positive:5.1f} ±{100 * _se(cal.false_positive, sims):.1f}"
        print(
            f"{seeds:>5} {sd:>8.1f} {dis:>7.0f}% | {fp} {100 * cal.pooled_false_positive:8.1f} | "
            f"{100 * cal.coverage:6.1f}   | {100 * cal.power[0.02]:5.1f}",
            flush=True,
        )
        worst, cover = max(worst, cal.false_positive), min(cover, cal.coverage)
    print(_verdict(worst, sims, alpha, cover))


def clustered(sims: int, alpha: float, rng: np.random.Generator) -> None:
    print("\n== 2. queries sharing relevant documents (apex.report.regimes), 300 queries, model sd 1 point ==")
    print("metric  seeds per_doc share  clusters units |  A/A report    no clusters | coverage")
    worst, cover = 0.0, 1.0
    cells = list(itertools.product((False, True), (3, 5), (1, 2, 5), (0.0, 0.3, 0.7), (False,)))
    cells += list(itertools.product((False, True), (3, 5), (5,), (0.7,), (True,)))
    for graded, seeds, per_doc, share, overlap in cells:
        design = Sweep(n_seeds=seeds, per_doc=per_doc, doc_share=share, graded=graded, overlap=overlap)
        rates = aa_rates(design, sims, rng, alpha)
        clusters = design.clusters()
        label = f"{'nDCG' if graded else 'rank@1':<7} {seeds:>5} {per_doc:>5}{'+o' if overlap else '  '} {share:>5.1f}"
        print(
            f"{label} {clusters.n_clusters:>9} {clusters.effective_units:>5.0f} | {100 * rates.false_positive:5.1f} "
            f"±{100 * rates.se(rates.false_positive):.1f}  {100 * rates.naive_false_positive:10.1f}  | "
            f"{100 * rates.coverage:6.1f}",
            flush=True,
        )
        worst, cover = max(worst, rates.false_positive), min(cover, rates.coverage)
    print("(+o: each query also needs a random second document: overlapping clusters, one connected component)")
    print(_verdict(worst, sims, alpha, cover))


def two_seeds(sims: int, alpha: float, rng: np.random.Generator) -> None:
    print("\n== 3. two paired seeds: critical value t(1) (both data models) ==")
    worst, cover = 0.0, 1.0
    for sd, dis in itertools.product((0.0, 1.0, 2.0), (6.0, 15.0)):
        cal = calibrate(Regime(2, 300, 0.84, dis / 100, sd / 100), sims, rng, alpha, effects=(0.02,))
        print(
            f"simulate.py model_sd {sd:.1f} disagree {dis:.0f}%: A/A {100 * cal.false_positive:.1f}%"
            f" ± {100 * _se(cal.false_positive, sims):.1f}, coverage {100 * cal.coverage:.1f}%",
            flush=True,
        )
        worst, cover = max(worst, cal.false_positive), min(cover, cal.coverage)
    for graded, per_doc, share, sd in itertools.product((False, True), (1, 5), (0.0, 0.7), (0.0, 0.02)):
        rates = aa_rates(Sweep(2, 300, per_doc, share, graded, sd), sims, rng, alpha)
        print(
            f"regimes.py {'nDCG' if graded else 'rank@1'} per_doc {per_doc} share {share} model_sd {100 * sd:.0f}:"
            f" A/A {100 * rates.false_positive:.1f}% ± {100 * rates.se(rates.false_positive):.1f},"
            f" coverage {100 * rates.coverage:.1f}%",
            flush=True,
        )
        worst, cover = max(worst, rates.false_positive), min(cover, rates.coverage)
    print(_verdict(worst, sims, alpha, cover))


def stop_choice(sims: int, alpha: float, rng: np.random.Generator) -> None:
    print("\n== 4. stop choice with unequal arms (3 stop points, A/A at every stop) ==")
    print("seeds A/B  sd A/B (pts) | bias report (pts)   old rule | false 'better' report   old rule")
    regimes = [
        StopRegime(3, 5, 0.02, 0.02),
        StopRegime(3, 5, 0.03, 0.03),
        StopRegime(2, 5, 0.02, 0.02),
        StopRegime(3, 3, 0.02, 0.01),
        StopRegime(3, 3, 0.03, 0.01),
        StopRegime(3, 3, 0.03, 0.005),
    ]
    worst_bias, worst_better = 0.0, 0.0
    n_bias = 100 * sims
    for regime in regimes:
        new, new_se, _ = stop_choice_bias(regime, n_bias, rng, cross_fit=True)
        old = stop_choice_bias(regime, n_bias, rng, cross_fit=False)[0]
        better = stop_choice_false_better(regime, sims, rng, alpha, cross_fit=True)
        better_old = stop_choice_false_better(regime, sims, rng, alpha, cross_fit=False)
        print(
            f"{regime.seeds_a:>5}/{regime.seeds_b:<3} {100 * regime.sd_a:>4.1f}/{100 * regime.sd_b:<4.1f}   |"
            f" {100 * new:+.3f} ± {100 * new_se:.3f}   {100 * old:+.3f} | {100 * better:.1f}% ± "
            f"{100 * _se(better, sims):.1f}         {100 * better_old:.1f}%",
            flush=True,
        )
        worst_bias, worst_better = max(worst_bias, abs(new)), max(worst_better, better)
    bound = alpha / 2 + 2 * _se(alpha / 2, sims)
    ok = worst_bias <= 0.0005 and worst_better <= bound
    print(
        f"worst |bias| {100 * worst_bias:.3f} points (bound 0.05; {n_bias:,} sweeps a row), worst false 'better' "
        f"{100 * worst_better:.1f}% (bound {100 * bound:.1f}%): {'PASS' if ok else 'FAIL'}"
    )


def pilot_power(sims: int, alpha: float, rng: np.random.Generator) -> None:
    print("\n== 5. power plans from realistic pilots (3 seeds × 300 queries) ==")
    designs, effects = [(3, 300), (5, 300), (5, 1000), (10, 1000), (10, 3000)], [0.01, 0.02, 0.03]
    pilots = max(50, sims // 8)
    print(f"{pilots} pilots per row; designs (seeds, queries) {designs}; effects 1, 2, 3 points")
    print("model_sd | plan          promises>=80% | pilots whose every >=80% promise has true power >= 75%")
    ok = True
    for sd in (0.0, 0.01, 0.02):
        out = plan_from_pilots(sd, pilots, designs, effects, rng, alpha)
        true = np.broadcast_to(out["true"], out["upper"].shape)
        for key in ("upper", "point"):
            held = float(np.all((out[key] < 0.8) | (true >= 0.75), axis=(1, 2)).mean())
            label = "upper limits" if key == "upper" else "point (old)"
            print(
                f"{100 * sd:8.0f} | {label:<13} {int((out[key] >= 0.8).sum()):>12} | {100 * held:5.1f}% "
                f"± {100 * _se(held, pilots):.1f}",
                flush=True,
            )
            ok &= key != "upper" or held >= 0.9
    print(f"target (>= 90% of pilots keep every promise): {'PASS' if ok else 'FAIL'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=1000, help="simulated sweeps per cell (default 1000)")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--regimes", default=",".join(REGIMES), help=f"comma-separated subset of {','.join(REGIMES)}")
    parser.add_argument("--rng", type=int, default=2026)
    args = parser.parse_args()
    rng = np.random.default_rng(args.rng)
    started = time.perf_counter()
    runs = {
        "equal": equal_arms,
        "clustered": clustered,
        "two_seeds": two_seeds,
        "stop": stop_choice,
        "pilot": pilot_power,
    }
    print(f"alpha = {args.alpha}, {args.sims} simulated sweeps per cell")
    for name in args.regimes.split(","):
        runs[name.strip()](args.sims, args.alpha, rng)
    print(f"\n{time.perf_counter() - started:.0f} s (numpy, vectorised over sweeps; a shared 2-core machine)")


if __name__ == "__main__":
    main()
