"""Files of one mining run: the negatives table, the stats, and a histogram of base scores per band."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from apex.sampling.mining import MiningResult

NEGATIVES_FILE = "negatives.parquet"
STATS_FILE = "sampler_stats.json"
HISTOGRAM_FILE = "sampler_score_histogram.png"
# Stats that differ between two mining runs of the same inputs: logged, never written (same inputs, same bytes).
VOLATILE_STATS = ("timings_s", "cache_hit", "encoded")

_COLOURS = {"hard": "tab:red", "soft": "tab:blue", "pool": "tab:gray", "random": "tab:green", "positive": "black"}


def _replace_into(path: Path, write: Any) -> None:
    """Write via a sibling temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    tmp.replace(path)


def plot_histograms(stats: dict[str, Any], path: Path) -> None:
    """Two panels on shared cosine bins: every candidate per band (with the positives), and the chosen negatives."""
    hist = stats.get("histograms", {})
    edges = np.asarray(hist.get("bin_edges", []))
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)  # attaches the Agg canvas: no pyplot, no global backend state
    axes = fig.subplots(1, 2, sharex=True)
    # Candidates outnumber positives ~K to 1: a log count axis keeps the positives visible beside the bands.
    panels = (
        ("candidates", "candidates per band (after the guard)", "log"),
        ("selected", "chosen negatives", "linear"),
    )
    for ax, (key, title, scale) in zip(axes, panels, strict=True):
        ax.set_title(title)
        ax.set_xlabel("base-model cosine")
        ax.set_ylabel("count")
        ax.set_yscale(scale)
        for band, counts in hist.get(key, {}).items():
            if edges.size and sum(counts):
                ax.stairs(counts, edges, label=band, color=_COLOURS.get(band), linewidth=1.5)
        if not edges.size:
            ax.text(0.5, 0.5, "no negatives mined", ha="center", va="center", transform=ax.transAxes)
        elif ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(f"sampler {stats.get('sampler')} (view {stats.get('view')}, seed {stats.get('seed')})")
    fig.savefig(path, dpi=100, format="png")


def write_outputs(result: MiningResult, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write negatives.parquet, sampler_stats.json (without the volatile stats) and the histogram PNG into
    `out_dir`; return their paths. The files depend only on the mining inputs (DVC pins their md5)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    negatives, stats = out / NEGATIVES_FILE, out / STATS_FILE
    histogram = out / HISTOGRAM_FILE
    _replace_into(negatives, lambda p: result.negatives.to_parquet(p, index=False))
    stable = {k: v for k, v in result.stats.items() if k not in VOLATILE_STATS}
    text = json.dumps(stable, indent=2, ensure_ascii=False, sort_keys=True, default=float) + "\n"
    _replace_into(stats, lambda p: p.write_text(text, "utf-8"))
    _replace_into(histogram, lambda p: plot_histograms(stable, p))
    return [negatives, stats, histogram]
