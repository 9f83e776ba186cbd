"""Files made from a month's CSV files once they are written: the workbook, the accounting
systems' imports and the review page.

They read the folder (``csv_files.read_csv``), never the computation, so that a run, a finalize
and a void (which rewrite the register and the lines from the ledger) give the same files for
the same folder.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path

from .. import logs
from ..config import Config
from ..errors import BillingError, OutputError
from ..records import Month
from .accounting import write_accounting_imports
from .workbook import write_workbook


def import_early() -> None:
    """Import what the derived files need (pandas, matplotlib, openpyxl: a second or more) in a
    background thread, while the sources are read and the PDFs rendered, rather than after them.
    A later import of the same modules waits for this one (Python's import lock); a failure here
    is left for that import to report."""
    def work() -> None:
        try:
            importlib.import_module("billing.review")
        except Exception:  # noqa: BLE001 - reported by the import in write_derived, if it recurs
            pass

    threading.Thread(target=work, name="import-review", daemon=True).start()


def write_derived(folder: Path, config: Config, month: Month) -> None:
    """Write the files made from ``folder``'s CSV files into ``folder``. A writer's unforeseen
    failure is one line naming its file (``OutputError``; the traceback goes to the debug log):
    the month is then not published."""
    from ..review import write_month_page  # pandas and matplotlib: imported only when a month is written

    writers = (("the workbook", lambda: write_workbook(folder, config, month)),
               ("the accounting imports", lambda: write_accounting_imports(folder, config)),
               ("the review page", lambda: write_month_page(folder, config, month)))  # last: it lists every file
    for what, write in writers:
        try:
            write()
        except (BillingError, OSError):
            raise
        except Exception as error:  # noqa: BLE001 - one line, never a traceback
            logs.get("render").debug("writing %s failed", what, exc_info=True)
            raise OutputError(f"{month}: {what} could not be written ({type(error).__name__}: {error}); nothing was "
                              "published (run with -v for the details)") from None
