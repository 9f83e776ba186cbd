"""Opening the ledger: the database at the config's URL, its schema at this code's revision.

A new, empty database becomes a ledger on first use (so the demo needs no setup); one at an older
schema revision is refused until ``billing ledger upgrade`` migrates it; one from a newer version
of billing is refused. SQLite allows one writer at a time: another waits up to
``SQLITE_WAIT_SECONDS``, then fails with one line.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from pathlib import Path
from typing import Callable, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from ..errors import LedgerError

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_WAIT_SECONDS = 30


def timestamp() -> str:
    """Now, as the ledger records when a change was made: ISO 8601 in UTC, to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def ledger_url(configured: str) -> str:
    """The ledger to use: ``BILLING_LEDGER_URL`` from the environment, else the config's."""
    return os.environ.get("BILLING_LEDGER_URL") or configured


def shown(url: str) -> str:
    """The URL as a message may show it: never a password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(a malformed URL)"


def _alembic(engine_connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = engine_connection
    return config


def head() -> str:
    return ScriptDirectory.from_config(_alembic(None)).get_current_head()


def _engine(url: str, what: str) -> Engine:
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": SQLITE_WAIT_SECONDS})
            event.listen(engine, "connect", _sqlite_foreign_keys)
            return engine
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ValueError) as error:
        raise LedgerError(f"{what}: the ledger URL {shown(url)} is not usable ({error})") from None


def _sqlite_foreign_keys(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def unreachable(what: str, url: str, error: DBAPIError) -> LedgerError:
    detail = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    return LedgerError(f"{what}: cannot use the ledger at {shown(url)}: {detail}")


Operation = TypeVar("Operation", bound=Callable)


def guarded(operation: Operation) -> Operation:
    """A ledger operation (``engine`` first) whose database errors become one-line LedgerErrors."""

    @functools.wraps(operation)
    def run(engine: Engine, *args, **kwargs):
        try:
            return operation(engine, *args, **kwargs)
        except DBAPIError as error:
            what = kwargs.get("command") or (args[-1] if args and isinstance(args[-1], str) else "billing")
            raise unreachable(what, engine.url.render_as_string(hide_password=True), error) from None

    return run  # type: ignore[return-value]


def open_ledger(url: str, what: str) -> Engine:
    """The ledger at ``url``, checked to be at this code's schema; ``what`` (the command) names
    who refuses in a message."""
    engine = _engine(url, what)
    try:
        with engine.begin() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            tables = set(inspect(connection).get_table_names()) - {"alembic_version"}
            if current is None and not tables:
                command.upgrade(_alembic(connection), "head")
                return engine
    except DBAPIError as error:
        raise unreachable(what, url, error) from None
    latest = head()
    if current == latest:
        return engine
    known = {script.revision for script in ScriptDirectory.from_config(_alembic(None)).walk_revisions()}
    if current in known:
        raise LedgerError(f"{what} refuses the ledger at {shown(url)}: its schema is at revision {current}, older "
                          f"than this version of billing ({latest}); run `billing ledger upgrade` first")
    if current is None:
        raise LedgerError(f"{what} refuses the database at {shown(url)}: it holds tables but is not a billing "
                          "ledger (no schema revision); give the ledger its own database or schema")
    raise LedgerError(f"{what} refuses the ledger at {shown(url)}: it was written by a newer version of billing "
                      f"(schema revision {current}); use that version or a later one")


def open_existing(url: str, what: str) -> Engine | None:
    """The ledger at ``url`` to read, or ``None`` when there is none yet (no SQLite file, or an
    empty database): unlike ``open_ledger``, never creates one."""
    parsed = make_url(url) if "://" in url else None
    if parsed is not None and parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).is_file():
            return None
    engine = _engine(url, what)
    try:
        with engine.connect() as connection:
            empty = not set(inspect(connection).get_table_names()) - {"alembic_version"}
    except DBAPIError as error:
        engine.dispose()
        raise unreachable(what, url, error) from None
    if empty:
        engine.dispose()
        return None
    engine.dispose()
    return open_ledger(url, what)


def upgrade(url: str) -> tuple[str | None, str]:
    """Migrate the ledger at ``url`` to this code's schema; the revisions before and after."""
    engine = _engine(url, "billing ledger upgrade")
    try:
        with engine.begin() as connection:
            before = MigrationContext.configure(connection).get_current_revision()
            command.upgrade(_alembic(connection), "head")
    except DBAPIError as error:
        raise unreachable("billing ledger upgrade", url, error) from None
    finally:
        engine.dispose()
    return before, head()
