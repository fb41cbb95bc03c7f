"""report.md: the headline in plain words first, then the tables a reader checks it against."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from apex.report.basemodel import standing
from apex.report.collect import METRICS, STOP
from apex.report.compare import VERDICTS
from apex.report.headline import headline, verdict
from apex.report.tables import METRIC_NAMES, fmt_ci, fmt_count, fmt_metric, fmt_p, fmt_pct, fmt_points, results_frame

__all__ = ["headline", "render", "verdict"]

if TYPE_CHECKING:
    from apex.report.build import ReportData


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _interval(mean: float, low: float, high: float) -> str:
    if not np.isfinite(low):
        return fmt_pct(mean)
    return f"{fmt_pct(mean)} [{fmt_pct(low)}, {fmt_pct(high)}]"


def _points(value: float) -> str:
    return fmt_points(value).lstrip("+")


_ci = fmt_ci


def _cells_table(data: ReportData) -> str:
    wide = results_frame(data)
    header = ["configuration", "stop", "seeds", *(f"{METRIC_NAMES[m]} mean ± sd [CI]" for m in METRICS)]
    header += ["queries", "corpus"]
    rows = []
    for r in wide.to_dict(orient="records"):
        stop = f"{r[STOP]:g}" + (" ★" if r["is_best_stop"] else "")
        row = [r["cell_label"], stop, str(r["n_seeds"])]
        for m in METRICS:
            sd = f" ± {100 * r[f'{m}_sd']:.1f}" if np.isfinite(r[f"{m}_sd"]) else ""
            row.append(_interval(r[f"{m}_mean"], r[f"{m}_ci_low"], r[f"{m}_ci_high"]).replace(" [", f"{sd} [", 1))
        rows.append([*row, fmt_count(r["n_queries"]), fmt_count(r["corpus_size"])])
    return _table(header, rows)


def _mde_text(r: dict[str, object]) -> str:
    if r["verdict"] == "untested":
        return "n/a"
    if np.isfinite(float(r["mde"])):
        return f"{_points(float(r['mde']))} (α {float(r['mde_level']):.2g})"
    return "n/a (fewer than 2 seeds)" if int(r["n_seeds"]) < 2 else "n/a (no variation)"


def _units(r: dict[str, object]) -> str:
    queries, clusters = fmt_count(float(r["n_queries"])), fmt_count(float(r["n_clusters"]))
    return f"{int(r['n_seeds'])} × {queries} / {clusters}"


def _primary_table(data: ReportData, role: str = "primary") -> str:
    labels, name = data.meta["labels"], METRIC_NAMES[data.meta["metric"]]
    table = data.comparisons if role == "primary" else data.base
    header = ["configuration", "against", "stop", f"Δ {name} (pts)", "adjusted interval", "unadjusted interval"]
    header += ["p (Holm, BH)", "verdict", "MDE (level)", "seeds × queries / clusters"]
    rows = []
    for r in table[table["role"] == role].to_dict(orient="records"):
        rows.append(
            [
                labels.get(r["cell"], r["cell"]),
                labels.get(r["baseline"], r["baseline"]),
                f"{r[STOP]:g}" + (f" (seeds {r['seed_stops']})" if r["seed_stops"] else ""),
                fmt_points(r["diff"]),
                _ci(r["ci_adj_low"], r["ci_adj_high"]),
                _ci(r["ci_low"], r["ci_high"]),
                f"{fmt_p(r['p_crossed'])} ({fmt_p(r['p_crossed_holm'])}, {fmt_p(r['p_crossed_bh'])})",
                r["verdict"] if role == "primary" else standing(r, data.config.alpha),
                _mde_text(r),
                _units(r),
            ]
        )
    return _table(header, rows)


def _other_table(data: ReportData) -> str:
    labels = data.meta["labels"]
    header = ["configuration", "stop", "row", "Δ [unadjusted interval]", "p crossed", "p pooled (these models)"]
    header += ["n10 / n01", "seed het. p"]
    rows = []
    for r in data.comparisons.to_dict(orient="records"):
        rows.append(
            [
                labels.get(r["cell"], r["cell"]),
                f"{r[STOP]:g}",
                r["role"],
                f"{fmt_points(r['diff'])} {_ci(r['ci_low'], r['ci_high'])}",
                fmt_p(r["p_crossed"]),
                fmt_p(r["p_pooled"]),
                f"{fmt_count(r['n10'])} / {fmt_count(r['n01'])}",
                fmt_p(r["p_heterogeneity"]),
            ]
        )
    return _table(header, rows)


def _aa_table(data: ReportData) -> str:
    labels = data.meta["labels"]
    parts = []
    for cell, group in data.aa.groupby("cell", sort=True):
        k, n = int(group["rejected"].sum()), len(group)
        first = group.iloc[0]
        parts.append(
            f"- **{labels.get(cell, cell)}** at stop {first[STOP]:g}: seeds {first['seeds_a']} against "
            f"{first['seeds_b']}: {fmt_points(first['diff'])} points {_ci(first['ci_low'], first['ci_high'])}, "
            f"p = {fmt_p(first['p_crossed'])}. Over {n} half-splits the primary test rejected {k} "
            f"(about {data.config.alpha * n:.1f} expected from a test that holds its level; splits share seeds)."
        )
    return "\n".join(parts)


def _mcnemar_table(data: ReportData) -> str:
    labels = data.meta["labels"]
    rows = [
        [
            labels.get(r["cell"], r["cell"]),
            f"{r[STOP]:g}",
            str(r["seed"]),
            fmt_count(r["n_pairs"]),
            f"{r['n10']} / {r['n01']}",
            fmt_p(r["p_mcnemar"]),
            fmt_p(r["p_mcnemar_holm"]) if r["role"] == "primary" else "exploratory",
        ]
        for r in data.mcnemar[data.mcnemar["role"] != "zero-shot"].to_dict(orient="records")
    ]
    return _table(["configuration", "stop", "seed", "pairs", "n10 / n01", "p", "p Holm (primary seeds)"], rows)


def _best_table(data: ReportData) -> str:
    labels, metric = data.meta["labels"], str(data.meta["metric"])
    rows = []
    for r in data.best.to_dict(orient="records"):
        val = fmt_metric(r["val"], metric) if pd.notna(r["val"]) else "not logged"
        base = fmt_metric(r["val_baseline"], metric) if pd.notna(r["val_baseline"]) else ""
        how = r["basis"] + (" — a tie, the earliest of equal scores" if r["tied"] else "")
        how += f"; seeds judged at {r['seed_stops']}" if r["seed_stops"] else ""
        rows.append([labels.get(r["cell"], r["cell"]), f"{r[STOP]:g}", how, val, base])
    name = METRIC_NAMES[metric]
    return _table(["configuration", "stop", "chosen by", f"val {name}", f"baseline's val {name}"], rows)


def _comparison_sections(data: ReportData) -> list[str]:
    """The primary comparisons, every stop point with the secondary tests, McNemar per seed."""
    name = METRIC_NAMES[data.meta["metric"]]
    parts = [
        f"## Primary comparisons ({name})",
        "",
        "One per configuration, at its stop point above. Δ in points (configuration − baseline; nDCG and MRR "
        "× 100). Primary test: seeds and queries as crossed random factors, queries that share relevant documents "
        "counted as clusters (docs/report.md). Holm (family-wise) and BH (false discovery rate) over these rows "
        "only. Adjusted interval: Bonferroni over these rows, the level of the verdict; unadjusted: "
        f"{100 * data.config.confidence:.0f}% for this row alone. MDE: the true difference this test detects with "
        f"{100 * data.config.power:.0f}% power at the corrected level, from the 95% upper confidence limits of the "
        "variance components.",
        "",
        _primary_table(data),
        "",
        "Verdicts: " + "; ".join(f"**{key}**: {text}" for key, text in VERDICTS.items()) + ".",
        "",
    ]
    if data.base is not None and not data.base.empty:
        parts += [
            "## Against the base model (step 0)",
            "",
            "Each arm at its comparison's stop against the zero-shot model it was fine-tuned from, with the same "
            "crossed test; Holm and BH over these rows, a family of its own. above / below: significant after Holm; "
            "unmoved: not distinguishable from the base model.",
            "",
            _primary_table(data, "base model"),
            "",
        ]
    return [
        *parts,
        "## Every stop point, and the secondary tests",
        "",
        "Unadjusted. p crossed: the primary test at that stop point (exploratory off the chosen stop). p pooled: "
        "sign-flip test over all (seed, query) pairs; like McNemar per seed it treats the trained models as "
        "fixed and answers 'do *these* models differ on *these* queries?', not whether the recipe is better. "
        "seed het. p: Cochran's Q, small when the seeds' differences disagree beyond query noise.",
        "",
        _other_table(data),
        "",
        *(
            ["### Exact McNemar test per seed", "", _mcnemar_table(data), ""]
            if data.meta["metric"] == "rank_at_1"
            else []
        ),
    ]


def render(data: ReportData, figures: list[str]) -> str:
    """The whole report.md; `figures` are paths relative to the report folder."""
    meta = data.meta
    wide = results_frame(data)
    parts = [
        f"# apex report: {meta['name']}",
        "",
        f"{meta['selection']}: {meta['n_runs']} run(s) in {meta['n_cells']} configuration(s); baseline "
        f"`{meta['baseline_spec']}`. Test queries: {fmt_count(wide['n_queries'].min())}; corpus: "
        f"{fmt_count(wide['corpus_size'].min())} documents; seeds per configuration: up to "
        f"{int(wide['n_seeds'].max())}.",
        "",
        "## Headline",
        "",
        *[p + "\n" for p in headline(data)],
        "## Stop points",
        "",
        f"Rule: {meta['stop_rule']}. A comparison is judged at one stop point chosen without test figures; step 0"
        " (the same base model in both arms) is never chosen and never tested; every other stop point is exploratory.",
        "",
        _best_table(data),
        "",
        "## Metrics by configuration and stop point",
        "",
        f"Percentages; mean ± standard deviation over seeds (points), then the {100 * data.config.confidence:.0f}% "
        "interval with seeds and queries as crossed random factors. ★ marks the rows the verdict compares.",
        "",
        _cells_table(data),
        "",
    ]
    if not data.comparisons.empty:
        parts += _comparison_sections(data)
    if not data.aa.empty:
        parts += [
            "## Built-in A/A check",
            "",
            "A baseline with 6 or more seeds, split into two halves of the same"
            " recipe and compared with the primary test: every rejection here is a false positive.",
            "",
            _aa_table(data),
            "",
        ]
    if figures:
        parts += ["## Figures", ""] + [f"![{name}]({name})\n" for name in figures]
    parts += [
        "## How to read this",
        "",
        "See `docs/report.md` in the apex repository for every column, the formulas and the caveats.",
        "",
    ]
    if data.notes:
        parts += ["## Notes", "", *[f"- {note}" for note in data.notes], ""]
    return "\n".join(parts)
