"""Delivering a month's folder, through the real client libraries to real servers on 127.0.0.1:
Cloud Storage (gcp-storage-emulator), S3 (moto), SMTP (aiosmtpd with STARTTLS and AUTH), and a
Slack-style webhook (http.server). See ``delivery_servers`` for how each is started."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import logging
from pathlib import Path
from typing import Callable, NamedTuple

import boto3
import pytest
from google.cloud import storage

from billing import atomic
from billing.config import load_config
from billing.config.delivery import Delivery
from billing.delivery import MANIFEST, deliver
from billing.delivery.gcs import GcsStore
from billing.delivery.s3 import S3Store
from billing.errors import ConfigError, DeliveryError, UsageError
from billing.records import Month

from conftest import ROOT
from delivery_servers import (Certificates, GcsDenying, GcsEmulator, SmtpServer, WebhookServer, closed_port,
                              enforce_aws_auth, powerless_credentials)

SEPTEMBER = Month(2022, 9)
SUMMARY = "2 invoices ready: 6,517.60 USD; 2 billing accounts reconcile to the cent"
FINDINGS = ("NeuroHackademy: cloud costs 2,812.21 exceed the monthly limit of 2,500.00",
            "unattributed: 12.34 USD of project hubs-shared has no k8s-namespace label <check>")
USERNAME, PASSWORD = "billing@example.org", "correct horse battery staple"
AWS_SECRET = "moto-secret-access-key"
WEBHOOK_PATH = "/services/T0000/B0000/s3cr3tW3bh00kT0ken"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) + b"\n%%EOF\n"  # binary, not UTF-8
REGISTER = (
    "invoice_number,community_id,community_name,invoice_month,issue_date,due_date,currency,cloud_costs,fees,"
    "discounts,tax,total,status\n"
    "DRAFT-202209-paleohack,paleohack,PaleoHack,2022-09,2022-10-01,2022-10-31,USD,1248.01,500.00,0.00,0.00,"
    "1748.01,draft\n"
    "DRAFT-202209-neurohackademy,neurohackademy,NeuroHackademy,2022-09,2022-10-01,2022-10-31,USD,2500.00,"
    "2315.00,0.00,0.00,4815.00,draft\n").encode()
FILES = {
    "invoice-2022-09-paleohack.pdf": PDF + b"paleohack",
    "invoice-2022-09-neurohackademy.pdf": PDF + b"neurohackademy",
    "invoice-register.csv": REGISTER,
    "invoice-lines.csv": "community_id,description,amount\npaleohack,Cloud costs (Café),1248.01\n".encode(),
    "reconciliation.csv": (b"billing_account,source_total,attributed,unattributed,difference\n"
                           b"BA-1,6529.94,6517.60,12.34,0.00\n"),
    "unattributed.csv": b"project,service,cost\nhubs-shared,Compute Engine,12.34\n",
}
TYPES = {".pdf": "application/pdf", ".csv": "text/csv; charset=utf-8"}


# --- the month folder -------------------------------------------------------------------------

def write_month(output: Path, files: dict[str, bytes]) -> Path:
    """The month's folder as a run leaves it: ``output/2022-09``, a link to a hidden version."""
    final = output / str(SEPTEMBER)
    with atomic.replacing(final, "the outputs of 2022-09") as version:
        for name, data in files.items():
            (version / name).write_bytes(data)
    assert final.is_symlink()
    return final


@pytest.fixture
def folder(tmp_path) -> Path:
    return write_month(tmp_path / "output", FILES)


def expected_manifest(files: dict[str, bytes]) -> dict:
    return {"month": "2022-09", "files": [
        {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
         "content_type": TYPES[Path(name).suffix]} for name, data in sorted(files.items())]}


# --- servers ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gcs_server():
    with GcsEmulator() as server:
        yield server


@pytest.fixture
def clouds(gcs_server, moto, monkeypatch):
    """Both object stores, empty, reached through their client libraries' own environment."""
    gcs_server.wipe()
    moto.reset()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


class Stored(NamedTuple):
    data: bytes
    content_type: str
    sha256: str | None
    version: str  # GCS generation, S3 version id: changes with every upload

    def __repr__(self) -> str:
        return f"Stored({len(self.data)} bytes, {self.content_type}, version {self.version})"


class Bucket(NamedTuple):
    url: str
    read: Callable[[], dict[str, Stored]]  # the month's objects by name
    index: Callable[[], bytes | None]      # the review index beside the months, if there


def gcs_bucket(name="finance-billing", prefix="invoices") -> Bucket:
    client = storage.Client(project="test")
    client.create_bucket(name)

    def read() -> dict[str, Stored]:
        found = {}
        for blob in client.list_blobs(name, prefix=f"{prefix}/2022-09/"):
            listed = Stored(b"", blob.content_type, (blob.metadata or {}).get("sha256"), str(blob.generation))
            found[blob.name.rpartition("/")[2]] = listed._replace(data=blob.download_as_bytes())
        return found

    def index() -> bytes | None:
        blob = client.bucket(name).get_blob(f"{prefix}/index.html")
        return None if blob is None else blob.download_as_bytes()

    return Bucket(f"gs://{name}/{prefix}", read, index)


def s3_bucket(name="acme-billing", prefix="invoices") -> Bucket:
    client = boto3.client("s3")
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})

    def read() -> dict[str, Stored]:
        found = {}
        for item in client.list_objects_v2(Bucket=name, Prefix=f"{prefix}/2022-09/").get("Contents", ()):
            got = client.get_object(Bucket=name, Key=item["Key"])
            found[item["Key"].rpartition("/")[2]] = Stored(got["Body"].read(), got["ContentType"],
                                                           got["Metadata"].get("sha256"), got["VersionId"])
        return found

    def index() -> bytes | None:
        try:
            return client.get_object(Bucket=name, Key=f"{prefix}/index.html")["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

    return Bucket(f"s3://{name}/{prefix}", read, index)


@pytest.fixture(params=["gs", "s3"])
def bucket(request, clouds) -> Bucket:
    return gcs_bucket() if request.param == "gs" else s3_bucket()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Certificates:
    return Certificates.make(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp(certificates, monkeypatch):
    """A mail server requiring STARTTLS and a login; its authority is trusted through SSL_CERT_FILE."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.authority))
    monkeypatch.setenv("BILLING_SMTP_PASSWORD", PASSWORD)
    with SmtpServer(certificates, USERNAME, PASSWORD) as server:
        yield server


@pytest.fixture
def webhook(monkeypatch):
    with WebhookServer() as server:
        monkeypatch.setenv("BILLING_WEBHOOK_URL", server.url + WEBHOOK_PATH)
        yield server


@pytest.fixture
def operations(monkeypatch) -> list[tuple[str, str]]:
    """Each write and delete the stores make, in order, as ("write", "invoices/2022-09/x.csv")."""
    done: list[tuple[str, str]] = []
    for store in (GcsStore, S3Store):
        for name in ("write", "delete"):
            def spy(self, key, *args, _name=name, _real=getattr(store, name)):
                done.append((_name, key))
                return _real(self, key, *args)
            monkeypatch.setattr(store, name, spy)
    return done


def settings(buckets=(), smtp_port=None, webhook=False, **smtp) -> Delivery:
    document: dict = {"buckets": list(buckets)}
    if smtp_port is not None:
        document["email"] = {
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "username": USERNAME,
                     "password_env": "BILLING_SMTP_PASSWORD", **smtp},
            "from": "billing@example.org", "to": ["finance@example.org", "accounts@example.org"]}
    if webhook:
        document["webhook"] = {"url_env": "BILLING_WEBHOOK_URL"}
    return Delivery.model_validate(document)


def failure(error: pytest.ExceptionInfo) -> str:
    message = error.value.message
    assert "\n" not in message and "Traceback" not in message
    return message


# --- buckets ------------------------------------------------------------------------------------

def test_every_file_arrives_with_its_bytes_content_type_and_sha256_and_the_manifest_last(bucket, folder,
                                                                                         operations):
    delivered = deliver(settings([bucket.url]), folder, SEPTEMBER, SUMMARY)
    assert operations == [("write", f"invoices/2022-09/{name}") for name in sorted(FILES)] + [
        ("write", f"invoices/2022-09/{MANIFEST}")]
    stored = bucket.read()
    assert sorted(stored) == sorted([*FILES, MANIFEST])
    for name, data in FILES.items():
        assert stored[name].data == data
        assert stored[name].content_type == TYPES[Path(name).suffix]
        assert stored[name].sha256 == hashlib.sha256(data).hexdigest()
    assert json.loads(stored[MANIFEST].data) == expected_manifest(FILES)
    assert stored[MANIFEST].content_type == "application/json"
    assert delivered.lines == (f"{bucket.url}/2022-09/: uploaded 6 of 6 files (0 unchanged)",)
    assert delivered.uploaded == 6


def test_delivering_an_unchanged_month_again_uploads_nothing(bucket, folder, operations):
    deliver(settings([bucket.url]), folder, SEPTEMBER, SUMMARY)
    before = bucket.read()
    assert len({s.version for s in before.values()} - {"None", "null"}) == 7  # each upload a version of its own
    operations.clear()
    again = deliver(settings([bucket.url]), folder, SEPTEMBER, SUMMARY)
    assert operations == []
    assert again.lines == (f"{bucket.url}/2022-09/: all 6 files already there, unchanged",)
    assert again.uploaded == 0
    assert {name: s.version for name, s in bucket.read().items()} == {name: s.version for name, s in before.items()}


def test_a_changed_file_alone_is_uploaded_and_files_the_month_no_longer_has_are_removed(bucket, folder, tmp_path,
                                                                                        operations):
    deliver(settings([bucket.url]), folder, SEPTEMBER, SUMMARY)
    before = bucket.read()
    changed = {**{k: v for k, v in FILES.items() if k != "unattributed.csv"},
               "invoice-register.csv": REGISTER.replace(b"draft", b"final")}
    folder = write_month(tmp_path / "output", changed)  # a later run replaces the version
    operations.clear()
    delivered = deliver(settings([bucket.url]), folder, SEPTEMBER, SUMMARY)
    # The old manifest goes before any file it lists changes; the new one comes after them all;
    # what the new one does not list goes last.
    assert operations == [("delete", f"invoices/2022-09/{MANIFEST}"),
                          ("write", "invoices/2022-09/invoice-register.csv"),
                          ("write", f"invoices/2022-09/{MANIFEST}"),
                          ("delete", "invoices/2022-09/unattributed.csv")]
    assert delivered.lines == (f"{bucket.url}/2022-09/: uploaded 1 of 5 files (4 unchanged); removed 1 object "
                               "the month no longer has",)
    assert delivered.outcomes[0].uploaded == ("invoice-register.csv",)
    assert delivered.outcomes[0].removed == ("unattributed.csv",)
    after = bucket.read()
    assert sorted(after) == sorted([*changed, MANIFEST])
    assert after["invoice-register.csv"].data == changed["invoice-register.csv"]
    assert after["invoice-register.csv"].version != before["invoice-register.csv"].version
    assert all(after[name].version == before[name].version for name in changed if name != "invoice-register.csv")
    assert json.loads(after[MANIFEST].data) == expected_manifest(changed)


def test_a_file_missing_from_the_bucket_is_uploaded_again_even_when_the_manifest_is_unchanged(clouds, folder):
    bucket = s3_bucket()
    deliver(settings([bucket.url]), folder, SEPTEMBER, SUMMARY)
    boto3.client("s3").delete_object(Bucket="acme-billing", Key="invoices/2022-09/reconciliation.csv")
    delivered = deliver(settings([bucket.url]), folder, SEPTEMBER, SUMMARY)
    assert delivered.outcomes[0].uploaded == ("reconciliation.csv",)
    assert bucket.read()["reconciliation.csv"].data == FILES["reconciliation.csv"]


def test_a_half_delivered_month_without_its_manifest_gets_the_rest_and_the_manifest(clouds, folder):
    bucket = gcs_bucket()
    deliver(settings([bucket.url]), folder, SEPTEMBER, SUMMARY)
    client = storage.Client(project="test")
    client.bucket("finance-billing").blob(f"invoices/2022-09/{MANIFEST}").delete()  # as if killed before it
    client.bucket("finance-billing").blob("invoices/2022-09/invoice-lines.csv").delete()
    delivered = deliver(settings([bucket.url]), folder, SEPTEMBER, SUMMARY)
    assert delivered.outcomes[0].uploaded == ("invoice-lines.csv",)
    assert json.loads(bucket.read()[MANIFEST].data) == expected_manifest(FILES)


def test_a_bucket_that_does_not_exist_is_one_line_naming_it(clouds, folder):
    for url, reason in (("s3://no-such-bucket/invoices", "bucket does not exist (NoSuchBucket)"),
                        ("gs://no-such-bucket/invoices", "bucket does not exist (404)")):
        with pytest.raises(DeliveryError) as error:
            deliver(settings([url]), folder, SEPTEMBER, SUMMARY)
        assert failure(error) == f"delivery failed: {url}: {reason}; retry with billing deliver --month 2022-09"
        assert error.value.exit_code == 1


def test_s3_access_denied_by_iam_is_one_line(clouds, moto, folder, monkeypatch):
    s3_bucket()
    powerless_credentials(moto.url, monkeypatch)
    try:
        with pytest.raises(DeliveryError) as denied:
            deliver(settings(["s3://acme-billing/invoices"]), folder, SEPTEMBER, SUMMARY)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
        with pytest.raises(DeliveryError) as wrong:
            deliver(settings(["s3://acme-billing/invoices"]), folder, SEPTEMBER, SUMMARY)
    finally:
        enforce_aws_auth(moto.url, False)
    assert failure(denied) == ("delivery failed: s3://acme-billing/invoices: access denied (AccessDenied on "
                               "ListObjectsV2); retry with billing deliver --month 2022-09")
    assert failure(wrong).startswith("delivery failed: s3://acme-billing/invoices: credentials refused "
                                     "(InvalidAccessKeyId);")


def test_gcs_access_denied_is_one_line(clouds, folder, monkeypatch):
    # The emulator grants everything: a stand-in answers 403 as Cloud Storage does.
    with GcsDenying() as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        with pytest.raises(DeliveryError) as error:
            deliver(settings(["gs://finance-billing/invoices"]), folder, SEPTEMBER, SUMMARY)
    assert failure(error).startswith(
        "delivery failed: gs://finance-billing/invoices: access denied (403: billing-job@example.iam."
        "gserviceaccount.com does not have storage.objects.list access")


def test_missing_credentials_are_one_line_each(clouds, folder, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "STORAGE_EMULATOR_HOST",
                 "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))  # no gcloud application-default login
    with pytest.raises(DeliveryError) as error:
        deliver(settings(["gs://finance-billing/invoices", "s3://acme-billing/invoices"]), folder, SEPTEMBER, SUMMARY)
    assert failure(error) == (
        "delivery failed: gs://finance-billing/invoices: no Google credentials found (Application Default "
        "Credentials: run gcloud auth application-default login, or set GOOGLE_APPLICATION_CREDENTIALS); "
        "s3://acme-billing/invoices: no AWS credentials found (the default chain: environment, shared config "
        "files, instance or container role); retry with billing deliver --month 2022-09")


# --- email --------------------------------------------------------------------------------------

def parse(received) -> email.message.EmailMessage:
    return email.message_from_bytes(received.content, policy=email.policy.default)


def body_of(received) -> str:
    return parse(received).get_body(("plain",)).get_content().replace("\r\n", "\n")


def test_the_email_goes_through_starttls_and_login_with_the_register_attached(smtp, folder):
    delivered = deliver(settings(smtp_port=smtp.port), folder, SEPTEMBER, SUMMARY, FINDINGS)
    assert delivered.lines == (f"email to finance@example.org, accounts@example.org via 127.0.0.1:{smtp.port}: "
                               "sent (invoice-register.csv attached)",)
    [received] = smtp.received
    assert received.tls and received.login == USERNAME
    assert received.mail_from == "billing@example.org"
    assert received.rcpt_tos == ("finance@example.org", "accounts@example.org")
    message = parse(received)
    assert message["Subject"] == f"Billing 2022-09: {SUMMARY}"
    assert message["From"] == "billing@example.org"
    assert message["To"] == "finance@example.org, accounts@example.org"
    body = body_of(received)
    assert body.startswith(f"Billing for September 2022 (2022-09)\n\n{SUMMARY}\n\nFindings to review:\n"
                           f"  - {FINDINGS[0]}\n  - {FINDINGS[1]}\n")
    assert "The 6 files of 2022-09 (invoice-register.csv is attached):" in body
    assert f"  invoice-2022-09-paleohack.pdf ({len(PDF) + 9} bytes)\n" in body
    [attachment] = message.iter_attachments()
    assert attachment.get_filename() == "invoice-register.csv"
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_payload(decode=True) == REGISTER


def test_an_email_after_a_bucket_links_to_its_files_instead_of_attaching(clouds, smtp, folder):
    gcs_bucket()
    delivered = deliver(settings(["gs://finance-billing/invoices"], smtp_port=smtp.port), folder, SEPTEMBER, SUMMARY)
    assert delivered.lines[1].endswith("sent (links to gs://finance-billing/invoices/2022-09/)")
    assert not list(parse(smtp.received[-1]).iter_attachments())
    body = body_of(smtp.received[-1])
    assert "The 6 files of 2022-09 are in gs://finance-billing/invoices/2022-09/\n" in body
    assert (f"  invoice-register.csv ({len(REGISTER)} bytes)\n"
            "    https://storage.cloud.google.com/finance-billing/invoices/2022-09/invoice-register.csv\n") in body
    assert "manifest.json there lists each file with its size and SHA-256." in body


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # aiosmtpd sees only STARTTLS as TLS
def test_implicit_tls_on_port_465_style_servers(certificates, folder, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.authority))
    monkeypatch.setenv("BILLING_SMTP_PASSWORD", PASSWORD)
    with SmtpServer(certificates, USERNAME, PASSWORD, implicit_tls=True) as server:
        deliver(settings(smtp_port=server.port, security="ssl"), folder, SEPTEMBER, SUMMARY)
    [received] = server.received
    assert received.tls and received.login == USERNAME


def test_a_refused_login_is_one_line_naming_the_server(smtp, folder, monkeypatch):
    monkeypatch.setenv("BILLING_SMTP_PASSWORD", "wrong password")
    with pytest.raises(DeliveryError) as error:
        deliver(settings(smtp_port=smtp.port), folder, SEPTEMBER, SUMMARY)
    assert failure(error) == (f"delivery failed: email via 127.0.0.1:{smtp.port}: login refused for {USERNAME} "
                              "(535 5.7.8 Authentication credentials invalid); retry with billing deliver "
                              "--month 2022-09")
    assert smtp.logins and not smtp.received
    assert "wrong password" not in failure(error)


def test_a_mail_server_that_is_down_or_untrusted_or_a_missing_password_is_one_line(smtp, folder, monkeypatch):
    port = closed_port()
    with pytest.raises(DeliveryError) as down:
        deliver(settings(smtp_port=port), folder, SEPTEMBER, SUMMARY)
    assert failure(down) == (f"delivery failed: email via 127.0.0.1:{port}: cannot connect (connection refused: "
                             "is the server down, or the port wrong?); retry with billing deliver --month 2022-09")
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(DeliveryError) as untrusted:
        deliver(settings(smtp_port=smtp.port), folder, SEPTEMBER, SUMMARY)
    assert failure(untrusted).startswith(f"delivery failed: email via 127.0.0.1:{smtp.port}: TLS failed: the "
                                         "server's certificate is not trusted (")
    monkeypatch.delenv("BILLING_SMTP_PASSWORD")
    with pytest.raises(DeliveryError) as no_password:
        deliver(settings(smtp_port=smtp.port), folder, SEPTEMBER, SUMMARY)
    assert failure(no_password) == (f"delivery failed: email via 127.0.0.1:{smtp.port}: the environment variable "
                                    "BILLING_SMTP_PASSWORD (the SMTP password) is not set; retry with billing "
                                    "deliver --month 2022-09")
    assert not smtp.received


# --- webhook ------------------------------------------------------------------------------------

def test_the_webhook_gets_the_summary_and_findings_as_slack_text(webhook, folder):
    delivered = deliver(settings(webhook=True), folder, SEPTEMBER, SUMMARY, FINDINGS)
    assert delivered.lines == (f"webhook {webhook.url}/…: posted (200)",)
    [post] = webhook.posts
    assert post.path == WEBHOOK_PATH and post.content_type == "application/json; charset=utf-8"
    assert post.body == {"text": (
        f"*Billing 2022-09* (September 2022): {SUMMARY}\n"
        "2 findings to review:\n"
        f"• {FINDINGS[0]}\n"
        "• unattributed: 12.34 USD of project hubs-shared has no k8s-namespace label &lt;check&gt;")}


@pytest.mark.parametrize("status, body, reason", [
    (500, b"Internal error at /services/T0000/B0000/s3cr3tW3bh00kT0ken", "answered 500 Internal Server Error"),
    (404, b"no_service", "answered 404 Not Found: no_service"),
    (302, b"", "answered 302 Found"),
])
def test_a_webhook_answering_an_error_is_one_line_that_never_shows_the_url(webhook, folder, status, body, reason):
    webhook.status, webhook.body = status, body
    with pytest.raises(DeliveryError) as error:
        deliver(settings(webhook=True), folder, SEPTEMBER, SUMMARY)
    assert failure(error) == (f"delivery failed: webhook {webhook.url}/…: {reason}; retry with billing deliver "
                              "--month 2022-09")
    assert "s3cr3t" not in str(error.value) and "T0000" not in str(error.value)


def test_a_webhook_host_that_is_down_is_one_line(folder, monkeypatch):
    port = closed_port()
    monkeypatch.setenv("BILLING_WEBHOOK_URL", f"http://127.0.0.1:{port}{WEBHOOK_PATH}")
    with pytest.raises(DeliveryError) as error:
        deliver(settings(webhook=True), folder, SEPTEMBER, SUMMARY)
    assert failure(error) == (f"delivery failed: webhook http://127.0.0.1:{port}/…: cannot connect (connection "
                              "refused); retry with billing deliver --month 2022-09")


# --- all together -------------------------------------------------------------------------------

def test_one_failed_destination_does_not_stop_the_others(clouds, smtp, webhook, folder):
    gcs_bucket()
    with pytest.raises(DeliveryError) as error:
        deliver(settings(["s3://no-such-bucket/invoices", "gs://finance-billing/invoices"], smtp_port=smtp.port,
                         webhook=True), folder, SEPTEMBER, SUMMARY, FINDINGS)
    assert failure(error) == ("delivery failed: s3://no-such-bucket/invoices: bucket does not exist (NoSuchBucket); "
                              "retry with billing deliver --month 2022-09")
    assert error.value.notes == (
        "gs://finance-billing/invoices/2022-09/: uploaded 6 of 6 files (0 unchanged)",
        f"email to finance@example.org, accounts@example.org via 127.0.0.1:{smtp.port}: sent (links to "
        "gs://finance-billing/invoices/2022-09/)",
        f"webhook {webhook.url}/…: posted (200)")
    body = body_of(smtp.received[-1])
    assert "Not delivered (see the job's log): s3://no-such-bucket/invoices" in body
    assert webhook.posts[-1].body["text"].endswith("Files: gs://finance-billing/invoices/2022-09/")


def test_every_destination_failing_is_named_in_one_line_in_order(clouds, folder, webhook, monkeypatch):
    webhook.status, webhook.body = 500, b"<h1>Internal Server Error</h1>"
    port = closed_port()
    monkeypatch.setenv("BILLING_SMTP_PASSWORD", PASSWORD)
    with pytest.raises(DeliveryError) as error:
        deliver(settings(["gs://no-such-bucket"], smtp_port=port, webhook=True), folder, SEPTEMBER, SUMMARY)
    assert failure(error) == (
        "delivery failed: gs://no-such-bucket: bucket does not exist (404); "
        f"email via 127.0.0.1:{port}: cannot connect (connection refused: is the server down, or the port wrong?); "
        f"webhook {webhook.url}/…: answered 500 Internal Server Error; retry with billing deliver --month 2022-09")
    assert error.value.notes == ()


def test_progress_is_logged_per_destination_and_file_and_no_secret_ever(clouds, smtp, webhook, folder, caplog,
                                                                         monkeypatch):
    gcs_bucket()
    s3_bucket()
    caplog.set_level(logging.DEBUG)  # every logger, the client libraries' too
    deliver(settings(["gs://finance-billing/invoices", "s3://acme-billing/invoices"], smtp_port=smtp.port,
                     webhook=True), folder, SEPTEMBER, SUMMARY)
    ours = [r for r in caplog.records if r.name == "billing.deliver"]
    infos = [r.getMessage() for r in ours if r.levelno == logging.INFO]
    assert infos[0].startswith("delivering 6 files of 2022-09 from ")
    assert infos[1:] == ["gs://finance-billing/invoices/2022-09/: uploaded 6 of 6 files (0 unchanged)",
                         "s3://acme-billing/invoices/2022-09/: uploaded 6 of 6 files (0 unchanged)",
                         f"email to finance@example.org, accounts@example.org via 127.0.0.1:{smtp.port}: sent (links "
                         "to gs://finance-billing/invoices/2022-09/)",
                         f"webhook {webhook.url}/…: posted (200)"]
    debug = [r.getMessage() for r in ours if r.levelno == logging.DEBUG]
    assert f"gs://finance-billing/invoices/2022-09/invoice-register.csv: uploaded ({len(REGISTER)} bytes)" in debug
    # and with every destination failing
    webhook.status = 500
    monkeypatch.setenv("BILLING_SMTP_PASSWORD", "a wrong password")
    with pytest.raises(DeliveryError):
        deliver(settings(["gs://no-such-bucket"], smtp_port=smtp.port, webhook=True), folder, SEPTEMBER, SUMMARY)
    for secret in (PASSWORD, "a wrong password", "s3cr3t", "B0000", AWS_SECRET):
        assert secret not in caplog.text


def test_a_month_never_run_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as error:
        deliver(settings(webhook=True), tmp_path / "output" / "2022-10", Month(2022, 10), SUMMARY)
    assert error.value.message == (f"nothing to deliver for 2022-10: {tmp_path}/output/2022-10 does not exist "
                                   "(run billing run --month 2022-10 first)")


# --- configuration ------------------------------------------------------------------------------

DELIVER = """
deliver:
  buckets:
    - gs://finance-billing/invoices/
    - s3://acme-billing/invoices
  email:
    smtp: {host: smtp.example.org, username: billing@example.org, password_env: BILLING_SMTP_PASSWORD}
    from: billing@example.org
    to: [finance@example.org]
  webhook:
    url_env: BILLING_WEBHOOK_URL
"""


def config_with(tmp_path, section: str) -> Path:
    path = tmp_path / "billing.yaml"
    path.write_text((ROOT / "config" / "billing.yaml").read_text() + section)
    return path


def test_a_deliver_section_is_read_with_its_defaults(tmp_path):
    config = load_config(config_with(tmp_path, DELIVER))
    assert config.deliver.buckets == ["gs://finance-billing/invoices", "s3://acme-billing/invoices"]
    assert config.deliver.email.smtp.port == 587 and config.deliver.email.smtp.security == "starttls"
    assert config.deliver.email.from_address == "billing@example.org"
    assert config.deliver.webhook.url_env == "BILLING_WEBHOOK_URL"
    assert load_config(ROOT / "config" / "billing.yaml").deliver is None


def test_ssl_defaults_to_port_465_and_a_local_relay_may_go_without_tls():
    ssl = Delivery.model_validate({"email": {"smtp": {"host": "smtp.example.org", "security": "ssl"},
                                             "from": "b@example.org", "to": "f@example.org"}})
    assert ssl.email.smtp.port == 465 and ssl.email.to == ["f@example.org"]
    relay = Delivery.model_validate({"email": {"smtp": {"host": "localhost", "security": "none"},
                                               "from": "b@example.org", "to": ["f@example.org"]}})
    assert relay.email.smtp.port == 25


@pytest.mark.parametrize("section, problem", [
    ("deliver:\n  email:\n    smtp: {host: smtp.example.org, username: b, password: hunter2}\n"
     "    from: b@example.org\n    to: [f@example.org]\n",
     "deliver.email.smtp: a password never goes in the config; put it in an environment variable and name that "
     "variable with password_env (e.g. password_env: BILLING_SMTP_PASSWORD)"),
    ("deliver:\n  email:\n    smtp: {host: smtp.example.org, security: none}\n    from: b@example.org\n"
     "    to: [f@example.org]\n",
     "deliver.email.smtp: security: none sends the password and the invoices in clear text; it is allowed only to "
     "a relay on this machine (localhost, 127.0.0.1, ::1), not 'smtp.example.org': use starttls or ssl"),
    ("deliver:\n  email:\n    smtp: {host: smtp.example.org, username: b}\n    from: b@example.org\n"
     "    to: [f@example.org]\n",
     "deliver.email.smtp: give both username and password_env (to log in), or neither"),
    ("deliver:\n  email:\n    smtp: {host: smtp.example.org}\n    from: Billing\n    to: []\n",
     "deliver.email.from: 'Billing' must be an email address, like billing@example.org (no display name)"),
    ("deliver:\n  buckets: [gs://Finance_Billing/invoices]\n",
     "deliver.buckets[0]: bucket 'Finance_Billing' is not a valid Cloud Storage bucket name (3 to 63 lowercase "
     "letters, digits, dashes, underscores and dots, starting and ending with a letter or digit)"),
    ("deliver:\n  buckets: [s3://acme_billing]\n",
     "deliver.buckets[0]: bucket 'acme_billing' is not a valid S3 bucket name (3 to 63 lowercase letters, digits, "
     "dashes and dots, starting and ending with a letter or digit)"),
    ("deliver:\n  buckets: [https://acme-billing.s3.amazonaws.com/invoices]\n",
     "deliver.buckets[0]: 'https://acme-billing.s3.amazonaws.com/invoices' must be gs://bucket[/prefix] or "
     "s3://bucket[/prefix]"),
    ("deliver:\n  buckets: [gs://finance-billing/invoices//2022]\n",
     "deliver.buckets[0]: the prefix of 'gs://finance-billing/invoices//2022' must be folder names joined by single "
     "slashes, without . or .., spaces, backslashes, ? or #"),
    ("deliver:\n  buckets: [s3://acme-billing/a, s3://acme-billing/a/]\n",
     "deliver: bucket s3://acme-billing/a is listed twice"),
    ("deliver: {}\n", "deliver: give at least one of buckets, email or webhook (or leave deliver out)"),
    ("deliver:\n  webhook: {url: 'http://hooks.example.org/services/T0/B0/s3cr3t'}\n",
     "deliver.webhook.url: must be an https:// URL (plain http:// only to localhost)"),
    ("deliver:\n  webhook: {url: 'https://hooks.example.org/x', url_env: HOOK}\n",
     "deliver.webhook: give exactly one of url_env (the environment variable holding the URL) or url"),
    ("deliver:\n  webhook: {url_env: 'not a name'}\n",
     "deliver.webhook.url_env: 'not a name' must be the name of an environment variable, e.g. BILLING_SMTP_PASSWORD"),
    ("deliver:\n  bucket: [gs://finance-billing]\n",
     "deliver.bucket: unknown key 'bucket' (did you mean 'buckets'?); allowed here: buckets, email, webhook"),
])
def test_a_deliver_section_that_is_wrong_is_named_with_its_line(tmp_path, section, problem):
    path = config_with(tmp_path, "\n" + section)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert any(p.startswith(str(path)) for p in error.value.problems)
    assert problem in [p.split(": ", 1)[1] for p in error.value.problems], error.value.problems
    assert "s3cr3t" not in "\n".join(error.value.problems) and "hunter2" not in "\n".join(error.value.problems)


# --- the job end to end: billing run, finalize and deliver on the demo --------------------------

def test_the_demo_month_is_delivered_to_both_buckets_by_email_and_webhook_and_read_back(
        clouds, smtp, webhook, own_demo):
    from click.testing import CliRunner

    from billing import ledger
    from billing.cli import main

    gcs, s3 = gcs_bucket(), s3_bucket()
    section = DELIVER.replace("smtp.example.org", "127.0.0.1").replace(
        "username: billing@example.org", f"port: {smtp.port}, username: {USERNAME}").replace(
        "gs://finance-billing/invoices/", gcs.url)
    config = own_demo / "billing.yaml"
    config.write_text(config.read_text() + section)

    def billing(*args):
        return CliRunner().invoke(main, [*args, "--config", str(config)])

    ran = billing("run", "--month", "last", "--today", "2022-10-06")
    assert ran.exit_code == 0, ran.output
    folder = own_demo / "out" / "2022-09"
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert len(files) == 23  # the PDFs, the CSV and FOCUS files, the workbook, the accounting imports, the review page
    for bucket in (gcs, s3):
        assert bucket.index() == (own_demo / "out" / "index.html").read_bytes()  # the month page's "all months"
        stored = bucket.read()
        assert {name: item.data for name, item in stored.items() if name != MANIFEST} == files
        assert json.loads(stored[MANIFEST].data)["files"] == [
            {"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest(),
             "content_type": stored[n].content_type} for n, d in sorted(files.items())]
        assert stored["invoice-2022-09-ciroh.pdf"].content_type == "application/pdf"
    mail = parse(smtp.received[-1])
    assert mail["Subject"] == "Invoices for September 2022: 8 invoice(s), 4,380.87 CAD, 1,569.59 GBP, 17,946.31 USD"
    assert "gs://finance-billing/invoices/2022-09/" in body_of(smtp.received[-1])
    assert webhook.posts[-1].body["text"].startswith("*Billing 2022-09* (September 2022): billing run 2022-09: 8 invoice(s)")
    closing = ran.stderr.splitlines()[-1]
    assert closing.startswith("summary: billing run 2022-09: 8 invoice(s)")
    assert closing.endswith("; delivered to 4 destination(s)")

    # A webhook that fails: exit 1 naming it, the outputs and the invoices as they were.
    webhook.status, webhook.body = 500, b"<h1>Internal Server Error</h1>"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    failed = billing("finalize", "--month", "2022-09")
    assert failed.exit_code == 1
    error = [line for line in failed.stderr.splitlines() if line.startswith("Error: ")]
    assert error == [f"Error: delivery failed: webhook {webhook.url}/…: answered 500 Internal Server Error; retry "
                     "with billing deliver --month 2022-09"]
    changed = {p.name for p in folder.iterdir() if before.get(p.name) != p.read_bytes()}
    assert len({name for name in changed if name.endswith(".pdf")}) == 8  # the final PDFs: finalize stands
    assert "status" not in failed.stdout and "INV-2022-00001" in failed.stdout
    assert failed.stderr.splitlines()[-1].startswith("summary: error: billing finalize 2022-09: 8 invoice(s); totals ")
    assert failed.stderr.splitlines()[-1].endswith("; then failed with exit code 1")
    engine = ledger.open_ledger(ledger.ledger_url(""), "test")
    try:
        changes = [e.change for e in ledger.events_of(engine, SEPTEMBER)]
    finally:
        engine.dispose()
    assert changes == ["delivered"] * 4 + ["delivered"] * 3 + ["delivery-failed"]
    for bucket in (gcs, s3):  # the buckets took the final PDFs before the webhook failed
        assert {n: i.data for n, i in bucket.read().items() if n != MANIFEST} == {
            p.name: p.read_bytes() for p in folder.iterdir()}

    # Retrying: the buckets have every file already, the email told finance of these files, the
    # webhook did not: only it is sent.
    webhook.status, webhook.body = 200, b"ok"
    posts, mails = len(webhook.posts), len(smtp.received)
    again = billing("deliver", "--month", "2022-09")
    assert again.exit_code == 0, again.output
    assert again.stderr.count("2022-09/: all 23 files already there, unchanged") == 2
    assert "deliver: email: not sent again: it announced these very files before" in again.stderr
    assert (len(webhook.posts), len(smtp.received)) == (posts + 1, mails)
    assert "billing deliver 2022-09: 8 invoice(s)" in webhook.posts[-1].body["text"]
    quiet = billing("deliver", "--month", "2022-09")  # nothing new to announce
    assert quiet.exit_code == 0 and (len(webhook.posts), len(smtp.received)) == (posts + 1, mails)
    loud = billing("deliver", "--month", "2022-09", "--again")
    assert loud.exit_code == 0 and (len(webhook.posts), len(smtp.received)) == (posts + 2, mails + 1)


def test_a_run_and_a_finalize_deliver_under_the_months_lock_and_billing_deliver_takes_it(webhook, own_demo,
                                                                                       monkeypatch):
    """No other run can replace the month's folder between publishing it and delivering it."""
    from click.testing import CliRunner

    import billing.delivery.month as month_delivery
    from billing.cli import main
    from billing.errors import Busy

    config = own_demo / "billing.yaml"
    config.write_text(config.read_text() + "deliver:\n  webhook: {url_env: BILLING_WEBHOOK_URL}\n")
    final = own_demo / "out" / "2022-09"
    seen = []
    real = month_delivery.deliver

    def deliver_and_try_the_lock(*args, **kwargs):
        try:
            with atomic.locked(final, "the outputs of 2022-09"):
                seen.append("free")
        except Busy:
            seen.append("held")
        return real(*args, **kwargs)

    monkeypatch.setattr(month_delivery, "deliver", deliver_and_try_the_lock)
    for command in (["run"], ["finalize"]):
        result = CliRunner().invoke(main, [*command, "--month", "2022-09", "--config", str(config)])
        assert result.exit_code == 0, result.output
    assert seen == ["held", "held"] and len(webhook.posts) == 2
    assert CliRunner().invoke(main, ["deliver", "--month", "2022-09", "--again", "--config", str(config)]).exit_code == 0
    assert seen == ["held", "held", "held"] and len(webhook.posts) == 3


def test_each_kind_of_month_file_is_stored_with_its_content_type():
    from billing.delivery.manifest import content_type

    assert [content_type(name) for name in ("focus-2022-09.parquet", "billing-2022-09.xlsx", "index.html",
                                            "cost-detail.csv", "other.bin")] == [
        "application/vnd.apache.parquet", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "text/html; charset=utf-8", "text/csv; charset=utf-8", "application/octet-stream"]
