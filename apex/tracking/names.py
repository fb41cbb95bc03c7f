"""Every MLflow tag, metric and artifact name apex writes and another module reads: the one place they are spelled.

Writers (apex.pipeline, apex.tracking, apex.export) and readers (apex.report, apex.export, the sweeper's resume)
import them from here, so a renamed tag cannot leave a reader looking for the old one. MLflow allows letters,
digits and `_ - . / :` and spaces in names (so `rank_at_1`, never `rank@1`). Plain strings only: no MLflow import.
"""

from __future__ import annotations

# --- tags of a job run (apex.pipeline.recipe) ---
KIND = "apex.kind"  # "job" or "sweep"
CELL = "apex.cell"  # the cell's hash: the configuration without its seed (apex.core.configs.cell_of)
CELL_LABEL = "apex.cell_label"  # the command-line overrides that name the cell
SEED = "apex.seed"
GIT_COMMIT = "apex.git_commit"
GIT_DIRTY = "apex.git_dirty"
DATASET_FINGERPRINT = "apex.dataset_fingerprint"
TEST_FINGERPRINT = "apex.data.test_fingerprint"
BASE_EMBEDDING_CACHE = "apex.base_embedding_cache"  # hit | miss
STEP0_CACHE = "apex.step0_cache"  # hit | miss
HOST, PID, SLURM_JOB_ID = "apex.host", "apex.pid", "apex.slurm_job_id"
NOTE = "mlflow.note.content"  # the run's (and experiment's) description in the UI
RUN_NAME = "mlflow.runName"
PARENT = "mlflow.parentRunId"
KIND_JOB, KIND_SWEEP = "job", "sweep"

# --- tags of a sweep's parent run (apex.tracking.sweep_parent, apex.tracking.view) ---
SWEEP_DIR = "apex.sweep_dir"
SWEEP_OVERRIDES = "apex.sweep_overrides"
SWEEP_LAUNCHER = "apex.sweep_launcher"
SWEEP_ATTEMPTS = "apex.sweep_attempts"
SWEEP_PREFIX = "apex.sweep_"  # apex.sweep_<name>: counts the sweeper records
SWEEP_JOBS_PLANNED = "apex.sweep_jobs_planned"  # how many (cell, seed) jobs the sweep command holds
SWEEP_KEYS = "apex.sweep_keys"  # the config keys its jobs differ in, comma-separated
SWEEP_NAME = "apex.sweep_name"
CLOSED_BY = "apex.closed_by"  # who closed a run its own process could not close (sweep close, resume, stale)
RESULTS = "apex.results"  # "complete": set last by a job that logged every result (apex.tracking.lifecycle)
FAILURE = "apex.failure"  # one line: why a run ended FAILED or KILLED
HEARTBEAT = "apex.heartbeat"  # unix seconds of a job's last sign of life (against a tracking server)
PID_START = "apex.pid_start"  # when the job's process started: a reused pid is not mistaken for the job

# --- tags of an exported or registered model (apex.export) ---
RUN_ID = "apex.run_id"
STEP = "apex.step"
STOP_FRACTION_TAG = "apex.stop_fraction"
BASE_MODEL = "apex.base_model"
REPORT = "apex.report"
REPORT_PARENT_RUN_ID = "apex.report_parent_run_id"
WINNER_BASIS = "apex.winner_basis"
REGISTERED_AS = "apex.registered_as"


def data_tag(stage: str, field: str) -> str:
    """apex.data.<stage>.<field>: status, key, path, dvc_md5, sha256 of a stored output the run read."""
    return f"apex.data.{stage}.{field}"


# --- metrics (step = the training step) ---
RANK_AT_1 = "rank_at_1"
STOP_FRACTION = "stop_fraction"
TRAIN_LOSS = "train_loss"
N_QUERIES = "n_queries"
NEGATIVES = "negatives"
BASE_EMBEDDING_CACHE_HIT = "base_embedding_cache_hit"
WALL_SECONDS = "wall_seconds"
CHOSEN_STEP = "chosen_step"
OBJECTIVE = "objective_val_rank_at_1"


# --- artifacts ---
def per_query_table(step: int) -> str:
    """The test split's per-query outcomes at one stop point (mlflow.log_table / load_table)."""
    return f"per_query/step_{step:06d}.json"


# --- what a user reads first (issue 23). MLflow's UI shows a metric as a bare float, so the figures a reader
# compares at a glance are also logged in percent (suffix _pct; differences in percentage points, _pts). The
# per-step metrics (rank_at_1, val_rank_at_1, ... with step=) keep their fractions: the report and exports read them.
# --- per job run: the stop point chosen on validation (apex.pipeline.summary.Summary.chosen_step) ---------------
CHOSEN_FRACTION = "chosen_stop_fraction"
# MLflow's runs table orders metric columns alphabetically: "chosen_by_val" < "chosen_step" < "chosen_test" keeps
# the figure the stop was chosen by first, then the step, then that choice's test figure.
CHOSEN_VAL_RANK_AT_1 = "chosen_by_val_rank_at_1_pct"  # the figure the stop was chosen by: the saved view's sort
CHOSEN_TEST_RANK_AT_1 = "chosen_test_rank_at_1_pct"  # the honest test figure of that choice (never a sort key)
CHOSEN_TEST_NDCG_AT_10 = "chosen_test_ndcg_at_10"
CHOSEN_TEST_RECALL_AT_10 = "chosen_test_recall_at_10_pct"
ZERO_SHOT_TEST_RANK_AT_1 = "zero_shot_test_rank_at_1_pct"  # step 0, the base model, on the same test split

# The per-step metrics charted first ("Retrieval"), in this order.
RETRIEVAL_CHARTS = ("rank_at_1", "val_rank_at_1", "ndcg_at_10", "recall_at_10", "mrr_at_10")

# --- per job run: params and tags -----------------------------------------------------------------------------
ARM_PARAM = "arm"  # plain | apex | custom (erm and sampler not one of the two arms) | the name of `arm=` given

# --- sweep parent: the report's headline (apex.tracking.headline.log_sweep_headline) --------------------------
HEADLINE_DIFFERENCE = "headline_difference_pts"  # treatment minus baseline, percentage points
HEADLINE_CI_LOW = "headline_ci_low_pts"
HEADLINE_CI_HIGH = "headline_ci_high_pts"
HEADLINE_P = "headline_p"
HEADLINE_BASELINE = "headline_baseline_pct"
HEADLINE_TREATMENT = "headline_treatment_pct"
HEADLINE_TAG_PREFIX = "apex.headline."  # + metric, verdict, difference (text), comparison, stop
HEADLINE_VERDICT_TAG = HEADLINE_TAG_PREFIX + "verdict"
HEADLINE_METRIC_TAG = HEADLINE_TAG_PREFIX + "metric"
HEADLINE_TEXT_TAG = HEADLINE_TAG_PREFIX + "text"
