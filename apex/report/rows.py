"""One record type for a row of the comparison tables: every column of `comparisons` is named here, once.

`ComparisonRow` holds one comparison (a configuration against its baseline, or an arm against the base model at
step 0) at one stop point; `COLUMNS` is the table's column order and `EXPORTED` what results.csv carries beside
the metrics. Figures in points are fractions here (0.018 = 1.8 points); the writers format them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

NAN = math.nan


@dataclass
class ComparisonRow:
    cell: str
    baseline: str  # the baseline cell, or "step 0" for the base-model family
    stop_fraction: float
    role: str  # primary | exploratory | zero-shot | base model
    metric: str = "rank_at_1"  # the primary metric the row's test is on
    corpus_size: float = NAN
    n_seeds: int = 0
    n_queries: float = NAN
    n_clusters: float = NAN  # connected components of queries linked by shared relevant documents
    query_units: float = NAN  # effective independent query units (df + 1 of the query stage)
    n_pairs: float = NAN
    seed_stops: str = ""  # cross-fitted stop per seed when they differ from the marked stop ("0:0.5 1:1 2:1")
    mean_cell: float = NAN
    mean_baseline: float = NAN
    diff: float = NAN
    se: float = NAN
    v_seed_stage: float = NAN
    v_query_stage: float = NAN
    ci_low: float = NAN
    ci_high: float = NAN
    p_crossed: float = NAN
    var_seed: float = NAN
    var_query: float = NAN
    var_resid: float = NAN
    var_seed_upper: float = NAN  # 95% upper confidence limits: what the MDE and plan are computed from
    var_query_upper: float = NAN
    seed_covered: bool = False
    n10: float = NAN
    n01: float = NAN
    discordance: float = NAN
    p_pooled: float = NAN
    p_heterogeneity: float = NAN
    cohens_h: float = NAN
    odds_ratio: float = NAN
    # Family columns, filled over the primary (or base-model) rows.
    family_size: float = NAN
    p_crossed_holm: float = NAN
    p_crossed_bh: float = NAN
    ci_adj_low: float = NAN
    ci_adj_high: float = NAN
    mde: float = NAN
    mde_level: float = NAN
    verdict: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ComparisonRow))
IDENTITY = ("cell", "stop_fraction")
# results.csv takes the sizes from the metrics table (one row per cell and stop) and the rest from here.
SIZES = ("corpus_size", "n_seeds", "n_queries")
EXPORTED: tuple[str, ...] = tuple(c for c in COLUMNS if c not in (*IDENTITY, *SIZES) and not c.startswith("v_"))
