"""Progress bars only on a terminal; plain periodic log lines in files (apex.core.progress)."""

from __future__ import annotations

import logging

import pytest

from apex.core import progress
from apex.core.progress import LogProgress, progress_bar


def test_off_a_terminal_progress_is_plain_log_lines(monkeypatch, caplog) -> None:
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    caplog.set_level(logging.INFO, logger="apex.progress")
    bar = progress_bar(range(4), desc="train", enabled=True, interval=0.0, bar_format="ignored off a terminal")
    assert isinstance(bar, LogProgress)
    for step in bar:
        bar.set_postfix_str(f"loss {step / 10:.4f}")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("train: 1/4 (25%), ") and "s left" in lines[0]
    assert lines[-1].startswith("train: 4/4 (100%), ") and lines[-1].endswith("loss 0.3000 (done)")
    assert not any("\r" in line or "\x1b" in line for line in lines)  # no redraws, no cursor codes


def test_disabled_progress_is_silent_and_a_terminal_gets_tqdm(monkeypatch, caplog) -> None:
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    caplog.set_level(logging.INFO, logger="apex.progress")
    bar = progress_bar(total=3, desc="erm map (spacy)", enabled=False, interval=0.0)
    bar.update(3)
    bar.close()
    assert caplog.records == []
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    tqdm = pytest.importorskip("tqdm")
    bar = progress_bar(total=3, desc="x", enabled=True, disable=True)
    assert isinstance(bar, tqdm.std.tqdm)
    bar.close()


def test_train_bar_format_has_no_empty_postfix_slot() -> None:
    from apex.train.loop import BAR_FORMAT

    assert ", {postfix}" not in BAR_FORMAT  # tqdm puts ", " before a postfix itself: "[00:17, , loss" before
