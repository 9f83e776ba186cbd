"""What delivering to one destination did, or why it failed."""

from __future__ import annotations

import ssl
from typing import NamedTuple


class Outcome(NamedTuple):
    """What was done at one destination.

    Attributes:
        destination: the destination for a person: ``gs://finance-billing/invoices/2022-09/``,
            ``email to finance@example.org via smtp.example.org:587``, ``webhook https://hooks.slack.com/…``.
        done: what was done there: ``uploaded 3 of 16 files (13 unchanged)``, ``sent``, ``posted``.
        uploaded: the names of the files uploaded (buckets only; the manifest is not counted).
        removed: the object names removed because the month no longer has them (buckets only).
        links: for a bucket, each file's name and a link to it there, for the email.
    """

    destination: str
    done: str
    uploaded: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()

    @property
    def line(self) -> str:
        return f"{self.destination}: {self.done}"


class Failed(Exception):
    """Delivering to ``destination`` failed for ``reason`` (one line, no secret in either)."""

    def __init__(self, destination: str, reason: str):
        super().__init__(f"{destination}: {reason}")
        self.destination, self.reason = destination, reason


def one_line(text: object, limit: int = 300) -> str:
    """``text`` on one line, whitespace collapsed, cut at ``limit`` characters."""
    words = " ".join(str(text).split())
    return words if len(words) <= limit else words[:limit - 1] + "…"


def tls_failure(error: object) -> str | None:
    """The one line for a TLS failure (an untrusted certificate, a handshake refused), else ``None``."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS failed: the server's certificate is not trusted ({one_line(error.verify_message, 100)})"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed ({one_line(error.reason or error, 100)})"
    return None
