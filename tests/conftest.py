"""Shared test helpers: GCP export rows in the shape `bq extract` writes them.

Tests never reach a cloud: Google's and AWS's client libraries are told here not to look for
an instance metadata server (which lives on a non-loopback address).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest

from billing.config import GcpExportFiles
from billing.records import Month

os.environ["NO_GCE_CHECK"] = "true"
os.environ["GCE_METADATA_HOST"] = os.environ["GCE_METADATA_IP"] = "127.0.0.1:9"
# ... nor for the EC2 instance metadata service, nor the machine's own AWS config.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
for _name in ("AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
              "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
              "AWS_ENDPOINT_URL_CE"):
    os.environ.pop(_name, None)

ROOT = Path(__file__).resolve().parents[1]
# Runs record into a ledger of the test session's own (each test gets its own: ``own_ledger``),
# never the repository's ledger.sqlite.
os.environ["BILLING_LEDGER_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='billing-ledger-')}/ledger.sqlite"
ACCOUNT = "01A2B3-C4D5E6-F7A8B9"
SEPTEMBER = Month(2022, 9)
NS = "k8s-namespace"


def export_row(project="hubs-shared", service="Compute Engine", cost="1.00", invoice="202209",
               usage_start="2022-09-10 00:00:00 UTC", labels=(), credits=(), cost_type="regular",
               currency="USD", account=ACCOUNT) -> str:
    """One export row as NDJSON text. Amounts are given as text and written as JSON numbers."""
    row = {
        "billing_account_id": account,
        "service": {"id": "SVC", "description": service},
        "sku": {"id": "SKU", "description": "N2 Instance Core running in Americas"},
        "usage_start_time": usage_start,
        "project": None if project is None else {"id": project, "name": project, "labels": []},
        "labels": [{"key": k, "value": v} for k, v in labels],
        "cost": "@@cost@@",
        "currency": currency,
        "credits": [{"name": t.title(), "amount": f"@@credit{i}@@", "full_name": None, "id": t, "type": t}
                    for i, (t, _) in enumerate(credits)],
        "invoice": {"month": invoice},
        "cost_type": cost_type,
    }
    text = json.dumps(row).replace('"@@cost@@"', cost)
    for i, (_, amount) in enumerate(credits):
        text = text.replace(f'"@@credit{i}@@"', amount)
    return text


def write_export(folder: Path, rows: list[str], name="export-000000000000.json", gzipped=False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name + (".gz" if gzipped else ""))
    data = ("\n".join(rows) + "\n").encode()
    path.write_bytes(gzip.compress(data, mtime=0) if gzipped else data)
    return path


def said(result) -> str:
    """What a failed command said on stderr: its error line and the problems under it, without
    the log lines around them (progress, warnings, the closing summary)."""
    lines = result.stderr.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("Error: ")), len(lines))
    return "".join(line for line in lines[start:] if not line.startswith("summary: "))


@pytest.fixture
def own_demo(tmp_path) -> Path:
    """A copy of the demo config and data that a test may break; its outputs go to ``out/``."""
    shutil.copytree(ROOT / "demo" / "data", tmp_path / "data")
    text = (ROOT / "config" / "billing.yaml").read_text()
    text = text.replace("../demo/data/", "data/").replace("output: ../output", "output: out")
    (tmp_path / "billing.yaml").write_text(text)
    return tmp_path


@pytest.fixture
def demo_config_path() -> Path:
    return ROOT / "config" / "billing.yaml"


def september_rows() -> list[str]:
    return [
        # two rows of one group: costs and credits per type add up
        export_row(cost="10.004", labels=[(NS, "hub-a")],
                   credits=[("SUSTAINED_USAGE_DISCOUNT", "-1.0015"), ("COMMITTED_USAGE_DISCOUNT", "-0.5")]),
        export_row(cost="5.003", labels=[(NS, "hub-a"), ("goog-k8s-cluster-name", "shared")],
                   credits=[("SUSTAINED_USAGE_DISCOUNT", "-0.25")]),
        export_row(cost="2.5", labels=[(NS, "hub-b"), ("goog-k8s-cluster-name", "shared")]),
        # late usage from August, billed on the September invoice
        export_row(cost="1.25", labels=[(NS, "hub-b")], usage_start="2022-08-31 23:00:00 UTC"),
        export_row(cost="0.3", service="Cloud Storage"),
        export_row(cost="0.72", cost_type="tax"),
        export_row(project=None, service="Invoice", cost="0.004213", cost_type="rounding_error"),
        # September usage billed in October, and an August row: not in September's invoice
        export_row(cost="99", labels=[(NS, "hub-a")], usage_start="2022-09-30 23:00:00 UTC", invoice="202210"),
        export_row(cost="77", invoice="202208", usage_start="2022-08-05 00:00:00 UTC"),
    ] + [
        # ten tiny amounts: DECIMAL(18, 3) would sum them to 0.001
        export_row(project="tiny", cost="0.000123456") for _ in range(10)
    ]


def source(path) -> GcpExportFiles:
    return GcpExportFiles(type="gcp-export-files", id="gcp", path=path)


def summary(rows):
    return [(r.project_or_account, r.service, r.charge_type, r.labels, r.cost, r.credits) for r in rows]


EXPECTED = [
    ("", "Invoice", "rounding", (), Decimal("0.004213"), ()),
    ("hubs-shared", "Cloud Storage", "usage", (), Decimal("0.3"), ()),
    ("hubs-shared", "Compute Engine", "tax", (), Decimal("0.72"), ()),
    ("hubs-shared", "Compute Engine", "usage", ((NS, "hub-a"),), Decimal("15.007"),
     (("COMMITTED_USAGE_DISCOUNT", Decimal("-0.5")), ("SUSTAINED_USAGE_DISCOUNT", Decimal("-1.2515")))),
    ("hubs-shared", "Compute Engine", "usage", ((NS, "hub-b"),), Decimal("3.75"), ()),
    ("tiny", "Compute Engine", "usage", (), Decimal("0.00123456"), ()),
]


@pytest.fixture(scope="module")
def moto():
    """An S3 and Cost Explorer stand-in (moto in server mode on 127.0.0.1), one per test module."""
    from aws_server import MotoServer  # moto loads only for the modules that use it

    with MotoServer() as server:
        yield server


@pytest.fixture(autouse=True)
def own_ledger(tmp_path_factory, monkeypatch):
    """Every test records into a ledger of its own, never the repository's ledger.sqlite."""
    path = tmp_path_factory.mktemp("ledger") / "ledger.sqlite"
    monkeypatch.setenv("BILLING_LEDGER_URL", f"sqlite:///{path}")
    return path
