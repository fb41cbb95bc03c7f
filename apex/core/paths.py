"""Names that become paths stay inside their root: `child_path(root, name, what)`.

An experiment name, a run name or a report name is joined onto a root folder (artifact root, reports/); a name with
a separator, `..`, a drive or a NUL byte could write anywhere (`tracking.experiment='../../x'` once wrote artifacts
at the filesystem root). Such names are refused with an `ConfigError` naming the config key.
"""

from __future__ import annotations

from pathlib import Path

from apex.core.errors import ConfigError

_BAD_CHARS = ("/", "\\", "\x00")


def check_name(name: str, what: str, source: str = "config") -> str:
    """`name` if it is one plain path component (no separator, not '.' or '..', not empty); else `ConfigError`."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(what, "must be a non-empty name", source=source)
    if any(c in name for c in _BAD_CHARS) or name in (".", "..") or ":" in name[:2]:
        raise ConfigError(
            what,
            f"{name!r} is not a plain name (no '/', backslash or '..'): it becomes a folder inside its root",
            source=source,
        )
    return name


def child_path(root: str | Path, name: str, what: str, source: str = "config") -> Path:
    """`root / name`, checked to stay inside `root` (after resolving symlinks and '..')."""
    check_name(name, what, source)
    base = Path(root).resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base):
        raise ConfigError(what, f"{name!r} leads outside {base}", source=source)
    return path


def inside(path: str | Path, folder: str | Path) -> bool:
    """True when `path` (resolved) lies in `folder` (resolved)."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())
