"""Entry point: `python -m apex.run [overrides]`, or `-m` for a Hydra multirun sweep."""

from __future__ import annotations

import logging
import os
import warnings

# Offline by default: a hub id would otherwise retry for ~50 s before failing. Set before transformers loads.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import apex.core.configs  # noqa: F401  registers each group's schema (`<group>/base`) before Hydra composes
from apex.core.cli import job, run_hydra
from apex.core.secrets import scrub

# conf/hydra/launcher/submitit_slurm.yaml is typed by the plugin's schema of the same name (Hydra 1.3 matches it).
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/submitit_slurm' is validated against")

log = logging.getLogger("apex")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@job  # pre-flight checks before the heavy imports; one-line errors (apex.core.cli)
def main(cfg: DictConfig) -> float | None:
    """Runs one job; returns the objective a Hydra sweeper optimises: *validation* rank@1 at the stop point
    chosen on validation (never a test metric). None when validation is off (eval.on_val=false)."""
    from apex.sweep.resume import finished_run

    if done := finished_run(cfg):  # a resumed sweep's job that already has its results: nothing to do
        log.info("this job (cell and seed) already FINISHED with its results in run %s: not run again", done)
        return None
    from apex.pipeline.recipe import run  # heavy imports after Hydra has parsed the command line

    hydra_cfg = HydraConfig.get()
    summary = run(cfg, overrides=list(hydra_cfg.overrides.task), output_dir=hydra_cfg.runtime.output_dir)
    print(scrub(summary.render()), flush=True)  # the cell label holds resolved overrides (URLs from the env)
    objective = summary.objective()
    if objective is None:
        log.warning("no validation metric (eval.on_val=false): nothing for a sweeper to optimise")
    return objective


if __name__ == "__main__":
    run_hydra(main)  # one line per expected failure, documented exit statuses, no secret echoed
