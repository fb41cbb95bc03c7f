"""Queries that share relevant documents, two-seed tests, the base-model words, pooling across corpora."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from apex.report.basemodel import standing
from apex.report.build import primary_metric
from apex.report.clusters import QueryClusters
from apex.report.config import ReportConfig
from apex.report.crossed import cochran_cox_critical, crossed_mean
from apex.report.headline import base_words
from apex.report.pool import pool
from apex.report.stops import choose_stop


def test_clusters_from_relevant_documents_link_queries_that_share_one() -> None:
    clusters = QueryClusters.from_relevant(["d1\td2", "d2", "d3", "d4\td1", "d5"])
    assert clusters.n_clusters == 3  # {q0, q1, q3} via d1/d2, {q2}, {q4}
    assert clusters.largest == 3
    dense = clusters.links.toarray()
    assert dense[0, 1] == dense[0, 3] == 1 and dense[1, 3] == 0  # q1 and q3 share nothing directly
    assert clusters.effective_units == pytest.approx(25 / dense.sum())


def test_independent_queries_give_the_unclustered_test_exactly() -> None:
    d = np.random.default_rng(0).normal(size=(3, 40))
    plain, linked = crossed_mean(d), crossed_mean(d, QueryClusters.from_relevant([f"d{i}" for i in range(40)]))
    assert linked.pvalue() == pytest.approx(plain.pvalue(), abs=1e-12)
    assert linked.var_query_stage == pytest.approx(plain.var_query_stage)


def test_cluster_robust_query_stage_matches_a_brute_force_sandwich() -> None:
    rng = np.random.default_rng(1)
    d = rng.normal(size=(4, 30)) + np.repeat(rng.normal(size=10), 3)  # 10 documents of 3 queries
    clusters = QueryClusters.from_groups(np.arange(30) // 3)
    result = crossed_mean(d, clusters)
    b = d.mean(axis=0) - d.mean()
    links = (np.arange(30)[:, None] // 3) == (np.arange(30)[None, :] // 3)
    quad = sum(b[i] * b[j] for i in range(30) for j in range(30) if links[i, j])
    s, q = d.shape
    resid = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + d.mean()
    ms_resid = np.sum(resid**2) / ((s - 1) * (q - 1))
    assert float(result.var_query_stage) == pytest.approx(max(quad / (q * (q - 1)) - ms_resid / (s * q), 0.0))
    assert result.query_units == pytest.approx(10.0)  # equal disjoint groups: one unit per document


def test_two_seeds_use_the_seed_stage_t_whatever_the_weights() -> None:
    t1 = stats.t.ppf(0.975, 1)
    for seed_stage in (0.0, 1e-6, 1.0):
        assert float(cochran_cox_critical(np.float64(seed_stage), np.float64(1.0), 2, 300, 0.05)) == pytest.approx(t1)
    assert float(cochran_cox_critical(np.float64(0.0), np.float64(1.0), 3, 300, 0.05)) == pytest.approx(
        stats.t.ppf(0.975, 299)
    )


def test_primary_metric_comes_from_the_flag_the_runs_or_the_dataset() -> None:
    notes: list[str] = []
    beir = {"a": {"dataset.name": "beir"}, "b": {"dataset.name": "beir"}}
    assert primary_metric(ReportConfig(), beir, notes)[0] == "ndcg_at_10"
    assert primary_metric(ReportConfig(), {"a": {"dataset.name": "squad"}}, notes)[0] == "rank_at_1"
    logged = {k: v | {"report.metric": "mrr_at_10"} for k, v in beir.items()}
    assert primary_metric(ReportConfig(), logged, notes) == ("mrr_at_10", "report.metric, fixed with the sweep")
    assert primary_metric(ReportConfig(metric="rank_at_1"), logged, notes)[0] == "rank_at_1"
    assert "overrides the sweep config's report.metric" in notes[-1]


def test_cross_fitted_stops_leave_each_seed_out() -> None:
    # Seed 0 alone makes stop 0.5 best; without it (seeds 1, 2) stop 1.0 wins, and vice versa.
    rows = []
    val = {0: (0.9, 0.5), 1: (0.5, 0.6), 2: (0.5, 0.6)}
    for cell in ("a", "b"):
        for seed, (half, full) in val.items():
            for step, (stop, v) in enumerate(((0.0, 0.4), (0.5, half), (1.0, full))):
                rows.append({"cell": cell, "seed": seed, "step": step, "stop_fraction": stop, "val_rank_at_1": v})
    choice = choose_stop(pd.DataFrame(rows), "a", "b", None)
    assert choice.stop == 0.5  # all seeds: (0.9 + 0.5 + 0.5) / 3 = 0.633 > 0.6
    assert choice.seed_stops == {0: 1.0, 1: 0.5, 2: 0.5}
    assert not choice.agrees


def _arm(diff: float, p_holm: float) -> dict[str, object]:
    return {"diff": diff, "p_crossed_holm": p_holm, "n_seeds": 3, "mean_cell": 0.43 + diff, "mean_baseline": 0.433}


def test_base_model_words_say_where_both_arms_stand() -> None:
    assert standing(_arm(-0.01, 0.01), 0.05) == "below"
    assert standing(_arm(0.01, 0.01), 0.05) == "above"
    assert standing(_arm(0.01, 0.2), 0.05) == "unmoved"
    for a, b, words in (
        (_arm(-0.01, 0.01), _arm(-0.02, 0.001), "Both arms are below the base model"),
        (_arm(0.01, 0.2), _arm(-0.001, 0.9), "Neither arm moved the base model"),
        (_arm(0.02, 0.01), _arm(0.0, 0.9), "apex **beats it**, plain is not distinguishable from it"),
    ):
        base = pd.DataFrame([{"cell": "x", **a}, {"cell": "y", **b}]).assign(ci_adj_low=-0.01, ci_adj_high=0.01)
        data = SimpleNamespace(
            base=base,
            meta={"labels": {"x": "apex", "y": "plain"}, "metric": "ndcg_at_10"},
            config=ReportConfig(),
        )
        text = base_words(data, "x", "y")
        assert words in text
        assert "The base model (step 0, zero-shot) scores 0.433" in text


def test_pooling_matches_statsmodels_random_effects_with_hartung_knapp() -> None:
    from statsmodels.stats.meta_analysis import combine_effects

    y, v = np.array([0.01, 0.03, -0.01, 0.02]), np.array([1e-4, 2e-4, 1.5e-4, 0.5e-4])
    ours = pool(y, v)
    theirs = combine_effects(y, v, method_re="dl", use_t=True)
    assert ours.estimate == pytest.approx(theirs.mean_effect_re)
    assert ours.tau2 == pytest.approx(theirs.tau2)
    assert ours.se == pytest.approx(theirs.sd_eff_w_re_hksj)
    with pytest.raises(ValueError):
        pool(y[:1], v[:1])
