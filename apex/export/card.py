"""The model card (README.md) of an export: what the model is, how it was made, how good it is, under which terms.

The interval of rank@1 is the Wilson score interval of a proportion over the n test queries,
    (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n),  z = 1.96 for 95%:
it covers the sampling of queries only, not the variation between training seeds (the report's interval does).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from apex.model.config import ModelConfig
from apex.model.loading import public_base

DATA_LICENCES = {
    "squad": ("SQuAD v1.1 (rajpurkar/squad)", "CC BY-SA 4.0"),
    "beir": ("BEIR", "the licence of the BEIR dataset used (NFCorpus: academic use only)"),
    "jsonl_pairs": ("your own JSONL pairs", "the licence of your data"),
    "corpus": ("your own corpus with LLM-written queries", "the licence of your data"),
}


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed over ``n`` trials."""
    if n <= 0:
        return float("nan"), float("nan")
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.2f}%"


# model-index metric types (the Hub's names, as MTEB writes them) of apex's metrics; values in percent, like MTEB's.
INDEX_METRICS = (("rank_at_1", "precision_at_1", "rank@1"), ("recall_at_10", "recall_at_10", "recall@10"),
                 ("mrr_at_10", "mrr_at_10", "MRR@10"), ("ndcg_at_10", "ndcg_at_10", "nDCG@10"))  # fmt: skip


def _quoted(text: object) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def model_index(name: str, dataset: tuple[str, str], metrics: Mapping[str, float]) -> list[str]:
    """The card's ``model-index`` (the Hub's evaluation-results metadata): the fine-tuned figures on the test split."""
    lines = ["model-index:", f"- name: {_quoted(name)}", "  results:", "  - task:", "      type: retrieval",
             "    dataset:", f"      name: {_quoted(dataset[0])}", f"      type: {_quoted(dataset[1])}",
             "      split: test", "    metrics:"]  # fmt: skip
    for ours, kind, label in INDEX_METRICS:
        value = metrics.get(ours)
        if value is not None and math.isfinite(value):
            lines += [f"    - type: {kind}", f"      value: {100 * value:.2f}", f"      name: {_quoted(label)}"]
    return lines if lines[-1] != "    metrics:" else []


def front_matter(base_id: str, licence: str, index: list[str] | None = None) -> str:
    lines = ["---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity"]
    lines += ["tags:", "- sentence-transformers", "- feature-extraction", "- apex", "- lora"]
    if "/" in base_id and " " not in base_id:
        lines.append(f"base_model: {base_id}")
    if licence in ("apache-2.0", "mit"):
        lines.append(f"license: {licence}")
    return "\n".join([*lines, *(index or []), "---", ""])


def usage(cfg: ModelConfig) -> str:
    eos = (
        " Every text ends with the EOS token (the tokenizer appends it after truncation), as in training."
        if cfg.append_eos
        else ""
    )
    return f"""## Use

```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("path/to/this/folder")
queries = model.encode_query(["a question"])          # query prompt + at most {cfg.query_max_length} tokens
documents = model.encode_document(["a paragraph"])    # document prompt + at most {cfg.doc_max_length} tokens
scores = model.similarity(queries, documents)         # cosine (embeddings are unit length)
```

Query prompt: `{cfg.query_prefix!r}`; document prompt: `{cfg.doc_prefix!r}`. Pooling: {cfg.pooling}, then L2
normalisation.{eos} Plain `encode()` uses the document prompt's setting of no prefix and truncates at
{max(cfg.query_max_length, cfg.doc_max_length)} tokens: use `encode_query` for queries. Needs sentence-transformers
>= 6. The LoRA adapter alone is in `adapter/` (peft), for the base model `{public_base(cfg.source)[0]}`.
"""


def recipe_section(config: Mapping[str, Any], step: int, fraction: float) -> str:
    training, lora = config["training"], config["training"]["lora"]
    model = config["model"]
    rows = [
        ("ERM backend", config["erm"]["name"]),
        ("negative sampler", config["sampler"]["name"]),
        ("learning rate", training["lr"]),
        ("LoRA r / alpha / dropout", f"{lora['r']} / {lora['alpha']} / {lora['dropout']}"),
        ("batch size, temperature", f"{training['batch_size']}, {training['temperature']}"),
        ("budget", f"max_steps={training['max_steps']}, epochs={training['epochs']}"),
        ("stop point", f"step {step} (fraction {fraction:.2f} of the budget)"),
        ("quantisation while training", f"{model['quantization']} (merged into a float copy of the base)"),
        ("seed", config["seed"]),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"## Recipe\n\n| setting | value |\n|---|---|\n{table}\n"


def _cell(metrics: Mapping[str, float], name: str) -> str:
    value = metrics.get(name)
    if value is None or not math.isfinite(value):
        return "n/a"
    return _pct(value) if name in ("rank_at_1", "recall_at_10", "val_rank_at_1") else f"{value:.4f}"


def comparison_section(zero_shot: Mapping[str, float], metrics: Mapping[str, float], step: int) -> str:
    """Zero-shot (the base model, step 0) against this fine-tuned model, on the same test split."""
    rows = [("rank@1", "rank_at_1"), ("recall@10", "recall_at_10"), ("MRR@10", "mrr_at_10"),
            ("nDCG@10", "ndcg_at_10"), ("validation rank@1", "val_rank_at_1")]  # fmt: skip
    header = f"| metric | zero-shot (base model) | fine-tuned (step {step}) | difference |"
    lines = ["## Zero-shot vs fine-tuned (the run's test split)", "", header, "|---|---:|---:|---:|"]
    for label, name in rows:
        a, b = zero_shot.get(name), metrics.get(name)
        diff = "n/a"
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
            scale, unit = (100, " pts") if name in ("rank_at_1", "recall_at_10", "val_rank_at_1") else (1, "")
            diff = f"{scale * (b - a):+.2f}{unit}" if unit else f"{b - a:+.4f}"
        lines.append(f"| {label} | {_cell(zero_shot, name)} | {_cell(metrics, name)} | {diff} |")
    lines.append("")
    lines.append("One run, one seed: the report of its sweep says whether the difference holds across seeds.")
    return "\n".join(lines) + "\n"


def metrics_section(metrics: Mapping[str, float], rank_check: Mapping[str, Any] | None) -> str:
    n = int(metrics.get("n_queries", 0))
    rank = metrics.get("rank_at_1")
    low, high = wilson(rank, n) if rank is not None and n else (float("nan"), float("nan"))
    lines = [
        "## Test metrics (the run's test split, at this stop point)",
        "",
        f"- rank@1 {_pct(rank)} (95% Wilson interval over the {n} queries: {_pct(low)} to {_pct(high)}); corpus of "
        f"{int(metrics.get('corpus_size', 0))} documents. rank@1 depends strongly on the corpus size.",
        f"- recall@10 {_pct(metrics.get('recall_at_10'))}, MRR@10 {metrics.get('mrr_at_10', float('nan')):.4f}, "
        f"nDCG@10 {metrics.get('ndcg_at_10', float('nan')):.4f}",
    ]
    if "val_rank_at_1" in metrics:
        lines.append(f"- validation rank@1 {_pct(metrics['val_rank_at_1'])}")
    if rank_check:
        lines.append(
            f"- re-scored from this folder with sentence-transformers (float32): rank@1 "
            f"{_pct(rank_check['rank_at_1'])};"
            f" apex's own encoder with the adapter: {_pct(rank_check['harness_rank_at_1'])}; lowest cosine between"
            f" the two over every test text {rank_check['min_cosine']:.6f}. The run logged "
            f"{_pct(rank_check['run_rank_at_1'])} computing in {rank_check['run_precision']}."
        )
    return "\n".join(lines) + "\n"


def model_card(
    cfg: ModelConfig,
    config: Mapping[str, Any],
    provenance: Mapping[str, Any],
    metrics: Mapping[str, float],
    rank_check: Mapping[str, Any] | None = None,
    report: Mapping[str, Any] | None = None,
    zero_shot: Mapping[str, float] | None = None,
) -> str:
    """README.md text of an export; ``provenance`` holds run id, step, fraction, tags, and the probe cosines."""
    base_id, base_licence = public_base(cfg.source)
    data = config["dataset"]
    data_name, data_licence = DATA_LICENCES.get(data["name"], (data["name"], "see the dataset's terms"))
    step, fraction = int(provenance["step"]), float(provenance["stop_fraction"])
    split = f"{data_name}, apex test split of {int(metrics.get('corpus_size', 0))} documents"
    index = model_index(f"apex {provenance['run_name']} step {step}", (split, data["name"]), metrics)
    parts = [
        front_matter(base_id, base_licence, index),
        f"# apex embedding model — run `{provenance['run_name']}`, step {step}\n",
        f"`{base_id}` fine-tuned with LoRA by apex (APEX-Embedding, arXiv 2410.18105) on {data_name}; the "
        f"adapter of stop point {step} is merged into the base weights. Embedding dimension "
        f"{provenance['dimension']}, stored as {provenance['dtype']}.\n",
        usage(cfg),
        recipe_section(config, step, fraction),
        metrics_section(metrics, rank_check),
    ]
    if zero_shot:
        parts.insert(-1, comparison_section(zero_shot, metrics, step))
    if report:
        rows = "\n".join(f"| {k} | {v} |" for k, v in report.items())
        parts.append(f"## The report it came from\n\n| | |\n|---|---|\n{rows}\n")
    parts.append(
        "## Data and provenance\n\n"
        f"- dataset `{data['name']}` ({data.get('path') or 'bundled'}), split seed {data.get('split_seed')}, "
        f"splits {data.get('splits')}; fingerprint (sha256 of the split tables) "
        f"`{provenance.get('dataset_fingerprint', 'n/a')}`\n"
        f"- MLflow run `{provenance['run_id']}` (cell `{provenance.get('cell', 'n/a')}`), git commit "
        f"`{provenance.get('git_commit', 'n/a')}` (uncommitted changes: {provenance.get('git_dirty', 'n/a')})\n"
        f"- base weights hash `{provenance.get('weights_hash', 'n/a')}`; adapter sha256 "
        f"`{provenance.get('adapter_sha256', 'n/a')}`\n"
        f"- export check: min cosine merged vs fine-tuned {provenance['min_cos_merged_vs_tuned']:.6f}, this folder "
        f"vs fine-tuned {provenance['min_cos_export_vs_tuned']:.6f}, fine-tuned vs base "
        f"{provenance['min_cos_tuned_vs_base']:.6f}\n"
    )
    parts.append(
        f"## Licence\n\nBase model: {base_licence}. Training and test data: {data_licence}. The fine-tuned weights "
        "inherit the base model's licence; check the data's terms before you redistribute them.\n"
    )
    return "\n".join(parts)
