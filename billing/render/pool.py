"""Rendering many PDF invoices at once: a pool of worker processes, one per CPU by default.

Each worker prepares once what every document shares (WeasyPrint, the template, its parsed
stylesheet, one font configuration: ``pdf.prepared``) and renders the documents it is given
exactly as the process that asked would have: the bytes do not depend on the worker, on how many
there are, or on the order in which they finish.

Workers are started by "forkserver" (a clean process that imported the renderer once and forks
each worker from itself), never by a plain fork of the run's process: that process has DuckDB's
threads running, the ledger's connection open and the month's ``flock`` taken, and a forked
child would keep the lock after a kill. A worker ends as soon as the process that started it
does (it watches a pipe only that process can write to), so a killed run leaves no worker
behind, waiting for ever or writing into a folder the next run is cleaning up.

A failure is one line naming the invoice (``OutputError``); the caller writes the month's folder
whole or not at all (``billing.atomic``), so nothing of a failed rendering is published.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable

from ..config import Community, Config
from .. import logs
from ..errors import BillingError, OutputError, UsageError
from ..records import Invoice
from . import pdf

JOBS_VARIABLE = "BILLING_JOBS"
# What the forkserver imports once, so that a new worker starts with it loaded: the renderer, and
# the command line, which Python runs again in each worker as the main module.
PRELOAD = ["billing.cli", "billing.render.pool", "weasyprint"]
GC_THRESHOLD = 20_000  # a worker's youngest generation (Python's default: 700 objects)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which a container's cpuset limits)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_jobs(text: str) -> int | None:
    """A number of worker processes as given (``--jobs``, ``BILLING_JOBS``): a whole number of 1
    or more, else ``None``."""
    try:
        jobs = int(text)
    except ValueError:
        return None
    return jobs if jobs >= 1 else None


def default_jobs() -> int:
    """``BILLING_JOBS`` from the environment, else one worker per usable CPU."""
    given = os.environ.get(JOBS_VARIABLE)
    if given is None:
        return usable_cpus()
    jobs = parse_jobs(given)
    if jobs is None:
        raise UsageError(f"{JOBS_VARIABLE} in the environment must be a positive whole number of worker processes, "
                         f"e.g. 2 (it is {given!r})")
    return jobs


def worker_count(jobs: int | None, documents: int) -> int:
    """How many worker processes render ``documents`` PDFs: ``jobs`` (default: ``default_jobs``),
    no more than there are documents; 1 or less means rendering in this process."""
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be a positive number, not {jobs}")
    return max(0, min(jobs or default_jobs(), documents))


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():  # Windows
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def start_early(jobs: int | None, documents: int) -> None:
    """Start the forkserver now, when up to ``documents`` PDFs will be rendered by workers later:
    it imports the renderer (a second or two) in the background meanwhile."""
    if worker_count(jobs, documents) > 1 and "forkserver" in multiprocessing.get_all_start_methods():
        from multiprocessing import forkserver

        _context()
        try:
            forkserver.ensure_running()
        except OSError:
            pass  # said, and rendered in this process, when the workers are started (Renderer)


class Pending:
    """A PDF being rendered; ``wait()`` returns once it is written, or raises ``OutputError``
    naming the invoice."""

    def __init__(self, path: Path, invoice: Invoice, future: Future | None = None,
                 work: Callable[[], str | None] | None = None):
        self.path, self.invoice = path, invoice
        self._future, self._work = future, work
        self._failure: str | None = None
        self._done = False

    def wait(self) -> None:
        if not self._done:
            if self._future is not None:
                try:
                    self._failure = self._future.result()
                except BrokenProcessPool:
                    self._failure = ("its worker process stopped abruptly (killed, e.g. out of memory); run again, "
                                     "with fewer --jobs if memory is short")
            else:
                self._failure = self._work()
            self._done = True
        if self._failure is not None:
            raise OutputError(f"cannot write {self.path.name} ({_named(self.invoice)}): {self._failure}")


def _named(invoice: Invoice) -> str:
    kind = "credit note" if invoice.kind == "credit_note" else "invoice"
    number = invoice.number or invoice.status
    return f"the {kind} {number} of {invoice.community_id} for {invoice.month}"


def _render(path: str, invoice: Invoice, community: Community, config: Config) -> str | None:
    """Render one PDF; ``None``, or what went wrong in one line (an exception raised here may
    not survive the trip back from a worker, and its traceback is not for the person)."""
    try:
        pdf.write_invoice_pdf(Path(path), invoice, community, config)
    except BillingError as error:
        return error.message
    except OSError as error:
        return error.strerror or str(error)
    except Exception as error:  # a template or rendering bug: said in one line, with its kind
        return " ".join(f"{type(error).__name__}: {error}".split())
    return None


_worker_config: list[Config] = []  # the config a worker renders with, given once when it starts


def _start_worker(config: Config, alive: Connection) -> None:
    threading.Thread(target=_end_with_parent, args=(alive,), daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _worker_config[:] = [config]
    pdf.prepared(pdf.TEMPLATES)
    # A document makes hundreds of thousands of short-lived objects: what the worker holds for good
    # (the renderer, its stylesheet and fonts) is left out of collections, and the youngest
    # generation is collected less often (together about a tenth of each document's time).
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def _render_in_worker(path: str, invoice: Invoice, community: Community) -> str | None:
    return _render(path, invoice, community, _worker_config[0])


def _end_with_parent(alive: Connection) -> None:
    """End this worker when the process that started it ends, however it ends: only that process
    holds the pipe's other end, so reading it returns then. (Without this a killed run's
    workers would wait for work for ever: each holds both ends of its queue, and the
    forkserver's lifeline.)"""
    try:
        alive.recv_bytes()
    except (EOFError, OSError):
        pass
    os._exit(1)


class Renderer:
    """Renders PDFs: by ``worker_count(jobs, documents)`` worker processes, or in this process
    when that is 1. Use it as a context manager: leaving it (also on an error) cancels what has
    not started and waits for what has, so no worker writes into the folder afterwards."""

    def __init__(self, config: Config, jobs: int | None, documents: int):
        self.config = config
        self.workers = worker_count(jobs, documents)
        self._pool: ProcessPoolExecutor | None = None
        self._alive: tuple[Connection, ...] = ()
        self._started = 0
        if documents:
            pdf.warn_of_slow_font_subsetting()
        if self.workers > 1:
            try:
                context = _context()
                self._alive = context.Pipe(duplex=False)  # (the workers' end, this process's end)
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                                 initargs=(config, self._alive[0]))
            except OSError as error:  # e.g. no shared memory for its locks (/dev/shm)
                self._in_this_process(error)

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for end in self._alive:
            end.close()

    def _in_this_process(self, error: OSError) -> None:
        """Render in this process after all: worker processes cannot be started here."""
        logs.get("render").warning("cannot start worker processes to render the PDFs (%s); rendering them in this "
                                   "process", error.strerror or error)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._pool, self.workers = None, 1

    def pids(self) -> tuple[int, ...]:
        """The worker processes' ids (none when rendering in this process)."""
        return tuple(self._pool._processes) if self._pool is not None else ()

    def start(self, path: Path, invoice: Invoice, community: Community) -> Pending:
        """Start rendering ``invoice`` to ``path`` (in this process: when it is waited for)."""
        if self._pool is not None:
            try:
                future = self._pool.submit(_render_in_worker, str(path), invoice, community)
            except BrokenProcessPool as error:  # a worker died: said when this one is waited for
                future = Future()
                future.set_exception(error)
            except OSError as error:  # no worker could be started (the forkserver, its socket)
                if self._started:
                    raise
                self._in_this_process(error)
            if self._pool is not None:
                self._started += 1
                return Pending(path, invoice, future)
        return Pending(path, invoice, work=lambda: _render(str(path), invoice, community, self.config))
