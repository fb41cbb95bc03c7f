"""Across corpora: one primary comparison per corpus (one sweep each), pooled with corpus as a random factor.

BEIR and MTEB average a metric over corpora without any uncertainty. Here each corpus k contributes its primary
difference y_k (configuration − baseline on the primary metric, at its chosen stop) with its crossed-test variance
v_k = se_k². Corpora differ in how much the recipe helps, so the pooled effect is a random-effects mean:

    DerSimonian–Laird:  w_k = 1 / v_k,  Q = Σ w_k (y_k − ȳ_w)²,
                        τ² = max(0, (Q − (K − 1)) / (Σ w_k − Σ w_k² / Σ w_k)),
                        w*_k = 1 / (v_k + τ²),  μ̂ = Σ w*_k y_k / Σ w*_k;
    Hartung–Knapp:      Var(μ̂) = Σ w*_k (y_k − μ̂)² / ((K − 1) Σ w*_k),  interval μ̂ ± t_{1-α/2, K-1} · sqrt(Var).

Hartung–Knapp's t with K − 1 df keeps its level with few corpora where the DL normal interval does not; with two or
three corpora it is wide, and the report says that the between-corpus variance rests on K − 1 degrees of freedom.
statsmodels' `combine_effects(..., method_re="dl", use_t=True)` computes the same (tests check it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True)
class Pooled:
    estimate: float
    se: float  # Hartung–Knapp
    ci_low: float
    ci_high: float
    tau2: float  # between-corpus variance (DerSimonian–Laird)
    q: float  # Cochran's Q of heterogeneity
    k: int


def pool(effects: np.ndarray, variances: np.ndarray, alpha: float = 0.05) -> Pooled:
    """DerSimonian–Laird random-effects mean with the Hartung–Knapp interval (module docstring)."""
    y, v = np.asarray(effects, dtype=np.float64), np.asarray(variances, dtype=np.float64)
    k = y.size
    if k < 2 or np.any(~np.isfinite(v)) or np.any(v <= 0):
        raise ValueError("pooling needs >= 2 corpora with finite, positive variances")
    w = 1.0 / v
    fixed = float(np.sum(w * y) / np.sum(w))
    q = float(np.sum(w * (y - fixed) ** 2))
    tau2 = max(0.0, (q - (k - 1)) / (np.sum(w) - np.sum(w**2) / np.sum(w)))
    ws = 1.0 / (v + tau2)
    mu = float(np.sum(ws * y) / np.sum(ws))
    se = math.sqrt(float(np.sum(ws * (y - mu) ** 2)) / ((k - 1) * float(np.sum(ws))))
    half = float(stats.t.ppf(1.0 - alpha / 2.0, k - 1)) * se
    return Pooled(mu, se, mu - half, mu + half, tau2, q, k)


def across_corpora(results: list[Path], alpha: float = 0.05) -> tuple[pd.DataFrame, dict[str, Pooled]]:
    """Per-corpus primary rows (from each report's results.json) and the pooled effect per configuration label."""
    rows = []
    for path in results:
        document = json.loads(path.read_text(encoding="utf-8"))
        labels = document["meta"]["labels"]
        for row in document["comparisons"]:
            if row["role"] != "primary" or row.get("se") is None:
                continue
            rows.append(
                {"corpus": document["meta"]["name"], "configuration": labels.get(row["cell"], row["cell"])}
                | {"baseline": labels.get(row["baseline"], row["baseline"]), "metric": row.get("metric", "rank_at_1")}
                | {k: row.get(k) for k in ("diff", "se", "ci_low", "ci_high", "p_crossed", "n_seeds", "n_queries")}
            )
    table = pd.DataFrame(rows)
    pooled = {}
    for (label, metric), group in table.groupby(["configuration", "metric"]) if len(table) else []:
        if len(group) >= 2:
            pooled[f"{label} ({metric})"] = pool(group["diff"].to_numpy(), group["se"].to_numpy() ** 2, alpha)
    return table, pooled


def render_across(table: pd.DataFrame, pooled: dict[str, Pooled], alpha: float) -> str:
    """across.md: one row per corpus, then the pooled effect with an honest note on how many corpora it rests on."""
    lines = [
        "# apex report across corpora",
        "",
        "| corpus | configuration | baseline | metric | Δ (pts) | interval | p |",
    ]
    lines.append("|---|---|---|---|---|---|---|")
    for r in table.to_dict(orient="records"):
        lines.append(
            f"| {r['corpus']} | {r['configuration']} | {r['baseline']} | {r['metric']} | {100 * r['diff']:+.1f} | "
            f"[{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}] | {r['p_crossed']:.3g} |"
        )
    lines += ["", "## Pooled, corpus as a random factor (DerSimonian–Laird, Hartung–Knapp interval)", ""]
    for label, p in pooled.items():
        lines.append(
            f"- **{label}**: {100 * p.estimate:+.2f} points, {100 * (1 - alpha):.0f}% interval "
            f"[{100 * p.ci_low:+.2f}, {100 * p.ci_high:+.2f}] over {p.k} corpora; between-corpus sd "
            f"{100 * math.sqrt(p.tau2):.2f} points (Q = {p.q:.2f}, {p.k - 1} df)."
        )
        if p.k < 5:
            lines.append(
                f"  Only {p.k} corpora: the between-corpus variance rests on {p.k - 1} degree(s) of freedom, so the"
                " interval is wide and says little about a corpus not in this set; add corpora before concluding"
                " the recipe helps (or not) in general."
            )
    if not pooled:
        lines.append("No configuration was compared on two or more corpora: nothing to pool.")
    return "\n".join(lines) + "\n"
