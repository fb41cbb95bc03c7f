"""The one error type for bad input: it always says where the bad value is."""

from __future__ import annotations

from os import PathLike


class InputError(ValueError):
    """Bad input data, located by file, record (line number or id) and field.

    >>> str(InputError("is empty", file="corpus.jsonl", record="line 3", field="text"))
    "corpus.jsonl: line 3: field 'text': is empty"
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | PathLike[str],
        record: str | int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file)
        self.record = record
        self.field = field
        self.reason = message
        parts = [self.file]
        if record is not None:
            parts.append(str(record))
        if field is not None:
            parts.append(f"field '{field}'")
        super().__init__(": ".join([*parts, message]))
