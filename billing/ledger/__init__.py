"""The ledger: what the tool invoiced, in a database (SQLite by default, PostgreSQL when
deployed), through a narrow API of one operation per function, each one transaction. No SQL is
written anywhere else; the pipeline receives what the ledger knows as plain records.

Built so far: the schema and its migrations, opening a ledger (refusing one older or newer than
the code), recording each run's drafts with the month's fingerprint, finalizing them with
gapless numbers, voiding a finalized invoice with a credit note, late data as adjustments carried
once, each month's figures and events (for the guards), and listing what it holds.
"""

from .adjustments import found_adjustments, open_adjustments, record_adjustments
from .connect import head, ledger_url, open_existing, open_ledger, shown, upgrade
from .drafts import Fingerprint, record_drafts
from .figures import MonthEvent, events_of, figures_of, record_events, record_figures, who
from .finalize import Finalized, finalize, finalized, month_invoices, prepaid_used
from .status import Document, status
from .void import Voided, month_of, void

__all__ = ["Document", "Finalized", "Fingerprint", "MonthEvent", "Voided", "events_of", "figures_of", "finalize",
           "finalized", "found_adjustments", "head", "ledger_url", "open_existing", "record_events", "record_figures",
           "month_invoices", "month_of", "open_adjustments", "open_ledger", "record_adjustments",
           "prepaid_used", "record_drafts", "shown", "status", "upgrade", "void", "who"]
