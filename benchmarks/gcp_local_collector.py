"""How fast the local GCP collector aggregates a month of export rows.

Builds a synthetic detailed export (one billing account, 40 projects, 30 namespaces, credits on a
third of the rows) with DuckDB, as Parquet and as gzip'd NDJSON, then times ``gcp_files.collect``
on each. Prints rows, seconds and rows per second.

    python benchmarks/gcp_local_collector.py [--rows 2000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from billing.collectors import gcp_files
from billing.config import GcpExportFiles
from billing.records import Month

SYNTHETIC = """
SELECT
  '01A2B3-C4D5E6-F7A8B9' AS billing_account_id,
  {{'id': 'SVC' || (i % 7), 'description': 'Service ' || (i % 7)}} AS service,
  {{'id': 'SKU' || (i % 50), 'description': 'Sku ' || (i % 50)}} AS sku,
  {{'id': 'project-' || (i % 40), 'name': 'Project ' || (i % 40)}} AS project,
  [{{'key': 'k8s-namespace', 'value': 'hub-' || (i % 30)}},
   {{'key': 'goog-k8s-cluster-name', 'value': 'shared'}}] AS labels,
  round(random() * 3, 6) AS cost,
  'USD' AS currency,
  CASE WHEN i % 3 = 0
    THEN [{{'name': 'Sustained Usage Discount', 'amount': -round(random() * 0.3, 6), 'full_name': NULL,
            'id': 'SUD', 'type': 'SUSTAINED_USAGE_DISCOUNT'}}]
    ELSE [] END AS credits,
  {{'month': CASE WHEN i % 20 = 0 THEN '202208' ELSE '202209' END}} AS invoice,
  'regular' AS cost_type
FROM range({rows}) AS t(i)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    rows = parser.parse_args().rows
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        (base / "parquet").mkdir()
        (base / "ndjson").mkdir()
        connection = duckdb.connect()
        connection.execute("SELECT setseed(0.42)").fetchall()
        connection.execute(f"CREATE TABLE export AS {SYNTHETIC.format(rows=rows)}")
        connection.execute(f"COPY export TO '{base / 'parquet' / 'export.parquet'}' (FORMAT parquet)")
        connection.execute(f"COPY export TO '{base / 'ndjson' / 'export.json.gz'}' (FORMAT json, COMPRESSION gzip)")
        connection.close()
        print(f"{rows:,} export rows, label key k8s-namespace")
        for kind in ("parquet", "ndjson"):
            source = GcpExportFiles(type="gcp-export-files", id=kind, path=base / kind)
            start = time.perf_counter()
            collection = gcp_files.collect(source, Month(2022, 9), ("k8s-namespace",))
            elapsed = time.perf_counter() - start
            print(f"{kind:8} {elapsed:6.2f} s  {rows / elapsed:12,.0f} rows/s  -> {len(collection.rows)} cost rows")


if __name__ == "__main__":
    main()
