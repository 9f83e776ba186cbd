"""How fast the local GCP collector aggregates a month of export rows, and what its checks cost.

Builds a synthetic detailed export (one billing account, 40 projects, 30 namespaces, four labels
and the other columns of a real row, credits on a third of the rows) with DuckDB, as Parquet and
as gzip'd NDJSON shards, then times:

- ``aggregation only``: the two queries (grouped costs, invoice total) straight over the files,
  each reading them, as the collector did before it checked its input;
- ``collect``: ``gcp_files.collect``, which reads the files once into a table with each row's file
  and hash, proves every file was read whole, that no row is in two files and that every row can
  be billed, and then aggregates.

The ratio of the two is what the checks cost (the issue's bound: under 2).

    python benchmarks/gcp_local_collector.py [--rows 10000000] [--shards 8]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import duckdb

from billing.collectors import gcp_files, gcp_sql
from billing.config import GcpExportFiles
from billing.records import Month

SYNTHETIC = """
SELECT
  '01A2B3-C4D5E6-F7A8B9' AS billing_account_id,
  {{'id': 'SVC' || (i % 7), 'description': 'Service ' || (i % 7)}} AS service,
  {{'id': 'SKU-' || (i % 50), 'description': 'N2 Instance Core running in Americas ' || (i % 50)}} AS sku,
  '2022-09-' || lpad(((i % 28) + 1)::VARCHAR, 2, '0') || ' ' || lpad((i % 24)::VARCHAR, 2, '0') || ':00:00 UTC'
    AS usage_start_time,
  {{'id': 'project-' || (i % 40), 'number': '12345678' || (i % 40), 'name': 'Project ' || (i % 40)}} AS project,
  [{{'key': 'k8s-namespace', 'value': 'hub-' || (i % 30)}},
   {{'key': 'goog-k8s-cluster-name', 'value': 'shared'}},
   {{'key': 'k8s-label/app', 'value': 'jupyterhub'}},
   {{'key': 'goog-k8s-node-pool-name', 'value': 'user-pool-' || (i % 3)}}] AS labels,
  {{'location': 'us-central1', 'country': 'US', 'region': 'us-central1', 'zone': 'us-central1-b'}} AS location,
  {{'name': 'gke-shared-user-pool-' || (i % 1000)}} AS resource,
  round(random() * 3, 6) AS cost,
  'USD' AS currency,
  {{'amount': round(random() * 3600, 3), 'unit': 'seconds', 'amount_in_pricing_units': round(random(), 6),
    'pricing_unit': 'hour'}} AS usage,
  CASE WHEN i % 3 = 0
    THEN [{{'name': 'Sustained Usage Discount', 'amount': -round(random() * 0.3, 6), 'full_name': NULL,
            'id': 'SUD', 'type': 'SUSTAINED_USAGE_DISCOUNT'}}]
    ELSE [] END AS credits,
  {{'month': CASE WHEN i % 20 = 0 THEN '202208' ELSE '202209' END}} AS invoice,
  'regular' AS cost_type
FROM range({rows}) AS t(i)
"""
MONTH, KEYS = Month(2022, 9), ("k8s-namespace",)


def aggregation_only(files: list[Path], kind: str) -> float:
    """The two queries over the files with nothing else: the baseline the checks are measured on."""
    start = time.perf_counter()
    connection = duckdb.connect()
    connection.execute(f"CREATE VIEW {gcp_files.VIEW} AS SELECT * FROM {gcp_files._reader(files, kind)}")
    params = gcp_sql.parameters(MONTH, KEYS)
    for text in (gcp_sql.cost_query(gcp_files.VIEW, len(KEYS)), gcp_sql.total_query(gcp_files.VIEW)):
        connection.execute(gcp_sql.to_duckdb(text, params)).fetchall()
    connection.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--shards", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        (base / "parquet").mkdir()
        (base / "ndjson").mkdir()
        connection = duckdb.connect()
        connection.execute("SELECT setseed(0.42)").fetchall()
        connection.execute(f"CREATE TABLE export AS {SYNTHETIC.format(rows=args.rows)}")
        per = -(-args.rows // args.shards)
        for shard in range(args.shards):
            part = f"SELECT * FROM export WHERE rowid >= {shard * per} AND rowid < {(shard + 1) * per}"
            connection.execute(f"COPY ({part}) TO '{base / 'parquet' / f'export-{shard:012d}.parquet'}' "
                               "(FORMAT parquet)")
            connection.execute(f"COPY ({part}) TO '{base / 'ndjson' / f'export-{shard:012d}.json.gz'}' "
                               "(FORMAT json, COMPRESSION gzip)")
        connection.close()
        print(f"{args.rows:,} export rows in {args.shards} shards, label key {KEYS[0]}")
        for kind in ("parquet", "ndjson"):
            source = GcpExportFiles(type="gcp-export-files", id=kind, path=base / kind)
            files, _ = gcp_files.export_files(source)
            baseline = aggregation_only(files, kind)
            start = time.perf_counter()
            collection = gcp_files.collect(source, MONTH, KEYS)
            elapsed = time.perf_counter() - start
            print(f"{kind:8} aggregation only {baseline:7.2f} s   collect with checks {elapsed:7.2f} s "
                  f"({elapsed / baseline:4.2f}x, {args.rows / elapsed:11,.0f} rows/s) -> {len(collection.rows)} cost rows")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory of this process: {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
