"""Time the default run stage by stage: data, ERMs, model, negatives, each evaluation, training; print each share.

    python benchmarks/default_run.py [hydra overrides ...]       e.g. model.bf16=false torch_threads=2

Runs `python -m apex.run` in this process with the overrides, every store (MLflow, caches, data store, Hydra
outputs) in a fresh temporary folder, so the figures are those of a clean clone (cold caches). Each stage function
of `apex.pipeline.recipe` is wrapped with a clock; training is the `train` call minus the evaluations and adapter
saves it makes at stop points. Prints the CPU model, whether it has native bf16, the load average before and after (the
machine may be shared: then absolute times are inflated, shares less so), and one line per stage.
"""

from __future__ import annotations

import functools
import os
import platform
import runpy
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class StageClock:
    """Wall seconds per stage, in call order; time spent in stop points is taken out of the training stage."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, float]] = []
        self.in_training = False
        self.inside_training = 0.0  # seconds of evaluations / adapter saves made from within `train`

    def wrap(self, fn: Callable, label: Callable[..., str] | str) -> Callable:
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - started
                self.stages.append((label(*args, **kwargs) if callable(label) else label, seconds))
                if self.in_training:
                    self.inside_training += seconds

        return timed

    def wrap_training(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.in_training, self.inside_training = True, 0.0
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.in_training = False
                steps = args[3].total_steps(len(args[1]))  # train(encoder, examples, relevant, cfg, ...)
                seconds = time.perf_counter() - started - self.inside_training
                self.stages.append((f"training ({steps} steps, stop points excluded)", seconds))

        return timed


def instrument(clock: StageClock) -> None:
    from apex.pipeline import recipe, stop_points

    for name, label in [
        ("load_data", "data (split; LLM queries if asked)"),
        ("build_views", "ERMs (training view)"),
        ("open_tracking", "MLflow run + params"),
        ("load_model", "model load (+ ERM size stats)"),
        ("negatives", "negatives"),
        ("finish", "summary + MLflow close-out"),
    ]:
        setattr(recipe, name, clock.wrap(getattr(recipe, name), label))
    stop_points.save_adapter = clock.wrap(stop_points.save_adapter, "adapter save")  # called from StopPoints
    recipe.StopPoints.evaluate = clock.wrap(
        recipe.StopPoints.evaluate, lambda self, step, fraction: f"evaluation at step {step} (test + val)"
    )
    recipe.train = clock.wrap_training(recipe.train)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def merge_same_labels(stages: list[tuple[str, float]]) -> list[tuple[str, float, int]]:
    """Adapter saves happen once per stop point: one line with their total and count."""
    merged: dict[str, list[float]] = {}
    for label, seconds in stages:
        merged.setdefault(label, []).append(seconds)
    return [(label, sum(times), len(times)) for label, times in merged.items()]


def main() -> None:
    from apex.model.precision import cpu_has_native_bf16

    overrides = sys.argv[1:]
    clock = StageClock()
    instrument(clock)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="apex-bench-") as tmp:
        sys.argv = [
            "apex.run", *overrides, f"paths.experiments={tmp}", f"paths.data={tmp}/data",
            f"hydra.run.dir={tmp}/run", "hydra.job_logging.root.level=WARNING",
        ]  # fmt: skip
        started = time.perf_counter()
        try:
            runpy.run_module("apex.run", run_name="__main__")  # as `python -m apex.run`: Hydra finds conf/ there
        except SystemExit as done:  # the entry point always exits with its status
            if done.code:
                raise
        wall = time.perf_counter() - started
    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} CPUs, native bf16: {cpu_has_native_bf16()}")
    print(f"overrides: {' '.join(overrides) or '(none: the default run)'}")
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} (above ~0.5: machine shared)")
    print(f"{'stage':<48} {'seconds':>9} {'share':>7}")
    for label, seconds, count in merge_same_labels(clock.stages):
        name = f"{label} x{count}" if count > 1 else label
        print(f"{name:<48} {seconds:9.1f} {100 * seconds / wall:6.1f}%")
    other = wall - sum(s for _, s in clock.stages)
    print(f"{'other (imports, config, printing)':<48} {other:9.1f} {100 * other / wall:6.1f}%")
    print(f"{'wall':<48} {wall:9.1f} {100.0:6.1f}%  ({wall / 60:.1f} min)")


if __name__ == "__main__":
    main()
