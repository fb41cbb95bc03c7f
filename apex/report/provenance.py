"""Data versions per configuration, from the provenance tags every job run carries (apex.data.*).

A comparison is only fair on the same test queries: `unpaired_test_data_warnings` names every compared pair of
cells whose runs were evaluated on different test data (different `apex.data.test_fingerprint`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mlflow.entities import Run

from apex.tracking import names

TEST_TAG = names.TEST_FINGERPRINT
STAGES = ("prepared", "erm", "negatives")


def data_versions(runs: Iterable[Run]) -> dict[str, dict[str, set[str]]]:
    """cell → {"test": test fingerprints, "<stage>": "<status> <dvc md5>"} over the cell's runs."""
    versions: dict[str, dict[str, set[str]]] = {}
    for run in runs:
        tags = run.data.tags
        cell = tags.get(names.CELL)
        if cell is None:
            continue
        entry = versions.setdefault(cell, {"label": set(), "test": set(), **{s: set() for s in STAGES}})
        entry["label"].add(tags.get(names.CELL_LABEL, cell))
        entry["test"].add(tags.get(TEST_TAG, "untagged"))
        for stage in STAGES:
            md5 = tags.get(names.data_tag(stage, "dvc_md5"))
            if md5 is not None:
                entry[stage].add(f"{tags.get(f'apex.data.{stage}.status', '?')} {md5[:12]}")
    return versions


def version_notes(versions: Mapping[str, Mapping[str, set[str]]]) -> list[str]:
    """One line per cell: its test data and the DVC md5 of the splits, maps and negatives it trained on."""
    lines = []
    for _, entry in sorted(versions.items()):
        parts = [f"test data {', '.join(sorted(entry['test']))}"]
        parts += [f"{stage} {', '.join(sorted(entry[stage]))}" for stage in STAGES if entry[stage]]
        lines.append(f"data versions, cell {', '.join(sorted(entry['label']))}: {'; '.join(parts)}")
    return lines


def unpaired_test_data_warnings(versions: Mapping[str, Mapping[str, set[str]]], pairs: Mapping[str, str]) -> list[str]:
    """WARNING lines for compared cells (cell → baseline) not evaluated on one and the same test data."""
    warnings = []
    for cell, baseline in sorted(pairs.items()):
        ours, theirs = versions.get(cell, {}).get("test", set()), versions.get(baseline, {}).get("test", set())
        if len(ours | theirs) > 1:
            label = ", ".join(sorted(versions.get(cell, {}).get("label", {cell})))
            warnings.append(
                f"WARNING: cell {label} and its baseline were evaluated on different test data "
                f"({', '.join(sorted(ours))} vs {', '.join(sorted(theirs))}): their comparison is not paired"
            )
    return warnings
