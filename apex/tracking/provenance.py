"""Where a run's code came from: git commit and whether the work tree had uncommitted changes."""

from __future__ import annotations

import subprocess
from pathlib import Path

# Folders of generated outputs that are not code: a report written there does not make the code differ from the commit.
OUTPUT_PATHS = ("reports",)


def git_state(directory: str | Path = ".") -> tuple[str, bool]:
    """(commit sha or "unknown", dirty): dirty means the code differs from the commit: a tracked file changed, or a
    file git does not ignore was added, outside the generated-output folders (`OUTPUT_PATHS`)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=directory, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        top = git("rev-parse", "--show-toplevel")
        excluded = [f":(exclude,top){path}" for path in OUTPUT_PATHS if (Path(top) / path).exists()]
        dirty = bool(git("status", "--porcelain", "--", ":(top)", *excluded))
    except (OSError, subprocess.SubprocessError):
        return "unknown", True
    return commit, dirty
