"""Headless-browser check of what a user sees in MLflow after a sweep and its report: the answer first.

    python benchmarks/mlflow_ui_check.py [--store DIR] [--out DIR]

Runs a two-arm smoke sweep (`arm=plain,apex`, one seed, a short budget) into a fresh store unless --store holds
one, and `python -m apex.report` on it; takes the `MLflow UI:` line the jobs print (for the default SQLite store:
the `mlflow ui ...` command, then the link), runs that command, and opens the link in Chromium (Debian's
`chromium` package, driven by Playwright: `pip install playwright`, no browser download). Checks, and prints:

- the runs table's first metric columns are the chosen stop point's validation and test rank@1, and the table is
  sorted by the validation one (the sort arrow's column);
- the sweep parent's row and its run page carry the report's headline (difference, interval, p, verdict).

Saves screenshots (runs table, charts, the parent's page) under --out: look at them. Exit status 1 if a check
fails. Times on a shared machine are indicative only.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout

from apex.tracking import names  # noqa: E402
from apex.tracking.server import wait_healthy  # noqa: E402

FAST = ["experiment=smoke", "dataset.max_documents=120", "dataset.splits.test=40", "dataset.splits.val=10",
        "training.max_steps=4", "torch_threads=1"]  # fmt: skip
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def sh(cmd: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def make_store(store: Path, env: dict[str, str]) -> str:
    """Sweep + report into `store`; returns what the sweep printed."""
    sweep = [sys.executable, "-m", "apex.run", "-m", "arm=plain,apex", *FAST, f"paths.experiments={store}",
             f"paths.data={store}/data", f"hydra.sweep.dir={store}/sweep"]  # fmt: skip
    printed = sh(sweep, env)
    (store / "sweep.log").write_text(printed)
    sh([sys.executable, "-m", "apex.report", "--tracking-uri", f"sqlite:///{store}/mlflow.db",
        "--out-root", str(store / "reports")], env)  # fmt: skip
    return printed


def printed_ui(printed: str) -> tuple[list[str], str]:
    """The `mlflow ui` command and the link from a job's `MLflow UI:` line."""
    line = next(ln for ln in printed.splitlines() if ln.startswith("MLflow UI:"))
    match = re.match(r"MLflow UI: `(?P<cmd>mlflow ui [^`]+)`, then open (?P<url>\S+)", line)
    if match is None:
        sys.exit(f"no command and link in {line!r}")
    return shlex.split(match["cmd"]), match["url"]


def serve(command: list[str], url: str, env: dict[str, str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mlflow", *command[1:], "--host", "127.0.0.1", "--workers", "1"]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip
    try:
        wait_healthy(url.split("/#")[0], server, timeout=180)
    except (RuntimeError, TimeoutError) as exc:
        os.killpg(server.pid, signal.SIGTERM)
        sys.exit(f"mlflow ui: {exc}")
    return server


def header_order(page) -> list[str]:
    """The runs table's column headers, left to right (ag-grid: aria-colindex)."""
    cells = page.eval_on_selector_all(
        ".ag-header-cell", "els => els.map(e => [Number(e.getAttribute('aria-colindex')), e.innerText.trim()])"
    )
    return [text for _, text in sorted(cells) if text]


ATTRIBUTE_COLUMNS = {"Run Name", "Created", "Dataset", "Duration", "Source", "Models", "User", "Version", "Metrics",
                     "Parameters", "Tags"}  # fmt: skip


def check(page, url: str, out: Path) -> list[str]:
    """Open the link; returns the failed checks (empty: all passed)."""
    failures: list[str] = []
    page.goto(url, wait_until="load", timeout=180_000)
    page.wait_for_selector(".ag-header-cell", timeout=180_000)
    page.wait_for_timeout(4000)
    page.screenshot(path=str(out / "1-runs-table.png"))
    headers = header_order(page)
    print("runs table columns, left to right:", headers)
    first = [h for h in headers if h not in ATTRIBUTE_COLUMNS][:4]
    for name in (names.CHOSEN_VAL_RANK_AT_1, names.CHOSEN_TEST_RANK_AT_1):
        if not any(name.startswith(h.rstrip(".…")) or h.startswith(name) for h in first):
            failures.append(f"{name} is not among the first columns {first}")
    sort = page.inner_text("body").split("Sort:", 1)[-1].split("\n", 1)[0].strip()
    print("sorted by:", sort)
    if not sort.startswith(names.CHOSEN_VAL_RANK_AT_1):
        failures.append(f"the table is sorted by {sort!r}, not {names.CHOSEN_VAL_RANK_AT_1}")
    for name in (names.HEADLINE_DIFFERENCE, names.HEADLINE_P):
        if not any(name.startswith(h.rstrip(".…")) or h.startswith(name) for h in headers):
            failures.append(f"no {name} column for the sweep parent's headline")
    return failures


def check_parent(page, server: str, experiment: str, parent: str, out: Path) -> list[str]:
    page.goto(f"{server}/#/experiments/{experiment}/runs/{parent}?workflowType=machine_learning",
              wait_until="load", timeout=180_000)  # fmt: skip
    page.wait_for_timeout(4000)
    page.screenshot(path=str(out / "3-sweep-parent.png"), full_page=True)
    text = page.inner_text("body")
    wanted = [names.HEADLINE_DIFFERENCE, names.HEADLINE_P, names.HEADLINE_VERDICT_TAG]
    missing = [w for w in wanted if w not in text]
    print("sweep parent page shows:", [w for w in wanted if w in text])
    return [f"the parent's page does not show {m}" for m in missing]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, help="an apex experiments folder with a reported sweep (default: new)")
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "screenshots-ui-check")
    args = parser.parse_args()
    from mlflow import MlflowClient
    from playwright.sync_api import sync_playwright

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    store = args.store or Path(tempfile.mkdtemp(prefix="apex-ui-"))
    started = time.perf_counter()
    printed = (store / "sweep.log").read_text() if (store / "sweep.log").exists() else make_store(store, env)
    print(f"store {store}: sweep + report in {time.perf_counter() - started:.0f} s")
    command, url = printed_ui(printed)
    print("printed:", " ".join(command), "then", url)
    client = MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow.db")
    experiment = client.get_experiment_by_name("apex").experiment_id
    (parent,) = client.search_runs([experiment], "tags.`apex.kind` = 'sweep'", max_results=1)
    print("parent headline:", {k: v for k, v in parent.data.metrics.items() if k.startswith("headline")})
    server = serve(command, url, env)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1900, "height": 1000})
            failures = check(page, url, args.out)
            page.goto(url.replace("runs?", "runs?compareRunsMode=CHART&"), wait_until="load", timeout=180_000)
            page.wait_for_timeout(8000)
            page.screenshot(path=str(args.out / "2-charts.png"))
            failures += check_parent(page, url.split("/#")[0], experiment, parent.info.run_id, args.out)
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    print(f"screenshots in {args.out}")
    for failure in failures:
        print("FAILED:", failure)
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
