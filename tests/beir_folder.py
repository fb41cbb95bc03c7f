"""Write a tiny BEIR folder (corpus.jsonl, queries.jsonl, qrels/*.tsv) for tests: graded, multi-relevant."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

Qrels = Sequence[tuple[str, str, int]]


def write_beir(
    folder: Path,
    corpus: Sequence[tuple[str, str, str]],
    queries: Sequence[tuple[str, str]],
    qrels: Mapping[str, Qrels],
    crlf: bool = True,
) -> Path:
    """corpus: (id, title, text); queries: (id, text); qrels: split → (query, doc, score). CRLF like NFCorpus."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for doc_id, title, text in corpus:
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text, "metadata": {}}) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for query_id, text in queries:
            fh.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    end = "\r\n" if crlf else "\n"
    for split, rows in qrels.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in rows]
        (folder / "qrels" / f"{split}.tsv").write_text(end.join(lines) + end, encoding="utf-8", newline="")
    return folder


TOPICS = ["statins", "asthma", "vitamin", "sleep", "coffee", "kidney", "cancer", "iron"]


def topical_beir(folder: Path, with_dev: bool = True, docs_per_topic: int = 5) -> Path:
    """A folder whose queries are answerable: topic t's documents mention t; queries ask about t.

    8 topics x `docs_per_topic` documents (titled), 3 queries per topic. Queries of topics 0-3 are training
    queries (every document of the topic relevant, score 1); topic 4-5 queries go to dev, 6-7 to test (graded:
    the topic's first document 2, the next two 1). One training query (q0_0) is also judged in test: a clash.
    """
    corpus = [
        (f"d{t}_{i}", f"{topic.title()} study {i}", f"A report number {i} about {topic} and its effects on health.")
        for t, topic in enumerate(TOPICS)
        for i in range(docs_per_topic)
    ]
    queries = [
        (f"q{t}_{j}", f"what does {topic} do, question {j}?") for t, topic in enumerate(TOPICS) for j in range(3)
    ]
    train = [(f"q{t}_{j}", f"d{t}_{i}", 1) for t in range(4) for j in range(3) for i in range(docs_per_topic)]
    graded = [(0, 2), (1, 1), (2, 1)]
    dev = [(f"q{t}_{j}", f"d{t}_{i}", g) for t in (4, 5) for j in range(3) for i, g in graded]
    test = [(f"q{t}_{j}", f"d{t}_{i}", g) for t in (6, 7) for j in range(3) for i, g in graded]
    test.append(("q0_0", "d0_0", 1))
    test.append(("q6_0", "d6_4", 0))  # score 0: "not relevant", skipped by the reader
    qrels = {"train": train, "test": test}
    if with_dev:
        qrels["dev"] = dev
    return write_beir(folder, corpus, queries, qrels)
