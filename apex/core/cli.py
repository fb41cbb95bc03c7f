"""Every command-line entry point ends the same way: one or two lines per expected failure and a documented status.

    0    success
    1    unexpected error (a bug): the traceback is printed, then one line
    2    bad input data, config value or command line (names the file, record, field or config key)
    3    a service is unavailable or stopped answering (LLM backend, tracking server); re-running resumes
    130  interrupted (Ctrl-C); finished work is cached, re-running resumes

`--verbose` (any command) or `HYDRA_FULL_ERROR=1` prints the traceback of expected failures too. Every line written
here passes through the secret scrubber, and every log record of every logger does (`install_log_scrubber`).

`run_hydra(task)` wraps a `@hydra.main` function: before Hydra sees the command line (and writes its output folder,
whose `.hydra/overrides.yaml` would keep the value), an override holding a credential is refused without repeating
it. Hydra is told to re-raise (`HYDRA_FULL_ERROR=1` inside the process) so that this module formats the error.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from omegaconf import DictConfig

from apex.core.errors import (
    EXIT_BUG,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_SERVICE,
    InputError,
    ServiceError,
    UsageError,
)
from apex.core.preflight import check_tracking
from apex.core.secrets import CREDENTIAL_NAME, install_log_scrubber, scrub, secret_in_overrides

VERBOSE_FLAG = "--verbose"
PARENT_RUN_ENV = "APEX_PARENT_RUN_ID"  # set by the sweeper for its jobs (apex.tracking.mlflow_run); named in hints
# Third-party loggers that log every HTTP request at INFO: noise by default, shown with --verbose.
_CHATTY_LOGGERS = (
    "httpx", "httpx2", "httpcore", "httpcore2", "openai", "urllib3", "mlflow.utils.requests_utils",
    "mlflow.store.db.utils", "alembic",
)  # fmt: skip
# Warnings nobody can act on: bitsandbytes' optional CPU kernels package (harmless; never install `kernels`, which
# fetches code from a hub at run time).
_HARMLESS_LOGGERS = ("bitsandbytes.backends.cpu.ops",)
_MAX_MESSAGE_CHARS = 600
# Ends a message with the command that completes the work (a sweep's `+resume=`): kept whole, however long, since a
# user copies it; only the text before it is shortened.
RESUME_WITH = "resume with: "


def _input_error_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean "fix your input or config" (exit 2); imported lazily (Hydra, OmegaConf)."""
    types: list[type[BaseException]] = [
        InputError, UsageError, FileNotFoundError, PermissionError, IsADirectoryError,
    ]  # fmt: skip
    try:
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        types += [HydraException, OmegaConfBaseException]
    except ImportError:  # pragma: no cover - both are dependencies
        pass
    try:
        from apex.report.config import ReportConfigError

        types.append(ReportConfigError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def _worker_died(exc: BaseException) -> bool:
    """joblib/loky's TerminatedWorkerError: a parallel sweep's worker process was killed (signal, out of memory)."""
    return any(t.__name__ == "TerminatedWorkerError" for t in type(exc).__mro__)


def exit_status(exc: BaseException) -> int:
    """The documented exit status for `exc` (module docstring)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, ServiceError) or _worker_died(exc):
        return EXIT_SERVICE
    if isinstance(exc, _input_error_types()):
        return EXIT_INPUT
    return EXIT_BUG


def one_line(exc: BaseException) -> str:
    """The exception's message on one line, scrubbed; OmegaConf's `full_key` and Hydra's cause are kept."""
    if _worker_died(exc):
        parent = os.environ.get(PARENT_RUN_ENV)
        target = parent or "<the sweep's parent run name or id>"
        return (
            "a sweep worker process died (killed by a signal, often out of memory); finished jobs are recorded: "
            f"re-run the same command with resume={target} to run only the others (fewer hydra.launcher.n_jobs "
            "uses less memory)"
        )
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < 2:
        seen.add(id(current))
        lines = [ln.strip() for ln in str(current).splitlines() if ln.strip()]
        lines = [ln for ln in lines if not ln.startswith(("object_type=", "reference_type=", "Set the environment"))]
        text = "; ".join(lines)
        if text and all(text not in p for p in parts):
            parts.append(text)
        # Hydra wraps OmegaConf's error (which names the key) in its own; other chains are implementation detail.
        cause = current.__cause__
        current = cause if type(current).__module__.startswith(("hydra", "omegaconf")) else None
    return shorten(scrub(": ".join(parts) or type(exc).__name__))


def shorten(message: str) -> str:
    """At most `_MAX_MESSAGE_CHARS` characters, except a trailing resume command, which is never cut."""
    head, mark, command = message.partition(RESUME_WITH)
    if len(head) > _MAX_MESSAGE_CHARS:
        head = head[:_MAX_MESSAGE_CHARS] + (" ... " if mark else " ...")
    return head + mark + command


def report(exc: BaseException, prog: str, verbose: bool) -> int:
    """Print the failure (module docstring) to stderr; returns the exit status."""
    status = exit_status(exc)
    if verbose or status == EXIT_BUG:
        text = "".join(traceback.format_exception(exc))
        sys.stderr.write(scrub(text))
    if status == EXIT_INTERRUPTED:
        sys.stderr.write(f"{prog}: interrupted; finished work is cached, re-run the same command to resume\n")
    elif status == EXIT_BUG:
        sys.stderr.write(f"{prog}: unexpected error ({type(exc).__name__}): {one_line(exc)}\n")
    else:
        sys.stderr.write(f"{prog}: error: {one_line(exc)}\n")
        if not verbose:
            sys.stderr.write(f"(exit status {status}; add {VERBOSE_FLAG} for the traceback)\n")
    sys.stderr.flush()
    return status


def _split_verbose(argv: Sequence[str]) -> tuple[list[str], bool]:
    rest = [a for a in argv if a != VERBOSE_FLAG]
    return rest, len(rest) != len(argv) or os.environ.get("HYDRA_FULL_ERROR") == "1"


def quiet_logs(verbose: bool) -> None:
    """Scrub every log record; keep per-request HTTP logging of third-party clients out unless verbose."""
    install_log_scrubber()
    if not verbose:
        for name in _CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        for name in _HARMLESS_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)


def guard(
    main: Callable[[list[str]], Any], prog: str, argv: Sequence[str] | None = None, verbose: bool | None = None
) -> int:
    """Run an argparse-style `main(argv) -> int | None` and turn any exception into a line and an exit status."""
    args, asked = _split_verbose(sys.argv[1:] if argv is None else argv)
    verbose = asked if verbose is None else verbose
    quiet_logs(verbose)
    try:
        status = main(args)
    except SystemExit:
        raise
    except BaseException as exc:  # every failure becomes a line and a status, bugs included
        return report(exc, prog, verbose)
    return int(status or 0)


def refuse_secret_overrides(argv: Sequence[str], prog: str) -> None:
    """Exit 2 if an override holds a credential; the message names the key, never the value."""
    key = secret_in_overrides(argv)
    if key is None:
        return
    how = (
        "API keys come from the environment only (OPENAI_API_KEY)"
        if CREDENTIAL_NAME.search(key.rsplit(".", 1)[-1])
        else f"keys come from the environment (OPENAI_API_KEY); for a URL with a password export it and pass "
        f"{key}='${{oc.env:VARIABLE}}'"
    )
    sys.stderr.write(
        f"{prog}: error: the command-line value of '{key}' holds a credential (an API key, a URL password or a "
        f"key=/token= parameter); it was not used and nothing was written; {how}\n"
    )
    sys.exit(EXIT_INPUT)


def _log_to_files(message: str) -> None:
    """An ERROR record for the file handlers only (Hydra's run.log), so the terminal does not show it twice."""
    record = logging.getLogger("apex").makeRecord("apex", logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


# The failure of a single (non-multirun) job, handed from the task function to `run_hydra` (see `job`).
_failures: list[BaseException] = []


def job(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Decorate the task function of `@hydra.main` (below it): pre-flight checks first, errors logged once.

    The checks that need only the config (every section's schema, the tracking store) run before the task's heavy
    imports, so a bad value, a dead tracking server or a bad experiment name fails in seconds; the failure is logged
    to the job's log (run.log) as one line. A single run's failure is returned to `run_hydra` (which prints the line
    and exits with its status) instead of raised through Hydra, which would print its own report; in a multirun the
    exception is raised: Hydra records the failed job and goes on with the sweep.
    """

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> Any:
        try:
            from apex.core.configs import load_configs  # light: the config schemas, no torch
            from apex.core.hardware import check_hardware

            configs = load_configs(cfg)  # every section validated: a bad value fails in seconds
            check_hardware(configs.model)  # before any data work or API check (a GPU model on a CPU machine)
            tracking = configs.tracking
            check_tracking(tracking.uri, tracking.experiment, tracking.artifact_root)
            return task(cfg)
        except Exception as exc:
            _log_to_files(one_line(exc))  # the terminal gets the line from `report`; run.log gets it here
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
                raise
            _failures.append(exc)
            return None

    return wrapped


def run_hydra(task: Callable[[], Any], prog: str = "python -m apex.run") -> NoReturn:
    """Entry point around a `@hydra.main` function (module docstring); never returns."""
    argv, verbose = _split_verbose(sys.argv[1:])
    refuse_secret_overrides(argv, prog)
    checked: list[str] = []

    def check(_args: list[str]) -> int:
        from apex.core.precheck import precheck  # schema keys, group options, every composition validated

        checked.extend(precheck(argv))
        return 0

    status = guard(check, prog, argv=argv, verbose=verbose)
    if status:
        sys.exit(status)
    sys.argv = [sys.argv[0], *checked]
    # Hydra 1.3 has no public switch other than this variable to re-raise instead of printing its own report (its
    # `run_and_report`); a multirun's failed job reaches `guard` through it. Single runs return their failure (`job`).
    os.environ["HYDRA_FULL_ERROR"] = "1"
    sys.exit(guard(lambda _args: _run_task(task), prog, argv=checked, verbose=verbose))


def _run_task(task: Callable[[], Any]) -> int:
    task()
    if _failures:
        raise _failures.pop()
    return 0
