"""Where a finished month's output folder is delivered: buckets, an email, a chat webhook.

Secrets never go in the file: credentials for buckets come from the platform's own chain
(Application Default Credentials, the default AWS chain), the SMTP password from the
environment variable ``password_env`` names, and the webhook URL (a secret: whoever has it can
post) usually from the one ``url_env`` names. Endpoints come from the environment too
(``STORAGE_EMULATOR_HOST``, ``AWS_ENDPOINT_URL``), so the file says only *where*, never *how*.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, model_validator

from .fields import Count, _Model, _pattern

LOOPBACK = ("localhost", "127.0.0.1", "::1")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}

_GCS_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_UNSAFE_IN_PREFIX = re.compile(r"[\x00-\x20\x7f\\?#]")


class BucketUrl(NamedTuple):
    """A bucket URL taken apart: ``gs://finance-billing/invoices`` -> ("gs", "finance-billing", "invoices").

    Attributes:
        scheme: ``gs`` or ``s3``.
        bucket: the bucket's name.
        prefix: the folder in the bucket, without slashes at either end ("" for the top).
    """

    scheme: str
    bucket: str
    prefix: str

    def folder(self, month: object) -> str:
        """The key prefix a month's files go under: ``invoices/2022-09/``."""
        return f"{self.prefix}/{month}/" if self.prefix else f"{month}/"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def bucket_problem(scheme: str, bucket: str) -> str | None:
    """Why ``bucket`` is not a valid bucket name for ``scheme``, or ``None``."""
    if scheme == "gs":
        if not _GCS_BUCKET.fullmatch(bucket) or any(len(part) > 63 for part in bucket.split(".")):
            return ("is not a valid Cloud Storage bucket name (3 to 63 lowercase letters, digits, dashes, "
                    "underscores and dots, starting and ending with a letter or digit)")
        if bucket.startswith("goog") or "google" in bucket:
            return "is not a valid Cloud Storage bucket name (it may not start with goog or contain google)"
    elif not _S3_BUCKET.fullmatch(bucket):
        return ("is not a valid S3 bucket name (3 to 63 lowercase letters, digits, dashes and dots, "
                "starting and ending with a letter or digit)")
    if ".." in bucket or _is_ip(bucket):
        return "is not a valid bucket name (two dots in a row, or an IP address)"
    return None


def parse_bucket_url(text: str) -> BucketUrl:
    """``gs://bucket[/prefix]`` or ``s3://bucket[/prefix]`` taken apart; ``ValueError`` saying
    what is wrong otherwise. A slash at the end of the prefix is dropped."""
    scheme, separator, rest = text.partition("://")
    if not separator or scheme not in ("gs", "s3"):
        raise ValueError(f"{text!r} must be gs://bucket[/prefix] or s3://bucket[/prefix]")
    bucket, _, prefix = rest.partition("/")
    problem = bucket_problem(scheme, bucket)
    if problem:
        raise ValueError(f"bucket {bucket!r} {problem}")
    prefix = prefix.rstrip("/")
    parts = prefix.split("/") if prefix else []
    if any(part in ("", ".", "..") for part in parts) or _UNSAFE_IN_PREFIX.search(prefix):
        raise ValueError(f"the prefix of {text!r} must be folder names joined by single slashes, without . or "
                         ".., spaces, backslashes, ? or #")
    if len(prefix.encode()) > 900:
        raise ValueError(f"the prefix of {text!r} is too long (object names are at most 1024 bytes)")
    return BucketUrl(scheme, bucket, prefix)


def _bucket_url(text: str) -> str:
    url = parse_bucket_url(text)
    return f"{url.scheme}://{url.bucket}" + (f"/{url.prefix}" if url.prefix else "")


def webhook_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook URL, or ``None``. Never quotes the URL: it is a secret."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return "is not a valid URL"
    if re.search(r"[\x00-\x20\x7f]", url) or not parts.hostname:
        return "is not a valid URL (no host, or spaces or control characters in it)"
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK):
        return None
    return "must be an https:// URL (plain http:// only to localhost)"


def _webhook_url(url: str) -> str:
    problem = webhook_url_problem(url)
    if problem:
        raise ValueError(problem)
    return url


def _host(value: str) -> str:
    if _is_ip(value) or re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                                     r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?", value):
        return value
    raise ValueError(f"{value!r} is not a host name or IP address")


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


BucketUrlText = Annotated[str, AfterValidator(_bucket_url)]
EnvName = Annotated[str, AfterValidator(_pattern(
    r"[A-Za-z_][A-Za-z0-9_]*", "must be the name of an environment variable, e.g. BILLING_SMTP_PASSWORD"))]
Address = Annotated[str, AfterValidator(_pattern(
    r"[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?",
    "must be an email address, like billing@example.org (no display name)"))]
Host = Annotated[str, AfterValidator(_host)]


class Smtp(_Model):
    """The mail server that sends the email.

    ``security``: ``starttls`` (the default; port 587), ``ssl`` (TLS from the first byte; port
    465) or ``none`` (only to a relay on this machine: localhost). Servers' certificates are
    checked against the system's trusted authorities (``SSL_CERT_FILE`` in the environment
    names another bundle). It logs in only when ``username`` is given, with the password from
    the environment variable ``password_env`` names.
    """

    host: Host
    port: Count = Field(ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = Field(None, min_length=1, pattern=r"^[^\x00-\x1f\x7f]+$")
    password_env: EnvName | None = None
    timeout_seconds: Count = Field(30, ge=1, le=600)

    @model_validator(mode="before")
    @classmethod
    def _defaults_and_no_password(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if "password" in data:
                raise ValueError("a password never goes in the config; put it in an environment variable and "
                                 "name that variable with password_env (e.g. password_env: BILLING_SMTP_PASSWORD)")
            if "port" not in data:
                data = {**data, "port": DEFAULT_PORTS.get(data.get("security", "starttls"), 587)}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Smtp:
        if self.security == "none" and self.host.lower() not in LOOPBACK:
            raise ValueError(f"security: none sends the password and the invoices in clear text; it is allowed only "
                             f"to a relay on this machine ({', '.join(LOOPBACK)}), not {self.host!r}: use starttls "
                             "or ssl")
        if (self.username is None) != (self.password_env is None):
            raise ValueError("give both username and password_env (to log in), or neither")
        return self


class Email(_Model):
    """An email to finance with the run's summary, its findings and the list of files: links to
    them when the month went to a bucket, otherwise ``invoice-register.csv`` attached."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    smtp: Smtp
    from_address: Address = Field(alias="from")
    to: Annotated[list[Address], BeforeValidator(_one_or_many), Field(min_length=1)]


class Webhook(_Model):
    """A Slack-compatible incoming webhook (a JSON POST of ``{"text": ...}``). Its URL is a
    secret, so give ``url_env``, the environment variable that holds it; ``url`` also works."""

    url: Annotated[str, AfterValidator(_webhook_url)] | None = None
    url_env: EnvName | None = None

    @model_validator(mode="after")
    def _one_url(self) -> Webhook:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url_env (the environment variable holding the URL) or url")
        return self


class Delivery(_Model):
    """Where ``billing deliver`` (and a run or finalize that succeeds) sends the month's folder.

    Each bucket receives ``<prefix>/<YYYY-MM>/<file>`` and a ``manifest.json``; the email and
    the webhook are sent after the buckets, so that they can point to the files.
    """

    buckets: list[BucketUrlText] = []
    email: Email | None = None
    webhook: Webhook | None = None

    @model_validator(mode="after")
    def _somewhere(self) -> Delivery:
        if not (self.buckets or self.email or self.webhook):
            raise ValueError("give at least one of buckets, email or webhook (or leave deliver out)")
        twice = sorted({url for url in self.buckets if self.buckets.count(url) > 1})
        if twice:
            raise ValueError(f"bucket {twice[0]} is listed twice")
        return self

    @property
    def bucket_urls(self) -> tuple[BucketUrl, ...]:
        return tuple(parse_bucket_url(url) for url in self.buckets)
