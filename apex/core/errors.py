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


class ConfigError(InputError):
    """A configuration value that fails its group's schema; the message names the full key.

    >>> str(ConfigError("training.lr", "must be > 0, got 0.0"))
    'config: training.lr: must be > 0, got 0.0'
    """

    def __init__(self, key: str, message: str, *, source: str | PathLike[str] = "config") -> None:
        section, _, field = key.partition(".")
        super().__init__(message, file=source, record=section, field=field or None)
        self.key = key
        self.args = (f"{self.file}: {key}: {message}",)


class UsageError(ValueError):
    """A command-line argument that names nothing usable (a run, a sweep, a stop point, a folder): exit status 2.

    The message says what was asked for and what exists instead.
    """


class ServiceError(RuntimeError):
    """A service the run needs cannot serve it (LLM backend, tracking server): the input is fine, retry later.

    The message names the service and what to check; it never holds a credential.
    """


# Exit statuses of every command-line entry point (`apex.core.cli` maps exceptions to them; docs/errors.md lists them).
EXIT_OK = 0
EXIT_BUG = 1  # an unexpected error: the traceback is printed
EXIT_INPUT = 2  # bad input data, config value or command line
EXIT_SERVICE = 3  # a service is unavailable or stopped answering; re-running resumes
EXIT_INTERRUPTED = 130  # Ctrl-C
