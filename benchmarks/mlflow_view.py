"""Screenshots of the MLflow UI a user lands in after a sweep, a report and an export (headless Chromium).

    python benchmarks/mlflow_view.py [--store DIR] [--out DIR] [--port 5071]

Runs a two-arm smoke sweep (`arm=plain,apex`, one seed, a short budget) into a fresh store unless --store already
holds one, reports it with `--register` (the headline becomes the sweep parent's description; the winner is
registered), starts `mlflow server` on that store, and saves PNGs of: the run list, the sweep parent's overview,
a child's overview (its description, stop points, adapters), the rank@1 charts (apex's saved view, model-training
mode), the registered model, and the bare experiment link (MLflow's GenAI default) for comparison.
Prints the time of each phase and the files written; look at the PNGs. Needs `chromium` (apt-get install
chromium). The machine may be shared: times are indicative only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

from mlflow import MlflowClient

from apex.tracking.saved_view import experiment_url
from apex.tracking.server import wait_healthy
from apex.tracking.view import mark_model_training

REPO = Path(__file__).resolve().parents[1]
FAST = ["experiment=smoke", "dataset.max_documents=120", "dataset.splits.test=40", "dataset.splits.val=10",
        "training.max_steps=4", "torch_threads=1"]  # fmt: skip


def sh(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def make_store(store: Path, env: dict[str, str]) -> None:
    sweep = [sys.executable, "-m", "apex.run", "-m", "arm=plain,apex", *FAST, f"paths.experiments={store}",
             f"paths.data={store}/data", f"hydra.sweep.dir={store}/sweep"]  # fmt: skip
    sh(sweep, env)
    report = [sys.executable, "-m", "apex.report", "--tracking-uri", f"sqlite:///{store}/mlflow.db", "--out-root",
              str(store / "reports"), "--register", "apex-smoke", "--export-root", str(store / "exports")]  # fmt: skip
    sh(report, env)


def serve(store: Path, port: int, env: dict[str, str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{store}/mlflow.db",
           "--default-artifact-root", str(store / "mlartifacts"), "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]  # fmt: skip
    server = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server, timeout=120)
    except (RuntimeError, TimeoutError) as exc:
        server.kill()
        sys.exit(str(exc))
    return server


def api(port: int, path: str, payload: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/2.0/mlflow/{path}",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def screenshot(chromium: str, url: str, path: Path, budget_ms: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1600,1000",
         f"--virtual-time-budget={budget_ms}", f"--screenshot={path}", url],
        capture_output=True, timeout=180, check=True,
    )  # fmt: skip
    return time.perf_counter() - started


def pages(port: int) -> dict[str, str]:
    """name → URL of each page to capture, found through the server's REST API."""
    found = api(port, "experiments/search", {"filter": "name = 'apex'", "max_results": 10})
    experiment = found["experiments"][0]["experiment_id"]
    runs = api(port, "runs/search", {"experiment_ids": [experiment], "max_results": 50})["runs"]
    parent = next(r for r in runs if any(t["key"] == "apex.kind" and t["value"] == "sweep" for t in r["data"]["tags"]))
    children = [r for r in runs if r is not parent]
    child = children[-1]["info"]["run_id"]
    ids = json.dumps([r["info"]["run_id"] for r in children])
    server = f"http://127.0.0.1:{port}"
    base, ml = f"{server}/#", "?workflowType=machine_learning"  # MLflow 3.17 takes the mode from the link
    metric = (
        f"{base}/metric?runs={quote(ids)}&metric={quote(json.dumps('rank_at_1'))}&experiments={quote(json.dumps([experiment]))}"
        f"&plot_metric_keys={quote(json.dumps(['rank_at_1']))}&plot_layout={{}}&x_axis=step&y_axis_scale=linear"
        "&line_smoothness=1&show_point=true&deselected_curves=[]&last_linear_y_axis_range=[]"
    )
    return {
        "1-run-list": experiment_url(server, experiment, charts=False),  # the saved view: sorted by rank@1
        "2-sweep-parent": f"{base}/experiments/{experiment}/runs/{parent['info']['run_id']}{ml}",
        "3-child-overview": f"{base}/experiments/{experiment}/runs/{child}{ml}",
        "4-rank-at-1-charts": experiment_url(server, experiment),  # chart view: the "Retrieval" section first
        "5-registered-model": f"{base}/models/apex-smoke{ml}",
        "6-rank-at-1-metric-page": metric,
        "7-plain-link-genai-default": f"{base}/experiments/{experiment}/runs",  # what a bare link shows
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, help="an apex experiments folder with a reported sweep (default: new)")
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "screenshots")
    parser.add_argument("--port", type=int, default=5071)
    parser.add_argument("--budget-ms", type=int, default=20000, help="Chromium virtual time per page")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        sys.exit("needs chromium: apt-get install chromium")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    store = args.store or Path(tempfile.mkdtemp(prefix="apex-view-"))
    started = time.perf_counter()
    if not (store / "mlflow.db").exists():
        make_store(store, env)
    print(f"store {store}: sweep + report --register in {time.perf_counter() - started:.0f} s (machine shared)")
    client = MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow.db")
    mark_model_training(client, client.get_experiment_by_name("apex").experiment_id)  # a store from an older apex
    server = serve(store, args.port, env)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, url in pages(args.port).items():
            path = args.out / f"{name}.png"
            seconds = screenshot(chromium, url, path, args.budget_ms)
            print(f"{name}: {path} ({path.stat().st_size // 1024} KiB, {seconds:.1f} s)")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
