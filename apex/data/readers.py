"""Reading raw files at the boundary: every failure becomes an InputError that names file, record and field.

Files whose first two bytes are the gzip magic (1f 8b) are decompressed whatever their name; a name ending in
`.gz` whose bytes are not gzip is an error (a mislabelled file is more likely a mistake than intent).
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from apex.core.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
# A JSONL line longer than this is refused, not read: one record of a corpus is a document, and a line of hundreds
# of megabytes is a broken file (a missing newline, a binary dump) that would otherwise be read whole into memory.
MAX_LINE_BYTES = 64 * 2**20
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def require_file(path: Path) -> Path:
    if not path.exists():
        raise InputError("file does not exist", file=path)
    if not path.is_file():
        raise InputError("is not a regular file", file=path)
    return path


def require_dir(path: Path) -> Path:
    if not path.exists():
        raise InputError("folder does not exist", file=path)
    if not path.is_dir():
        raise InputError("is not a folder", file=path)
    return path


def find_file(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/name.gz` when only the compressed file is there."""
    plain, packed = folder / name, folder / f"{name}.gz"
    if not plain.exists() and packed.exists():
        return require_file(packed)
    return require_file(plain)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        magic = fh.read(2)
    if path.suffix == ".gz" and magic != GZIP_MAGIC:
        raise InputError(f"is not gzip: the name ends in .gz but the file starts with {magic!r}", file=path)
    return magic == GZIP_MAGIC


def _open_binary(path: Path) -> IO[bytes]:
    require_file(path)
    return gzip.open(path, "rb") if _is_gzip(path) else path.open("rb")


def read_text(path: Path) -> str:
    """The whole file decoded as strict UTF-8 (a leading byte-order mark is dropped)."""
    with _open_binary(path) as fh:
        try:
            data = fh.read()
        except _GZIP_ERRORS as err:
            raise InputError(f"corrupt gzip stream ({err})", file=path) from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1)
        raise InputError(
            f"invalid UTF-8 at byte offset {err.start} of the file (byte {column} of the line; {err.reason}: "
            f"{data[err.start : err.start + 1]!r})",
            file=path,
            record=f"line {line}",
        ) from err
    return text.removeprefix("\ufeff")


def read_json(path: Path) -> Any:
    """One JSON document (the whole file)."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(
            f"invalid JSON ({err.msg}, column {err.colno})", file=path, record=f"line {err.lineno}"
        ) from err


def iter_lines(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line without its line ending), streamed; a line over `max_line_bytes` is an
    InputError naming the file and line (it is never read whole)."""
    with _open_binary(path) as fh:
        lineno = offset = 0  # offset: of the line's first byte in the (decompressed) file
        try:
            for raw in iter(lambda: fh.readline(max_line_bytes + 1), b""):
                lineno += 1
                if len(raw) > max_line_bytes:
                    raise InputError(
                        f"line longer than {max_line_bytes:,} bytes (the reading cap of one record): a missing "
                        "newline or a file that is not JSON lines",
                        file=path,
                        record=f"line {lineno}",
                    )
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise InputError(
                        f"invalid UTF-8 at byte offset {offset + err.start} of the file (byte {err.start} of the "
                        f"line; {err.reason})",
                        file=path,
                        record=f"line {lineno}",
                    ) from err
                offset += len(raw)
                if lineno == 1:
                    line = line.removeprefix("\ufeff")
                yield lineno, line.rstrip("\r\n")
        except _GZIP_ERRORS as err:
            raise InputError(f"corrupt gzip stream ({err})", file=path, record=f"line {lineno + 1}") from err


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file; blank lines are skipped (they hold no record)."""
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(
                f"invalid JSON ({err.msg}, column {err.colno})", file=path, record=f"line {lineno}"
            ) from err
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}", file=path, record=f"line {lineno}")
        yield lineno, obj


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def get_field(obj: Mapping[str, Any], field: str, *, file: Path, record: str) -> Any:
    if not isinstance(obj, Mapping):
        raise InputError(f"expected a JSON object, got {_type_name(obj)}", file=file, record=record)
    if field not in obj:
        raise InputError("missing field", file=file, record=record, field=field)
    return obj[field]


def get_text(obj: Mapping[str, Any], field: str, *, file: Path, record: str, allow_empty: bool = False) -> str:
    """A string field; unless `allow_empty`, it must hold a non-whitespace character."""
    value = get_field(obj, field, file=file, record=record)
    if not isinstance(value, str):
        raise InputError(f"expected a string, got {_type_name(value)}", file=file, record=record, field=field)
    if not allow_empty and not value.strip():
        raise InputError("is empty or whitespace", file=file, record=record, field=field)
    return value


def get_id(obj: Mapping[str, Any], field: str, *, file: Path, record: str) -> str:
    """An identifier: a non-empty string, or an integer (read as its decimal string, to match TSV ids)."""
    value = get_field(obj, field, file=file, record=record)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise InputError(f"expected a string id, got {_type_name(value)}", file=file, record=record, field=field)
    if not value.strip():
        raise InputError("id is empty or whitespace", file=file, record=record, field=field)
    return value


def get_list(obj: Mapping[str, Any], field: str, *, file: Path, record: str) -> list[Any]:
    value = get_field(obj, field, file=file, record=record)
    if not isinstance(value, list):
        raise InputError(f"expected a list, got {_type_name(value)}", file=file, record=record, field=field)
    return value
