"""What the command line shares across commands: the options every command takes, the clock,
the command's report, and how a failure becomes one line, a closing summary and an exit code.

``billing.cli`` holds the commands; this module is the one place errors become exit codes:
0 ok, 1 a data, reconciliation, guard or delivery problem, 2 a usage or config error. In JSON
log mode everything a command writes, click's own usage errors included, is a JSON line.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Callable, NoReturn, Sequence

import click

from . import dates, logs, summary
from .config import DEFAULT_CONFIG
from .errors import BillingError, UsageError
from .records import Month
from .summary import human_bytes

CONTEXT = {"help_option_names": ["-h", "--help"]}
EXIT_CODES = ("Exit codes: 0 done; 1 a data, reconciliation, guard or delivery problem (the error line says "
              "what to do: run again later, fix the config or --allow, or billing deliver); 2 a usage or config "
              "error.")

config_option = click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=DEFAULT_CONFIG,
    show_default=True, envvar="BILLING_CONFIG", help="Config file (or set BILLING_CONFIG).")
output_option = click.option(
    "--output", type=click.Path(path_type=Path), default=None,
    help="Output folder (default: the config's output), as given to billing run.")


def _jobs(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """``--jobs`` (or ``BILLING_JOBS``): a whole number of 1 or more, else a usage error (exit 2)."""
    from .render.pool import parse_jobs  # (the renderer's module: imported only when a command has --jobs)

    if value is None:
        return None
    jobs = parse_jobs(value)
    if jobs is None:
        from_environment = ctx.get_parameter_source(param.name) == click.core.ParameterSource.ENVIRONMENT
        raise click.BadParameter(f"give a positive whole number of worker processes, e.g. 2 "
                                 f"({'BILLING_JOBS is' if from_environment else 'got'} {value!r})", ctx, param)
    return jobs


jobs_option = click.option(
    "--jobs", metavar="N", envvar="BILLING_JOBS", default=None, callback=_jobs,
    help="Render the PDF invoices with N worker processes (or set BILLING_JOBS); default: one per CPU this "
         "process may use; 1 renders them in this process.")


def today_option(used_for: str) -> Callable:
    """``--today`` (or ``BILLING_TODAY``): the date taken as today, ``used_for`` what it says."""
    return click.option("--today", metavar="YYYY-MM-DD", envvar="BILLING_TODAY", default=None,
                        help=f"Take this date (UTC) as today, {used_for} (or set BILLING_TODAY); default: the "
                             "real date.")


def month_options(required: bool = True) -> Callable:
    """``--month YYYY-MM|last`` and ``--today``, the clock every date rule reads."""
    def decorate(function: Callable) -> Callable:
        function = today_option("for --month last and the settle rule")(function)
        return click.option("--month", required=required, metavar="YYYY-MM|last",
                            help="Invoice month, e.g. 2022-09, or 'last': the month before today's (UTC).")(function)
    return decorate


def logging_options(function: Callable) -> Callable:
    """``-v``, ``-q`` and ``--log-format`` on every command; sets up logging before it runs."""
    @click.option("-v", "--verbose", is_flag=True, help="Also log debug lines.")
    @click.option("-q", "--quiet", is_flag=True, help="Log only warnings, errors and the closing summary.")
    @click.option("--log-format", type=click.Choice(logs.FORMATS), default="text", envvar="BILLING_LOG_FORMAT",
                  show_default=True, help="text, or json: one JSON object per line on stderr, for Cloud Logging "
                                          "or CloudWatch (or set BILLING_LOG_FORMAT).")
    @functools.wraps(function)
    def run(*args, verbose: bool, quiet: bool, log_format: str, **kwargs):
        ctx = click.get_current_context()
        logs.setup(1 if verbose else -1 if quiet else 0, log_format, " ".join(["billing", *ctx.command_path.split()[1:]]))
        if verbose and quiet:
            raise UsageError("give -v or -q, not both")
        return function(*args, **kwargs)
    return run


class Job:
    """What the command is doing, for its closing summary (also when it fails)."""

    def __init__(self) -> None:
        self.month: Month | None = None
        self.summary = False  # run, finalize and deliver end with one
        self.closing: summary.Summary | None = None  # once the month's invoices are known

    def start(self, month: Month) -> Month:
        self.month = month
        logs.set_month(month)
        return month


def job(summary: bool = False) -> Job:
    """The command's job; ``summary``: it ends with a summary line, from now on also on failure."""
    job = click.get_current_context().ensure_object(Job)
    job.summary = job.summary or summary
    return job


def today(given: str | None):
    """Today as --today or BILLING_TODAY say (warned about: a value left behind would bill one
    month for ever), else the real date (UTC)."""
    day, real = dates.today(given), dates.today()
    if day != real:
        logs.get("dates").warning("taking %s as today (--today or BILLING_TODAY), not the real date %s", day, real)
    return day


def say(line: str = "") -> None:
    """A line of the command's report: stdout, or in JSON logs a record of its own."""
    if logs.is_json():
        logs.get("report").info(line, extra={"summary": True})  # the command's output: shown even with -q
    else:
        click.echo(line)


def fail(error: BillingError, command: str) -> None:
    for note in error.notes:  # what was done and paid before the failure, reported like a run's notes
        say(note)
    if logs.is_json():
        logs.get("error").error(error.message, extra={"fields": {"exit_code": error.exit_code,
                                                                  "problems": list(error.problems)}})
    else:
        click.echo(f"Error: {error.message}", err=True)
        for problem in error.problems:
            click.echo(f"  {problem}", err=True)
    job = click.get_current_context().find_object(Job)
    if job is not None and job.closing is not None:  # the month was billed; what came after failed
        logs.summary(f"{job.closing.line()}; then failed with exit code {error.exit_code}", ok=False,
                     exit_code=error.exit_code, error=error.message, **job.closing.fields())
    elif job is not None and job.summary:
        logs.summary(f"{command} {job.month or '(no month)'}: failed with exit code {error.exit_code}, nothing written; paid API "
                     f"requests {error.paid_requests}; bytes scanned {human_bytes(error.bytes_scanned)}", ok=False,
                     exit_code=error.exit_code, error=error.message, paid_api_requests=error.paid_requests,
                     bytes_scanned=error.bytes_scanned)
    sys.exit(error.exit_code)


class Group(click.Group):
    """Turns click's own usage errors into exit 2 (its default) and every BillingError into one
    line; with ``--log-format json`` asked for, click's usage errors are a JSON line too."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # the parser consumes args
        ctx.meta.setdefault("billing.args", given)
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:  # e.g. an option before the command's name
            _usage_error(error, given, "billing")

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BillingError as error:
            fail(error, f"billing {ctx.invoked_subcommand or ''}".strip())
        except click.UsageError as error:
            _usage_error(error, ctx.meta.get("billing.args", []), f"billing {ctx.invoked_subcommand or ''}".strip())


def _usage_error(error: click.UsageError, args: Sequence[str], command: str) -> NoReturn:
    """Click's own usage error: as click prints it, or as one JSON line when JSON logs are asked for."""
    if not _json_asked(args):
        raise error
    logs.setup(0, "json", command)
    logs.get("error").error(error.format_message(), extra={"fields": {"exit_code": error.exit_code}})
    sys.exit(error.exit_code)


def _json_asked(args: Sequence[str]) -> bool:
    """Whether the command line (or the environment) asks for JSON logs, before it is parsed."""
    for at, arg in enumerate(args):
        if arg == "--log-format=json" or (arg == "--log-format" and args[at + 1:at + 2] == ["json"]):
            return True
    return os.environ.get("BILLING_LOG_FORMAT") == "json" and "--log-format" not in " ".join(args)
