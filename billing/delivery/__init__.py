"""Delivering a finished month's output folder to where finance is: buckets, an email, a webhook.

``deliver`` is the one entry point (``billing deliver --month``, and the CLI after a run or
finalize that succeeds). The buckets come first, so that the email can link to the files, then
the email, then the webhook. Every destination is tried even when one fails; the failures are
then raised together as one ``DeliveryError`` line, and delivering again is safe (an unchanged
file is not uploaded again).

One module per kind of destination: ``buckets`` (with ``gcs`` and ``s3``), ``email``,
``webhook``; ``manifest`` reads the folder and writes ``manifest.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple, Sequence

from ..config.delivery import Delivery
from ..errors import DeliveryError
from ..records import Month
from .buckets import deliver_to_bucket
from .email import send_email
from .manifest import MANIFEST, MonthFile, read_index, read_month
from .outcome import Failed, Outcome
from .webhook import post_webhook

__all__ = ["Delivered", "MANIFEST", "MonthFile", "Outcome", "deliver"]


class Delivered(NamedTuple):
    """What a delivery did, destination by destination, in the order they were delivered to.

    Attributes:
        outcomes: one per destination: ``gs://b/invoices/2022-09/: uploaded 3 of 16 files (13 unchanged)``.
    """

    outcomes: tuple[Outcome, ...]

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(outcome.line for outcome in self.outcomes)

    @property
    def uploaded(self) -> int:
        """Files uploaded, over every bucket (the manifests not counted)."""
        return sum(len(outcome.uploaded) for outcome in self.outcomes)


def deliver(settings: Delivery, folder: Path, month: Month, summary: str, findings: Sequence[str] = (),
            log: logging.Logger = logging.getLogger("billing.deliver"), subject: str | None = None,
            skip: frozenset[str] = frozenset(), files: tuple[MonthFile, ...] | None = None) -> Delivered:
    """Deliver the files of ``folder`` (a month's output folder; its link is followed) to every
    destination of ``settings``.

    ``summary`` is the run's one-line summary (the email's subject is ``Billing <month>:
    <summary>`` unless ``subject`` is given); ``findings`` are the guards' findings, one line
    each. Raises ``UsageError`` when the folder is missing or empty, and ``DeliveryError`` naming
    each destination that failed (its ``notes`` say what the others did). ``skip`` names the
    messages (``email``, ``webhook``) not to send again: they announced these very files before.
    ``files``: the folder's files when the caller has read them already (``read_month``).
    """
    files = files if files is not None else read_month(folder, month)
    index = read_index(folder.parent)
    log.info("delivering %d files of %s from %s", len(files), month, folder.resolve())
    outcomes: list[Outcome] = []
    failures: list[Failed] = []

    def attempt(action, *args, **kwargs) -> Outcome | None:
        try:
            outcome = action(*args, **kwargs)
        except Failed as failure:
            log.warning("%s", failure)
            failures.append(failure)
            return None
        outcomes.append(outcome)
        return outcome

    first_bucket = None
    for url in settings.buckets:
        outcome = attempt(deliver_to_bucket, url, files, month, log, index)
        first_bucket = first_bucket or outcome
    not_delivered = [failure.destination for failure in failures]
    for kind in sorted(skip & {"email", "webhook"}):
        if getattr(settings, kind) is not None:
            log.info("%s: not sent again: it announced these very files before (billing deliver --again sends it)",
                     kind)
    if settings.email is not None and "email" not in skip:
        attempt(send_email, settings.email, month, summary, findings, files, log, bucket=first_bucket,
                not_delivered=not_delivered, subject=subject)
    if settings.webhook is not None and "webhook" not in skip:
        attempt(post_webhook, settings.webhook, month, summary, findings, log,
                location=first_bucket.destination if first_bucket else None)
    if failures:
        reasons = "; ".join(str(failure) for failure in failures)
        raise DeliveryError(f"delivery failed: {reasons}; retry with billing deliver --month {month}",
                            notes=tuple(outcome.line for outcome in outcomes))
    return Delivered(tuple(outcomes))
