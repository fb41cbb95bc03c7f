"""Where a run's code came from: git commit and whether the work tree had uncommitted changes."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_state(directory: str | Path = ".") -> tuple[str, bool]:
    """(commit sha or "unknown", dirty). Untracked files count as dirty only when git does not ignore them."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=directory, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain"))
    except (OSError, subprocess.SubprocessError):
        return "unknown", True
    return commit, dirty
