"""Decisions fixed before the test set is read: the stop point, the family, the built-in A/A check (no MLflow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apex.report.aa import aa_check, half_splits
from apex.report.collect import SweepData
from apex.report.compare import compare_all
from apex.report.config import ReportConfig
from apex.report.stops import choose_stop, display_stop, earliest_best

STOPS = (0.0, 0.5, 1.0)
N_QUERIES = 200


class FakeLoader:
    """Per-query tables by (run_id, step), as PerQueryLoader returns them."""

    def __init__(self, outcomes: dict[tuple[str, int], np.ndarray]) -> None:
        self.outcomes = outcomes
        self.missing: list[tuple[str, int]] = []

    def load(self, run_id: str, step: int) -> pd.DataFrame:
        first = self.outcomes[(run_id, step)]
        ids = [f"q{i:04d}" for i in range(first.size)]
        return pd.DataFrame({"query_id": ids, "gold_rank": np.where(first == 1, 1, 3)})


def make_sweep(val: dict[str, tuple[float, ...]], seeds: int = 3, rng_seed: int = 0) -> tuple[SweepData, FakeLoader]:
    """Cells `a` and `b` (the baseline), `seeds` seeds, outcomes drawn independently; `val` = val rank@1 by stop."""
    rng = np.random.default_rng(rng_seed)
    base = rng.uniform(size=N_QUERIES) < 0.8  # stop 0: the same base model in both arms
    runs, metrics, outcomes = [], [], {}
    for cell in ("a", "b"):
        for seed in range(seeds):
            run_id = f"{cell}{seed}"
            runs.append({"run_id": run_id, "cell": cell, "cell_label": f"arm={cell}", "seed": seed})
            for step, stop in enumerate(STOPS):
                y = base if stop == 0 else rng.uniform(size=N_QUERIES) < 0.8
                outcomes[(run_id, step)] = y.astype(int)
                row = {"run_id": run_id, "cell": cell, "seed": seed, "step": step, "stop_fraction": stop}
                row |= {"rank_at_1": y.mean(), "corpus_size": 1000.0, "n_queries": float(N_QUERIES)}
                metrics.append(row | {"val_rank_at_1": val[cell][step]})
    frame = pd.DataFrame(runs).assign(start_time=0, dataset_fingerprint="f")
    return SweepData(frame, pd.DataFrame(metrics), {r["run_id"]: {} for r in runs}), FakeLoader(outcomes)


def test_stop_choice_is_symmetric_and_swapping_arms_flips_the_difference() -> None:
    # The configuration alone would pick 0.5 (0.80 > 0.79); both arms combined pick 1.0 (0.78 vs 0.785).
    sweep, loader = make_sweep({"a": (0.7, 0.80, 0.79), "b": (0.7, 0.76, 0.78)})
    assert display_stop(sweep.metrics, "a")[0] == 0.5  # the one-sided choice the report no longer makes
    forward, backward = choose_stop(sweep.metrics, "a", "b", None), choose_stop(sweep.metrics, "b", "a", None)
    assert forward.stop == backward.stop == 1.0
    assert forward.basis == "val_rank_at_1 of both arms (shared seeds, equal weights), cross-fitted over seeds"
    config = ReportConfig(n_permutations=200)
    ab = compare_all(sweep, loader, {"a": "b"}, {"a": forward}, config, np.random.default_rng(0), []).table
    ba = compare_all(sweep, loader, {"b": "a"}, {"b": backward}, config, np.random.default_rng(0), []).table
    ab, ba = ab[ab["role"] == "primary"].iloc[0], ba[ba["role"] == "primary"].iloc[0]
    assert ab["diff"] == pytest.approx(-ba["diff"])
    assert ab["p_crossed"] == pytest.approx(ba["p_crossed"])
    assert (ab["ci_low"], ab["ci_high"]) == pytest.approx((-ba["ci_high"], -ba["ci_low"]))


def test_ties_survive_float_rounding_and_go_to_the_earlier_stop() -> None:
    # 0.1 + 0.2 != 0.3 in floating point: the same score summed in another order must still tie.
    assert 0.1 + 0.2 != 0.3
    assert earliest_best(np.array([1.0, 0.5]), np.array([0.1 + 0.2, 0.3])) == 1
    sweep, _ = make_sweep({"a": (0.5, 0.1 + 0.2, 0.3), "b": (0.5, 0.3, 0.2 + 0.1)})
    assert choose_stop(sweep.metrics, "a", "b", None).stop == 0.5
    assert display_stop(sweep.metrics, "a")[0] == 0.5


def test_step_zero_is_never_chosen_and_is_in_no_family() -> None:
    # Validation is best at step 0 (training hurt): still a trained stop is chosen.
    sweep, loader = make_sweep({"a": (0.9, 0.6, 0.7), "b": (0.9, 0.6, 0.6)})
    choice = choose_stop(sweep.metrics, "a", "b", None)
    assert choice.stop == 1.0
    fixed = choose_stop(sweep.metrics, "a", "b", 0.5)
    assert fixed.stop == 0.5 and "fixed in advance" in fixed.basis
    assert choose_stop(sweep.metrics, "a", "b", 0.25) is None  # a fixed stop the sweep never logged
    config = ReportConfig(n_permutations=200)
    result = compare_all(sweep, loader, {"a": "b"}, {"a": choice}, config, np.random.default_rng(0), [])
    table = result.table.set_index("stop_fraction")
    assert table.loc[0.0, "role"] == "zero-shot" and np.isnan(table.loc[0.0, "p_crossed"])
    assert np.isnan(table.loc[0.0, "p_crossed_holm"]) and table.loc[0.0, "verdict"] == "zero-shot"
    assert table.loc[0.5, "role"] == "exploratory" and np.isnan(table.loc[0.5, "p_crossed_holm"])
    assert table.loc[1.0, "role"] == "primary" and table.loc[1.0, "family_size"] == 1
    assert table.loc[1.0, "p_crossed_holm"] == pytest.approx(table.loc[1.0, "p_crossed"])  # one comparison
    assert result.mcnemar.loc[result.mcnemar["role"] != "primary", "p_mcnemar_holm"].isna().all()
    # m = 1: the adjusted interval is the unadjusted one (confidence 0.95 = 1 - alpha).
    assert table.loc[1.0, "ci_adj_low"] == pytest.approx(table.loc[1.0, "ci_low"])


def test_builtin_aa_check_splits_a_six_seed_baseline() -> None:
    splits = half_splits([5, 1, 3, 0, 2, 4], np.random.default_rng(0))
    assert splits[0] == ((0, 1, 2), (3, 4, 5))
    assert len(splits) == 10  # C(6, 3) / 2 distinct splits, none a mirror image of another
    assert len({frozenset(a) for a, _ in splits} | {frozenset(b) for _, b in splits}) == 20
    sweep, loader = make_sweep({"a": (0.5, 0.6, 0.7), "b": (0.5, 0.6, 0.7)}, seeds=6)
    stops = pd.DataFrame({"cell": ["b"], "stop_fraction": [1.0]})
    aa = aa_check(sweep, loader, ["b"], stops, ReportConfig(), np.random.default_rng(0))
    assert len(aa) == 10 and set(aa["cell"]) == {"b"}
    assert aa["p_crossed"].between(0, 1).all() and (aa["rejected"] == (aa["p_crossed"] <= 0.05)).all()
    few, few_loader = make_sweep({"a": (0.5, 0.6, 0.7), "b": (0.5, 0.6, 0.7)}, seeds=5)
    assert aa_check(few, few_loader, ["b"], stops, ReportConfig(), np.random.default_rng(0)).empty


def test_aa_section_states_the_count_and_what_to_expect() -> None:
    from types import SimpleNamespace

    from apex.report.markdown import _aa_table

    sweep, loader = make_sweep({"a": (0.5, 0.6, 0.7), "b": (0.5, 0.6, 0.7)}, seeds=6)
    stops = pd.DataFrame({"cell": ["b"], "stop_fraction": [1.0]})
    aa = aa_check(sweep, loader, ["b"], stops, ReportConfig(), np.random.default_rng(0))
    data = SimpleNamespace(aa=aa, meta={"labels": {"b": "arm=plain"}}, config=ReportConfig())
    text = _aa_table(data)
    assert "**arm=plain** at stop 1: seeds [0, 1, 2] against [3, 4, 5]" in text
    assert f"Over 10 half-splits the primary test rejected {int(aa['rejected'].sum())}" in text
    assert "about 0.5 expected" in text


def test_the_stop_fixed_in_the_sweep_config_is_read_from_the_runs_params() -> None:
    from apex.report.build import fixed_stop

    notes: list[str] = []
    logged = {"a": {"report.stop": "0.5"}, "b": {"report.stop": "0.5"}}
    assert fixed_stop(ReportConfig(), logged, notes) == 0.5 and not notes
    assert fixed_stop(ReportConfig(), {"a": {"report.stop": "null"}, "b": {}}, notes) is None  # symmetric choice
    assert fixed_stop(ReportConfig(stop=1.0), logged, notes) == 1.0  # --stop wins, and says so
    assert notes == ["--stop 1 overrides the sweep config's report.stop (0.5)"]
    mixed = {"a": {"report.stop": "0.5"}, "b": {"report.stop": "1.0"}}
    assert fixed_stop(ReportConfig(), mixed, notes) is None
    assert "different report.stop values (0.5, 1.0)" in notes[-1]
