"""Where the collect stage's time goes, part by part, against the bare query.

``benchmarks/run.py`` measures collect + attribute as a whole against the floor (the bare DuckDB
query that computes the same sums and checks nothing). This script takes the collect stage of
``billing.collectors.gcp_files`` apart and runs each part alone, each in a child process of its
own (peak memory from ``wait4``), over the same generated month:

- **bare**: the floor, as in ``run.py``;
- **aggregation without identities**: the collect stage's one reading and grouping of the rows
  (every row checked and grouped, the per-file counts), with the row identities left out;
- **aggregation with identities, no set**: the same statement with each row's identity computed
  and folded into its group (``bit_xor``), so that the hashing is paid but no set is built;
- **identities alone**: the columns that identify a row read and hashed, nothing else done;
- **set alone**: those hashes gathered, to find any found in two files (the exact "no row in two
  files" check, with nothing else in the statement);
- **reading as a run does it**: the aggregation with the identities and their set, one statement;
- **lines counted** (NDJSON): the second, plain reading that proves each file was read whole;
- **collect + attribute**: the whole stage, as ``run.py`` measures it.

    python benchmarks/collect_parts.py                          # 10M rows, Parquet
    python benchmarks/collect_parts.py --rows 1000000 --formats parquet,ndjson --repeat 3
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from run import (MONTH, child_bare, child_project, cpu, data_folder, machine, measure, month_arguments, peak, repeat,
                 run_child, seconds, table)

HERE = Path(__file__).resolve()


def _stage(folder: Path, kind: str):
    from billing.collectors import gcp_files
    from billing.config import load_config

    config = load_config(folder / ("billing.yaml" if kind == "parquet" else "billing-ndjson.yaml"))
    [source] = config.sources
    files, found = gcp_files.export_files(source)
    assert found == kind, (found, kind)
    return gcp_files, source, files, config.label_keys("gcp")


def _timed(work) -> dict:
    start = time.perf_counter()
    work()
    return {"seconds": time.perf_counter() - start}


def _rows(gcp_files, connection, source, files, kind, keys) -> str:
    common = gcp_files.parquet_columns(connection, source, files) if kind == "parquet" else {}
    return gcp_files._rows_of(kind, files, common, keys)


def child_aggregation(folder: Path, kind: str) -> dict:
    gcp_files, source, files, keys = _stage(folder, kind)
    gcp_files.IDENTITY = "NULL::UBIGINT"  # NDJSON rows
    gcp_files._identity = lambda common: "NULL::UBIGINT"  # Parquet rows
    with gcp_files._Connection(kind) as connection:
        return _timed(lambda: gcp_files.load(connection, source, files, kind, keys))


class _WithoutSet:
    """A connection whose ``load`` statement keeps its per-group grouping set only, each group
    folding its rows' identities together (``bit_xor``) instead of the set of identities."""

    EDITS = (("GROUPING(row_hash) = 1 AS per_group", "true AS per_group"),
             ("GROUP BY GROUPING SETS ((", "GROUP BY ("), ("), (row_hash))", ")"),
             ("HAVING GROUPING(row_hash) = 1 OR (row_hash IS NOT NULL AND min(file) <> max(file))", ""))

    def __init__(self, connection):
        self.connection = connection

    def execute(self, sql: str, *args):
        if "GROUPING SETS" in sql:
            for old, new in self.EDITS + ((", row_hash,\n", ", bit_xor(row_hash) AS row_hash,\n"),):
                assert sql.count(old) == 1, f"load's statement changed: {old!r}"
                sql = sql.replace(old, new)
        return self.connection.execute(sql, *args)


def child_hashed(folder: Path, kind: str) -> dict:
    gcp_files, source, files, keys = _stage(folder, kind)
    with gcp_files._Connection(kind) as connection:
        return _timed(lambda: gcp_files.load(_WithoutSet(connection), source, files, kind, keys))


def child_identities(folder: Path, kind: str) -> dict:
    gcp_files, source, files, keys = _stage(folder, kind)
    with gcp_files._Connection(kind) as connection:
        rows = _rows(gcp_files, connection, source, files, kind, keys)
        return _timed(lambda: connection.execute(f"SELECT sum(row_hash) FROM ({rows})").fetchall())


def child_set(folder: Path, kind: str) -> dict:
    gcp_files, source, files, keys = _stage(folder, kind)
    with gcp_files._Connection(kind) as connection:
        rows = _rows(gcp_files, connection, source, files, kind, keys)
        return _timed(lambda: connection.execute(
            f"SELECT count(*) FROM (SELECT row_hash FROM ({rows}) GROUP BY row_hash HAVING min(file) <> max(file))"
        ).fetchall())


def child_load(folder: Path, kind: str) -> dict:
    gcp_files, source, files, keys = _stage(folder, kind)
    with gcp_files._Connection(kind) as connection:
        return _timed(lambda: gcp_files.load(connection, source, files, kind, keys))


def child_lines(folder: Path, kind: str) -> dict:
    gcp_files, _, files, _ = _stage(folder, kind)
    with gcp_files._Connection(kind) as connection:
        return _timed(lambda: gcp_files.line_counts(connection, files, kind))


PARTS = {
    "bare": ("bare DuckDB query (the floor)", child_bare),
    "aggregation": ("collect's reading and grouping, without row identities", child_aggregation),
    "hashed": ("the same, each row's identity computed, no set", child_hashed),
    "identities": ("row identities alone: read and hashed", child_identities),
    "set": ("the set of identities alone (any in two files?)", child_set),
    "load": ("collect's reading as a run does it (identities and set included)", child_load),
    "lines": ("lines counted, apart from the JSON reader (NDJSON)", child_lines),
    "project": ("collect + attribute (all of the above, and the checks' queries)", child_project),
}


def main() -> None:
    args = month_arguments(__doc__.splitlines()[0], repeat=2, formats="parquet").parse_args()
    if args.child:
        run_child({part: child for part, (_, child) in PARTS.items()}, args.child)
        return
    kinds = tuple(k.strip() for k in args.formats.split(",") if k.strip())
    print(f"Machine: {machine()}")
    print(f"Month {MONTH}: {args.rows:,} detailed export rows, {args.communities} communities; "
          f"{args.repeat} run(s) of each part, min (median)")
    folder = data_folder(args.data, args.rows, args.communities, kinds)
    for kind in kinds:
        measured = {}
        for part in PARTS:
            if part == "lines" and kind != "ndjson":
                continue
            measured[part] = repeat(args.repeat, lambda: measure(
                [sys.executable, str(HERE), "--child", part, str(folder), kind]))
        floor = min(x.seconds for x in measured["bare"])
        label = "Parquet" if kind == "parquet" else "gzip'd NDJSON"
        print(f"\n{label}:")
        print(table(["part", "wall", "against bare", "CPU", "peak"],
                    [[PARTS[part][0], seconds(runs), f"{min(x.seconds for x in runs) / floor:.2f}x", cpu(runs),
                      peak(runs)] for part, runs in measured.items()]))


if __name__ == "__main__":
    main()
