"""Shared test helpers: GCP export rows in the shape `bq extract` writes them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "01A2B3-C4D5E6-F7A8B9"


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


@pytest.fixture
def demo_config_path() -> Path:
    return ROOT / "config" / "billing.yaml"
