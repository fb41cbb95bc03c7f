"""`Summary`: what a run prints, logs as summary.json and returns (rank@1 per training step, with its context)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apex.tracking import names


@dataclass
class Summary:
    """Test and validation metrics per training step (0 = zero-shot), with the run's context."""

    run_id: str
    cell_label: str  # the overrides that name the cell (the cell itself is a hash: Job.cell)
    seed: int
    corpus_size: int
    n_queries: int
    steps: dict[int, float] = field(default_factory=dict)  # step → stop fraction (0.0 = zero-shot)
    test: dict[int, dict[str, float]] = field(default_factory=dict)  # step → metrics
    val: dict[int, dict[str, float]] = field(default_factory=dict)
    wall_seconds: float = 0.0
    train_examples_per_second: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    stop: float | None = None  # report.stop: a stop fraction fixed before the sweep; None = choose on validation

    def chosen_step(self) -> int | None:
        """The stop point: the one at `stop` when fixed, else the trained step with the best val rank@1 (earliest on
        ties). Step 0 is the base model in every arm, so it is never chosen. None when it was not validated."""
        trained = [step for step in self.val if step > 0]
        if self.stop is not None:
            trained = [step for step in trained if abs(self.steps[step] - self.stop) < 1e-9]
        if not trained:
            return None
        return max(trained, key=lambda step: (self.val[step]["rank_at_1"], -step))

    def objective(self) -> float | None:
        """What a Hydra sweeper optimises: validation rank@1 at the chosen stop point (never a test metric)."""
        step = self.chosen_step()
        return None if step is None else self.val[step]["rank_at_1"]

    def chosen_metrics(self) -> dict[str, float]:
        """The chosen stop point's figures under names that say so (apex.tracking.names), rank@1 and recall in
        percent: validation (what the stop was chosen on), test (what it then scored), and zero-shot test beside."""
        step = self.chosen_step()
        out: dict[str, float] = {}
        if 0 in self.test:
            out[names.ZERO_SHOT_TEST_RANK_AT_1] = 100 * self.test[0]["rank_at_1"]
        if step is None:
            return out
        test, val = self.test[step], self.val[step]
        out |= {
            names.CHOSEN_STEP: float(step),
            names.CHOSEN_FRACTION: self.steps[step],
            names.CHOSEN_VAL_RANK_AT_1: 100 * val["rank_at_1"],
            names.CHOSEN_TEST_RANK_AT_1: 100 * test["rank_at_1"],
            names.OBJECTIVE: val["rank_at_1"],
        }
        if "recall_at_10" in test:
            out[names.CHOSEN_TEST_RECALL_AT_10] = 100 * test["recall_at_10"]
        if "ndcg_at_10" in test:
            out[names.CHOSEN_TEST_NDCG_AT_10] = test["ndcg_at_10"]
        return out

    def render(self) -> str:
        lines = [
            f"apex run {self.run_id}  cell {self.cell_label}  seed {self.seed}",
            f"test split: {self.n_queries} queries against a corpus of {self.corpus_size} documents",
            f"{'step':>6} {'stop':>9} {'rank@1':>8} {'R@10':>7} {'MRR@10':>7} {'nDCG@10':>8} {'val rank@1':>11} "
            f"{'val nDCG@10':>12}",
        ]
        nan = float("nan")  # a metric absent when eval.ks does not end at 10
        for step, fraction in self.steps.items():
            metrics, val = self.test[step], self.val.get(step)
            label = "zero-shot" if step == 0 else f"{fraction:.2f}"
            val_cols = "" if val is None else f"{100 * val['rank_at_1']:10.2f}% {val.get('ndcg_at_10', nan):12.4f}"
            lines.append(
                f"{step:>6} {label:>9} {100 * metrics['rank_at_1']:7.2f}% "
                f"{100 * metrics.get('recall_at_10', nan):6.2f}% "
                f"{metrics.get('mrr_at_10', nan):7.4f} {metrics.get('ndcg_at_10', nan):8.4f} {val_cols}"
            )
        for key, value in self.extra.items():
            lines.append(f"{key}: {value}")
        chosen = self.chosen_step()
        if chosen is not None:
            how = "best val rank@1" if self.stop is None else f"report.stop={self.stop}"
            test, zero = self.test[chosen]["rank_at_1"], self.test.get(0, {}).get("rank_at_1", float("nan"))
            lines.append(
                f"chosen stop point ({how}): step {chosen}: val rank@1 {100 * self.objective():.2f}% (the sweeper's "
                f"objective), test rank@1 {100 * test:.2f}% (zero-shot {100 * zero:.2f}%)"
            )
        lines.append(f"wall time {self.wall_seconds:.0f} s; training {self.train_examples_per_second:.1f} examples/s")
        return "\n".join(lines)
