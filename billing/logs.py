"""Logging for a person at a terminal and for a scheduler's log collector.

Everything the tool says while it works goes through the standard ``logging`` module, to stderr,
under ``billing.<stage>`` loggers (``collect``, ``price``, ``render``, ``ledger``, ``guards``,
``deliver``, ``summary``, ...): the stage is the logger's last name. Two formats:

- ``text``: one line per message; on a terminal, rich's handler and a progress display for the
  long stages (collecting, rendering); elsewhere, plain lines, progress included.
- ``json``: one JSON object per line (``time``, ``severity``, ``level``, ``stage``, ``month``,
  ``command``, ``message`` and the record's own fields), what Cloud Logging (which reads
  ``severity``) and CloudWatch ingest. In this format the command's report goes here too, so
  that everything it writes parses line by line.

``-q`` shows warnings, errors and the closing summary; ``-v`` adds debug lines.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import sys
from typing import Any, Callable, Iterator

ROOT = "billing"
FORMATS = ("text", "json")
_month: contextvars.ContextVar[str] = contextvars.ContextVar("billing_month", default="")
_command: contextvars.ContextVar[str] = contextvars.ContextVar("billing_command", default="")
_state: dict[str, Any] = {"format": "text", "console": None}


def get(stage: str) -> logging.Logger:
    """The logger of one stage, e.g. ``logs.get("collect")``."""
    return logging.getLogger(f"{ROOT}.{stage}")


def set_month(month: object) -> None:
    """Every later record carries this month (``str(month)``)."""
    _month.set(str(month))


class _Context(logging.Filter):
    """Gives each record its stage, month and command, and lets only what the verbosity asks
    for through (the summary always)."""

    def __init__(self, threshold: int):
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        record.stage = record.name.rsplit(".", 1)[-1] if record.name.startswith(ROOT + ".") else record.name
        record.month = _month.get()
        record.command = _command.get()
        return record.levelno >= self.threshold or bool(getattr(record, "summary", False))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "severity": record.levelname, "level": record.levelname.lower(),
            "stage": getattr(record, "stage", ""), "month": getattr(record, "month", ""),
            "command": getattr(record, "command", ""), "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"{getattr(record, 'stage', record.name)}: {level}{record.getMessage()}"


def setup(verbosity: int = 0, log_format: str = "text", command: str = "", stream=None) -> None:
    """Send the ``billing`` loggers to ``stream`` (stderr) in ``log_format``; ``verbosity`` -1
    (quiet), 0 or 1 (verbose). Replaces any earlier setup (each command sets up once)."""
    stream = stream if stream is not None else sys.stderr
    _command.set(command)
    _month.set("")
    root = logging.getLogger(ROOT)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG)
    root.propagate = False
    threshold = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    console = None
    if log_format == "json":
        handler: logging.Handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
    elif _is_terminal(stream):
        from rich.console import Console
        from rich.highlighter import NullHighlighter
        from rich.logging import RichHandler

        console = Console(file=stream, stderr=stream is sys.stderr)
        handler = RichHandler(console=console, show_path=False, markup=False, rich_tracebacks=False,
                              highlighter=NullHighlighter(), log_time_format="[%H:%M:%S]")
        handler.setFormatter(logging.Formatter("%(stage)s: %(message)s"))
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(_TextFormatter())
    handler.addFilter(_Context(threshold))
    root.addHandler(handler)
    _state.update(format=log_format, console=console, quiet=verbosity < 0)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def is_json() -> bool:
    return _state["format"] == "json"


@contextlib.contextmanager
def progress(stage: str, total: int, what: str) -> Iterator[Callable[[str], None]]:
    """Report the steps of a long stage: a progress bar on a terminal, else one log line per
    step (``collect: gcp-export (1 of 2 sources)``). Yields ``step(name)``, called as each step
    starts."""
    log = get(stage)
    console = _state["console"]
    if console is None or _state.get("quiet") or total < 1:
        done = 0

        def step(name: str) -> None:
            nonlocal done
            done += 1
            log.info("%s (%d of %d %s)", name, done, total, what)

        yield step
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(f"{stage}: {what}", total=total)
        started = False

        def step(name: str) -> None:
            nonlocal started
            if started:
                bar.advance(task)
            started = True
            bar.update(task, description=f"{stage}: {name}")

        yield step
        bar.update(task, completed=total)


def summary(message: str, ok: bool, **fields: Any) -> None:
    """The closing one-line summary of a command, shown at every verbosity; ``fields`` go into
    its JSON object."""
    get("summary").log(logging.INFO if ok else logging.ERROR, message, extra={"summary": True, "fields": fields})
