"""A message to a chat channel through a Slack-compatible incoming webhook.

The webhook's URL is a secret (whoever has it can post to the channel), so it is never printed
nor logged: the webhook is named by its scheme and host only (``https://hooks.slack.com/…``),
and redirects are not followed (a redirect would send the message, and reveal nothing, but the
answer is reported as an error).
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.error
import urllib.request
from typing import Sequence
from urllib.parse import urlsplit

from ..config.delivery import Webhook, webhook_url_problem
from ..records import Month
from .outcome import Failed, Outcome, one_line, tls_failure

TIMEOUT_SECONDS = 30


def shown(url: str) -> str:
    """``https://hooks.slack.com/services/T0/B0/secret`` -> ``https://hooks.slack.com/…``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"


def _escape(text: str) -> str:
    """Slack's message text treats &, < and > as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text_for(month: Month, summary: str, findings: Sequence[str], location: str | None = None) -> str:
    """The message: the summary line, each finding, and where the files are."""
    lines = [f"*Billing {month}* ({month.label}): {_escape(one_line(summary, 2000))}"]
    if findings:
        lines.append(f"{len(findings)} finding{'s' if len(findings) > 1 else ''} to review:")
        lines += [f"• {_escape(one_line(f, 2000))}" for f in findings]
    if location:
        lines.append(f"Files: {_escape(location)}")
    return "\n".join(lines)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs) -> None:
        return None


def post_webhook(settings: Webhook, month: Month, summary: str, findings: Sequence[str], log: logging.Logger,
                 location: str | None = None) -> Outcome:
    """POST ``{"text": ...}`` to the webhook; ``Failed`` naming its host on a non-2xx answer or
    when it cannot be reached."""
    if settings.url_env is not None:
        url = os.environ.get(settings.url_env, "")
        if not url:
            raise Failed("webhook", f"the environment variable {settings.url_env} (the webhook URL) is not set")
        problem = webhook_url_problem(url)
        if problem:
            raise Failed("webhook", f"the URL in {settings.url_env} {problem}")
    else:
        url = settings.url or ""
    name = f"webhook {shown(url)}"
    body = json.dumps({"text": text_for(month, summary, findings, location)}).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        raise Failed(name, f"answered {error.code} {one_line(error.reason, 100)}{_error_code(error)}") from None
    except urllib.error.URLError as error:
        raise Failed(name, _unreachable(error.reason)) from None
    except Exception as error:  # noqa: BLE001 - never a traceback: it could show the URL
        raise Failed(name, _unreachable(error)) from None
    outcome = Outcome(name, f"posted ({status})")
    log.info("%s", outcome.line)
    return outcome


def _error_code(error: urllib.error.HTTPError) -> str:
    """Slack names what is wrong in a short body (``no_service``, ``invalid_payload``); anything
    longer could echo the URL, so it is left out."""
    try:
        text = error.read(64).decode("ascii").strip()
    except Exception:  # noqa: BLE001 - the body is only a hint
        return ""
    return f": {text}" if re.fullmatch(r"[a-z_]{1,40}", text) else ""


def _unreachable(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return f"no answer within {TIMEOUT_SECONDS} s"
    tls = tls_failure(reason)
    if tls:
        return tls
    if isinstance(reason, ConnectionRefusedError):
        return "cannot connect (connection refused)"
    if isinstance(reason, OSError) and reason.strerror:
        return f"cannot connect ({one_line(reason.strerror, 100)})"
    return f"cannot post ({'URLError' if isinstance(reason, str) else type(reason).__name__})"
