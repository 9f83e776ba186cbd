"""One family of errors, each carrying the exit code the CLI turns it into.

Every error is one line that names what is wrong and where. The CLI prints it in exactly one
place (``billing.cli``) without a traceback.

Exit codes: 0 ok, 1 a problem with the data or the reconciliation, 2 a usage or config error.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_DATA = 1
EXIT_USAGE = 2


class BillingError(Exception):
    """Base of every error the tool reports to a person.

    Attributes:
        message: the one line naming what is wrong and where.
        problems: each problem of a config, one line each, printed under the message.
        notes: what the run did and paid for before it failed (e.g. paid API requests), one
            line each, printed before the message; code that catches the error may add to them.
    """

    exit_code = EXIT_DATA
    paid_requests = 0  # what the command paid for before it failed (for the closing summary)
    bytes_scanned = 0

    def __init__(self, message: str, problems: tuple[str, ...] = (), notes: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.problems = problems
        self.notes = tuple(notes)


class UsageError(BillingError):
    """The command line is wrong (for example a malformed month)."""

    exit_code = EXIT_USAGE


class ConfigError(BillingError):
    """The configuration is missing, malformed or inconsistent; ``problems`` lists each one."""

    exit_code = EXIT_USAGE


class SourceError(BillingError):
    """A data source cannot be read as configured (files missing, credentials, permissions)."""

    exit_code = EXIT_USAGE


class DataError(BillingError):
    """The cost data is unusable for this month (malformed, provisional, or absent)."""

    exit_code = EXIT_DATA


class ReconciliationError(BillingError):
    """The buckets do not add up to the source total: a cost would be lost."""

    exit_code = EXIT_DATA


class OutputError(BillingError):
    """The output folder cannot be written."""

    exit_code = EXIT_USAGE


class SourceUnavailable(BillingError):
    """A source did not answer in time or kept failing; trying again later may work."""

    exit_code = EXIT_DATA


class Busy(BillingError):
    """Another run holds the lock of a folder this run must write; trying again later will work."""

    exit_code = EXIT_DATA


class GuardError(BillingError):
    """A guard found a sign of silently lost cost (``billing.guards``); ``problems`` lists each
    finding. Fix the config, or accept the findings with ``--allow``."""

    exit_code = EXIT_DATA


class LedgerError(BillingError):
    """The ledger cannot be used as it is (unreachable, older or newer than the code)."""

    exit_code = EXIT_USAGE


class DeliveryError(BillingError):
    """A finished month did not reach one or more of its destinations (a bucket, the email, the
    webhook). Every destination was tried; the message names each that failed and why.
    Delivering again is safe: unchanged files are not uploaded again."""

    exit_code = EXIT_DATA
