"""The report lists data versions per configuration and warns when compared cells saw different test data."""

from __future__ import annotations

from types import SimpleNamespace

from apex.report.provenance import data_versions, unpaired_test_data_warnings, version_notes


def run(cell: str, label: str, test: str, negatives: str | None = None) -> SimpleNamespace:
    tags = {"apex.cell": cell, "apex.cell_label": label, "apex.data.test_fingerprint": test}
    if negatives is not None:
        tags |= {"apex.data.negatives.status": "pinned", "apex.data.negatives.dvc_md5": negatives}
    return SimpleNamespace(data=SimpleNamespace(tags=tags))


def test_versions_per_cell_and_a_warning_only_for_unpaired_comparisons() -> None:
    runs = [
        run("a", "arm=plain", "t1"),
        run("a", "arm=plain", "t1"),
        run("b", "arm=apex", "t1", negatives="0123456789abcdef.dir"),
        run("c", "arm=apex dataset.split_seed=1", "t2", negatives="fedcba9876543210.dir"),
    ]
    versions = data_versions(runs)
    assert versions["a"]["test"] == {"t1"} and versions["b"]["negatives"] == {"pinned 0123456789ab"}
    notes = version_notes(versions)
    assert notes[1] == "data versions, cell arm=apex: test data t1; negatives pinned 0123456789ab"
    warnings = unpaired_test_data_warnings(versions, {"b": "a", "c": "a"})
    assert len(warnings) == 1 and "arm=apex dataset.split_seed=1" in warnings[0] and "t2 vs t1" in warnings[0]
