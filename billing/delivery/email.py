"""An email to finance: the run's summary, its findings and the list of the month's files.

When the month went to a bucket the email links to the files there; otherwise it attaches
``invoice-register.csv`` (the one file that lists every invoice). It is sent through SMTP with
STARTTLS by default, the server's certificate checked against the system's trusted authorities
(or the bundle ``SSL_CERT_FILE`` names), logging in only when a username is configured.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Sequence

from ..config.delivery import Email
from ..records import Month
from .manifest import MonthFile
from .outcome import Failed, Outcome, one_line, tls_failure

ATTACHED = "invoice-register.csv"


def subject_for(month: Month, summary: str) -> str:
    """``Billing 2022-09: 8 invoices ready`` for the summary ``8 invoices ready``."""
    return one_line(f"Billing {month}: {summary}", 200)


def compose(settings: Email, month: Month, summary: str, findings: Sequence[str], files: tuple[MonthFile, ...],
            bucket: Outcome | None = None, not_delivered: Sequence[str] = (),
            subject: str | None = None) -> EmailMessage:
    """The message: links to the files in ``bucket`` when given, else ``invoice-register.csv``
    attached. ``not_delivered`` names the destinations that failed before the email."""
    message = EmailMessage()
    message["Subject"] = one_line(subject, 200) if subject else subject_for(month, summary)
    message["From"] = settings.from_address
    message["To"] = ", ".join(settings.to)
    message["Date"] = format_datetime(dt.datetime.now(dt.timezone.utc))
    message["Message-ID"] = make_msgid("billing", domain=settings.from_address.rpartition("@")[2])

    lines = [f"Billing for {month.label} ({month})", "", one_line(summary, 2000), ""]
    if findings:
        lines += ["Findings to review:"] + [f"  - {one_line(f, 2000)}" for f in findings] + [""]
    attached = next((f for f in files if f.name == ATTACHED), None) if bucket is None else None
    if bucket is not None:
        links = dict(bucket.links)
        lines.append(f"The {len(files)} files of {month} are in {bucket.destination}")
        for file in files:
            lines += [f"  {file.name} ({file.size:,} bytes)", f"    {links[file.name]}"]
        lines.append("manifest.json there lists each file with its size and SHA-256.")
    else:
        lines.append(f"The {len(files)} files of {month}" + (f" ({ATTACHED} is attached):" if attached else ":"))
        lines += [f"  {file.name} ({file.size:,} bytes)" for file in files]
    if not_delivered:
        lines += ["", f"Not delivered (see the job's log): {', '.join(not_delivered)}"]
    message.set_content("\n".join(lines) + "\n")
    if attached is not None:
        message.add_attachment(attached.data, maintype="text", subtype="csv", filename=attached.name)
    return message


def send_email(settings: Email, month: Month, summary: str, findings: Sequence[str], files: tuple[MonthFile, ...],
               log: logging.Logger, bucket: Outcome | None = None, not_delivered: Sequence[str] = (),
               subject: str | None = None) -> Outcome:
    """Compose and send the email; ``Failed`` naming the server if it cannot be sent."""
    smtp = settings.smtp
    server = f"{smtp.host}:{smtp.port}"
    name = f"email via {server}"
    password = None
    if smtp.password_env is not None:
        password = os.environ.get(smtp.password_env)
        if not password:
            raise Failed(name, f"the environment variable {smtp.password_env} (the SMTP password) is not set")
    message = compose(settings, month, summary, findings, files, bucket, not_delivered, subject)
    step = "connecting"
    try:
        context = ssl.create_default_context()
        if smtp.security == "ssl":
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
        with client:
            client.ehlo()
            if smtp.security == "starttls":
                step = "STARTTLS"
                client.starttls(context=context)
                client.ehlo()
            if smtp.username is not None:
                step = "login"
                client.login(smtp.username, password)
            step = "sending"
            refused = client.send_message(message, settings.from_address, list(settings.to))
    except Exception as error:  # noqa: BLE001 - every failure becomes one line naming the server
        raise Failed(name, _explain(error, step, smtp.username, smtp.timeout_seconds, log)) from None
    if refused:
        raise Failed(name, f"sent, but these recipients were refused: {', '.join(sorted(refused))}")
    how = f"links to {bucket.destination}" if bucket is not None else \
        (f"{ATTACHED} attached" if message.is_multipart() else "no attachment")
    outcome = Outcome(f"email to {', '.join(settings.to)} via {server}", f"sent ({how})")
    log.info("%s", outcome.line)
    return outcome


def _reply(error: smtplib.SMTPResponseException) -> str:
    text = error.smtp_error.decode("utf-8", "replace") if isinstance(error.smtp_error, bytes) else str(error.smtp_error)
    return one_line(f"{error.smtp_code} {text}", 200)


def _explain(error: Exception, step: str, username: str | None, timeout: int, log: logging.Logger) -> str:
    tls = tls_failure(error)
    if tls:
        return tls
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"login refused for {username} ({_reply(error)})"
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return ("the server does not offer STARTTLS (set security: ssl for port 465)" if step == "STARTTLS"
                else f"the server does not support {'login (AUTH)' if step == 'login' else step}")
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return f"recipients refused: {', '.join(sorted(error.recipients))}"
    if isinstance(error, smtplib.SMTPSenderRefused):
        return f"sender {error.sender} refused ({_reply(error)})"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{step} failed ({_reply(error)})"
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return f"the server closed the connection while {step}"
    if isinstance(error, smtplib.SMTPException):
        return f"{step} failed ({one_line(error, 200)})"
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout} s while {step}"
    if isinstance(error, ConnectionRefusedError):
        return "cannot connect (connection refused: is the server down, or the port wrong?)"
    if isinstance(error, OSError):
        return f"cannot connect ({one_line(error.strerror or error, 200)})"
    log.debug("email: unexpected error while %s", step, exc_info=True)
    return f"unexpected {type(error).__name__} while {step}"
