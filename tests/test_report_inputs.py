"""Options, baseline matching and per-query input checks of apex.report."""

from __future__ import annotations

import numpy as np
import pytest

from apex.core.errors import InputError
from apex.report.baseline import cell_params, match_baselines
from apex.report.collect import parse_per_query, per_query_values
from apex.report.compare import classify
from apex.report.config import DEFAULT_TRACKING_URI, BaselineSpec, ReportConfig, ReportConfigError
from apex.report.markdown import verdict
from apex.report.select import redact_uri
from apex.report.tables import latex_escape

# --- options ---------------------------------------------------------------------------------------------------


def test_baseline_spec_parse_and_match() -> None:
    spec = BaselineSpec.parse(" erm.name=none , sampler.name=in_batch ")
    assert spec.values == (("erm.name", "none"), ("sampler.name", "in_batch"))
    assert spec.groups == {"erm", "sampler"}
    assert spec.matches({"erm.name": "none", "sampler.name": "in_batch", "seed": "1"})
    assert not spec.matches({"erm.name": "none", "sampler.name": "random"})
    assert str(spec) == "erm.name=none,sampler.name=in_batch"
    for bad in ("", "erm.name", "erm.name=", "=none", "a=1,a=2"):
        with pytest.raises(ReportConfigError):
            BaselineSpec.parse(bad)


def test_config_defaults_env_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = ReportConfig.from_cfg({"tracking_uri": None, "baseline": None})
    assert config.tracking_uri == DEFAULT_TRACKING_URI
    assert str(config.baseline) == "erm.name=none,sampler.name=in_batch"
    assert config.n_permutations == 10000 and config.alpha == 0.05 and config.stop is None
    assert ReportConfig.from_cfg({"stop": 0.5}).stop == 0.5
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert ReportConfig.from_cfg({}).tracking_uri == "http://127.0.0.1:5000"
    assert ReportConfig.from_cfg({"tracking_uri": "sqlite:///x.db"}).tracking_uri == "sqlite:///x.db"
    assert ReportConfig.from_cfg({"ignore_params": "seed, a.*"}).ignore_params == ("seed", "a.*")
    bad_options = [
        {"n_permutations": 10},
        {"n_permutations": 2.5},
        {"n_boot": 2000},  # gone with the hierarchical bootstrap: an unknown option now
        {"stop": 0.0},  # step 0 is the base model: never a stop point to judge at
        {"stop": 1.5},
        {"stop": True},
        {"alpha": 1.5},
        {"confidence": 0},
        {"seed": -1},
        {"sweep": "x", "filter": "y"},
        {"name": "a/b"},
        {"filter": "  "},
        {"colour": "red"},
    ]
    for bad in bad_options:
        with pytest.raises(ReportConfigError):
            ReportConfig.from_cfg(bad)


# --- baseline matching ------------------------------------------------------------------------------------------


def _params(erm: str, sampler: str, lr: str = "0.0001", **extra: str) -> dict[str, str]:
    return {"erm.name": erm, "sampler.name": sampler, "training.lr": lr, "seed": "0", **extra}


IGNORE = ReportConfig().ignore_params


def test_plain_text_baseline_matches_same_sampler_and_ignores_paths() -> None:
    cells = {
        "base_ma": _params("none", "model_aware", **{"hydra.run.dir": "a", "tracking.uri": "x"}),
        "base_ib": _params("none", "in_batch"),
        "erm_ma": _params("spacy", "model_aware", **{"hydra.run.dir": "b", "data.cache_dir": "c"}),
        "erm_rand": _params("spacy", "random"),
        "erm_ma_lr": _params("spacy", "model_aware", lr="0.0002"),
    }
    cells["base_ma"]["data.cache_dir"] = "elsewhere"  # a path: ignored
    match = match_baselines(cells, BaselineSpec.parse("erm.name=none"), IGNORE)
    assert match.baselines == ["base_ib", "base_ma"]
    assert match.pairs == {"erm_ma": "base_ma"}
    assert set(match.unmatched) == {"erm_rand", "erm_ma_lr"}


def test_two_arm_and_sampling_ablation_specs() -> None:
    cells = {
        "base_ib": _params("none", "in_batch"),
        "none_ma": _params("none", "model_aware"),
        "erm_ma": _params("spacy", "model_aware", **{"erm.model": "gpt"}),
        "erm_rand": _params("spacy", "random"),
    }
    two_arm = match_baselines(cells, BaselineSpec.parse("erm.name=none,sampler.name=in_batch"), IGNORE)
    assert two_arm.pairs == {"erm_ma": "base_ib", "erm_rand": "base_ib", "none_ma": "base_ib"}
    ablation = match_baselines(cells, BaselineSpec.parse("sampler.name=random"), IGNORE)
    # The sampler group may differ; the erm group (name and model) must be equal.
    assert ablation.pairs == {}
    assert "no cell with sampler.name=random" in ablation.unmatched["erm_ma"]
    cells["erm_rand"]["erm.model"] = "gpt"
    assert match_baselines(cells, BaselineSpec.parse("sampler.name=random"), IGNORE).pairs == {"erm_ma": "erm_rand"}


def test_ambiguous_baseline_is_reported_not_guessed() -> None:
    cells = {
        "none_a": _params("none", "model_aware", **{"erm.backend": "a"}),
        "none_b": _params("none", "model_aware", **{"erm.backend": "b"}),
        "erm": _params("spacy", "model_aware"),
    }
    match = match_baselines(cells, BaselineSpec.parse("erm.name=none"), IGNORE)
    assert match.pairs == {}
    assert "2 cells" in match.unmatched["erm"]
    precise = match_baselines(cells, BaselineSpec.parse("erm.name=none,erm.backend=b"), IGNORE)
    assert precise.pairs == {"erm": "none_b", "none_a": "none_b"}  # none_a is no longer a baseline itself


def test_cell_params_drop_keys_that_differ_between_seeds() -> None:
    shared, differing = cell_params(
        [_params("none", "x", **{"hydra.run.dir": "a", "odd": "1"}), _params("none", "x", **{"hydra.run.dir": "b"})],
        IGNORE,
    )
    assert differing == ["odd"]
    assert "odd" not in shared and shared["erm.name"] == "none"


# --- per-query tables -----------------------------------------------------------------------------------------------


def test_parse_per_query_and_values() -> None:
    payload = {"columns": ["query_id", "gold_rank", "top_doc"], "data": [[7, 3, "d"], ["001", 1, "d"], [2, 12, "d"]]}
    table = parse_per_query(payload, "runs:/r/per_query/step_000000.json")
    assert table["query_id"].tolist() == ["001", "2", "7"]  # strings, sorted
    values = per_query_values(table)
    np.testing.assert_allclose(values["rank_at_1"], [1, 0, 0])
    np.testing.assert_allclose(values["recall_at_5"], [1, 0, 1])
    np.testing.assert_allclose(values["recall_at_10"], [1, 0, 1])
    np.testing.assert_allclose(values["mrr_at_10"], [1, 0, 1 / 3])
    np.testing.assert_allclose(values["ndcg_at_10"], [1, 0, 0.5])  # 1 / log2(1 + 3)


def test_metric_columns_written_by_eval_win_over_derived_values() -> None:
    # Two relevant documents, one found in the top 5: recall@5 is 0.5, not the 1 derived from the best rank.
    payload = {
        "columns": ["query_id", "gold_rank", "rank_at_1", "recall_at_5", "n_relevant"],
        "data": [["a", 2, 0, 0.5, 2], ["b", 1, 1, 1.0, 1]],
    }
    values = per_query_values(parse_per_query(payload, "x.json"))
    np.testing.assert_allclose(values["recall_at_5"], [0.5, 1.0])
    np.testing.assert_allclose(values["rank_at_1"], [0, 1])
    np.testing.assert_allclose(values["mrr_at_10"], [0.5, 1.0])  # no column: derived
    payload["data"][0][3] = 1.5
    with pytest.raises(InputError) as caught:
        parse_per_query(payload, "x.json")
    assert caught.value.field == "recall_at_5" and caught.value.record == "query_id a"


@pytest.mark.parametrize(
    ("payload", "field", "record"),
    [
        ({"columns": ["query_id"], "data": [["a"]]}, "gold_rank", None),
        ({"columns": ["query_id", "gold_rank"], "data": [["a", 1], ["b", 0]]}, "gold_rank", "query_id b"),
        ({"columns": ["query_id", "gold_rank"], "data": [["a", 1], ["b", None]]}, "gold_rank", "query_id b"),
        ({"columns": ["query_id", "gold_rank"], "data": [["a", 1], ["a", 2]]}, "query_id", "a"),
        (["not", "a", "table"], None, None),
    ],
)
def test_parse_per_query_rejects_bad_tables(payload: object, field: str | None, record: str | None) -> None:
    with pytest.raises(InputError) as caught:
        parse_per_query(payload, "runs:/r/per_query/step_000050.json")
    assert caught.value.file == "runs:/r/per_query/step_000050.json"
    assert caught.value.field == field
    assert caught.value.record == record


# --- output hygiene ---------------------------------------------------------------------------------------------------


def test_tracking_uri_loses_credentials() -> None:
    assert redact_uri("http://alice:s3cret@mlflow.internal:5000/x") == "http://mlflow.internal:5000/x"
    assert redact_uri("sqlite:///experiments/mlflow.db") == "sqlite:///experiments/mlflow.db"


def test_latex_escape() -> None:
    assert latex_escape("erm=spacy lr_1 & 50% #1 {x}") == r"erm=spacy lr\_1 \& 50\% \#1 \{x\}"


# --- verdicts ---------------------------------------------------------------------------------------------------------


def _row(**values: object) -> dict[str, object]:
    """A primary comparison row of a family of 4 (numbers chosen so that words and numbers can be checked)."""
    row: dict[str, object] = {
        "p_crossed": 0.001,
        "p_crossed_holm": 0.004,
        "ci_adj_low": 0.01,
        "ci_adj_high": 0.05,
        "diff": 0.03,
        "mde": 0.025,
        "mde_level": 0.0125,
        "family_size": 4,
        "n_seeds": 3,
        "n_queries": 300,
        "seed_covered": True,
    }
    row.update(values)
    return row


@pytest.mark.parametrize(
    ("values", "expected", "words", "absent"),
    [
        (
            {},
            "significant",
            "It is **better** than its baseline on rank@1: significant after Holm correction over the 4",
            "MDE",
        ),
        ({"diff": -0.03, "ci_adj_low": -0.05, "ci_adj_high": -0.01}, "significant", "**worse**", "touches 0"),
        (
            {"p_crossed_holm": 0.04, "ci_adj_low": -0.001},
            "significant",
            "more conservative than Holm's step-down test, still touches 0",
            "Inconclusive",
        ),
        (
            {"p_crossed": 0.033, "p_crossed_holm": 0.13, "ci_adj_low": -0.002},
            "inconclusive after correction",
            "**Inconclusive after correction**: p = 0.033 is below α = 0.05 on its own, but not after Holm",
            "No significant",
        ),
        (
            {"p_crossed": 0.4, "p_crossed_holm": 1.0, "diff": 0.01},
            "no significant difference",
            "detects a true difference of 2.5 points with 80% power at the corrected level α/4 = 0.0125",
            "n/a",
        ),
        (
            {"p_crossed": 0.4, "p_crossed_holm": 1.0, "diff": 0.01},
            "no significant difference",
            "the observed difference is smaller, so this sweep cannot tell it from noise",
            "significant after",
        ),
        (
            {"p_crossed": 0.4, "p_crossed_holm": 1.0, "diff": 0.03},
            "no significant difference",
            "upper confidence limits from these runs (minimum detectable effect).",
            "smaller",
        ),
        (
            {"p_crossed": 0.01, "p_crossed_holm": 0.01, "mde": float("nan"), "n_seeds": 1, "seed_covered": False},
            "too few seeds",
            "No verdict: one paired seed",
            "significant",
        ),
        (
            {"p_crossed": 0.4, "p_crossed_holm": 1.0, "n_seeds": 2},
            "no significant difference",
            "Only 2 paired seeds: the test uses the seed stage's single degree of freedom",
            "With one seed",
        ),
        ({"p_crossed": float("nan"), "p_crossed_holm": float("nan")}, "untested", "no paired test", "Holm"),
    ],
)
def test_verdict_and_headline_words_match_the_numbers(values, expected: str, words: str, absent: str) -> None:
    row = _row(**values)
    assert classify(float(row["p_crossed"]), float(row["p_crossed_holm"]), 0.05, int(row["n_seeds"])) == expected
    row["verdict"] = expected
    text = verdict(row, 0.05, 0.8)
    assert words in text
    assert absent not in text
