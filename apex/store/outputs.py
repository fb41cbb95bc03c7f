"""The on-disk form of the maps and negatives outputs, written the same way by the DVC stages and by runs.

    maps:       <out>/<split>/maps.parquet (doc_id, map_json, text, status; train: its needed documents only),
                failures.parquet (doc_id, reason, attempts), query_maps.parquet (erm.apply_to=documents_and_queries;
                doc_id holds the query_id)
    negatives:  <out>/negatives.parquet, sampler_stats.json, sampler_score_histogram.png

Only what the inputs determine goes into these files, so the same inputs give the same bytes (and the same
dvc.lock md5): timings, cache hits and token usage are returned to the caller, who logs them (stdout, MLflow).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from apex.core.errors import InputError
from apex.data.dataset import Dataset
from apex.erm.config import ErmConfig
from apex.sampling.mining import MiningResult
from apex.sampling.outputs import HISTOGRAM_FILE, NEGATIVES_FILE, STATS_FILE

_REBUILD = "delete the output folder and re-run (or `dvc repro` for the pinned data/ outputs)"


def write_maps(
    splits: Mapping[str, Dataset],
    cfg: ErmConfig,
    cache_dir: Path,
    out: Path,
    progress: bool,
    needed: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, dict[str, float]]:
    """Build the maps of every split's corpus (and queries, if asked) into `out`; returns stats per split.

    `needed`: split -> the only documents of its corpus to map (apex.erm.needed: training positives and mined
    negatives); a split not in it is mapped whole (val/test with eval.view=erm: evaluation reads every document).
    """
    from apex.erm.pipeline import FAILURE_COLUMNS, MAPS_COLUMNS, build_maps
    from apex.erm.registry import backend_of

    stats: dict[str, dict[str, float]] = {}
    for split, ds in splits.items():
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        corpus = ds.corpus
        if needed is not None and split in needed:
            corpus = corpus[corpus["doc_id"].isin(set(needed[split]))]
        if backend_of(cfg).answer is None:  # erm=none: empty tables
            tables = {"maps": _empty(MAPS_COLUMNS), "failures": _empty(FAILURE_COLUMNS)}
            stats[split] = {}
        else:
            result = build_maps(_items(corpus, "doc_id"), cfg, cache_dir, progress=progress)
            tables, stats[split] = {"maps": result.maps, "failures": result.failures}, dict(result.stats)
            if cfg.apply_to == "documents_and_queries":
                queries = build_maps(_items(ds.queries, "query_id"), cfg, cache_dir, progress=progress)
                tables["query_maps"] = queries.maps
                tables["failures"] = pd.concat([result.failures, queries.failures], ignore_index=True)
                stats[split] |= {f"query_{k}": v for k, v in queries.stats.items()}
        for name, table in tables.items():
            table.to_parquet(folder / f"{name}.parquet", index=False)
    return stats


def read_maps(folder: Path, split: str, table: str = "maps") -> pd.DataFrame:
    """One split's maps (or `query_maps`, `failures`) table from a maps output folder."""
    return read_table(folder / split / f"{table}.parquet")


def write_negatives(result: MiningResult, out: Path) -> dict[str, Any]:
    """The negatives, the reproducible stats and the histogram; returns the volatile stats (for the logs)."""
    from apex.sampling.outputs import VOLATILE_STATS, write_outputs

    write_outputs(result, out)
    return {k: result.stats[k] for k in VOLATILE_STATS if k in result.stats}


def read_negatives(folder: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    try:
        stats = json.loads((folder / STATS_FILE).read_text("utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"is not readable JSON ({err}); {_REBUILD}", file=folder / STATS_FILE) from None
    return read_table(folder / NEGATIVES_FILE), stats


def read_table(path: Path) -> pd.DataFrame:
    """A store table; a missing, truncated or overwritten file is one line naming it and what to do."""
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a damaged file; all mean "not readable Parquet"
        raise InputError(f"is not readable Parquet ({str(err).splitlines()[0]}); {_REBUILD}", file=path) from None


def negatives_files(folder: Path) -> list[Path]:
    return [folder / NEGATIVES_FILE, folder / STATS_FILE, folder / HISTOGRAM_FILE]


def _items(table: pd.DataFrame, id_column: str) -> pd.DataFrame:
    return pd.DataFrame({"id": table[id_column], "text": table["text"]})


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=str) for c in columns})


def mapped_view(table: pd.DataFrame, id_column: str, maps: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Documents (doc_id) or queries (query_id) with `text` replaced by their map where it is ok; counts."""
    from apex.erm.view import map_view_with_counts

    view, counts = map_view_with_counts(table.rename(columns={id_column: "doc_id"}), maps)
    return view.rename(columns={"doc_id": id_column}), counts
