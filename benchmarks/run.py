"""How fast and how small a month is at scale: this project against the floor and a hand-written baseline.

Generates (once, ``benchmarks/generate.py``) a month of GCP detailed export, N rows for K
communities, as Parquet and gzip'd NDJSON, and measures, each in a child process of its own so
that its peak memory is its own (the child's maximum resident set size, from ``wait4``):

- **this project**: ``gcp_files.collect`` and ``attribution.attribute`` (the collect and
  attribute stages of ``compute_month``), every input check included, timed inside the child;
- **bare DuckDB**: one query over the same files computing the same grouped sums (costs, and
  credits per type, per project, service, cost type, currency and namespace, exact NUMERIC), with
  no checks: the floor;
- **pandas + pyarrow**: what people write by hand: load the needed columns with pyarrow, find
  each row's namespace and explode the credits in pandas, group and sum (exactly, as Arrow
  decimals);
- **billing run**: the whole command, as a finance team's scheduled job runs it (from the start
  of the process to its end: collecting, pricing, every PDF and CSV, the ledger);
- **rendering** with 1 and 2 worker processes, if ``benchmarks/render.py`` is there.

Each is run ``--repeat`` times; the tables give the minimum and the median. Then the scaling
shape: collect + attribute and the whole run against rows (1M, 3M, 10M) and against communities
(10, 50, 200), with how much each grew against how much its input grew.

    python benchmarks/run.py                      # 10M rows, 200 communities (tens of minutes)
    python benchmarks/run.py --quick              # small sizes, one repeat: a smoke run
    python benchmarks/run.py --rows 1000000 --communities 50 --no-scaling

Generated data is kept under ``--data`` (default: the system's temporary folder) and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
MONTH = "2022-09"
CHILD_MEMORY_GIB = 12  # address space a measured child may take
# The targets this project sets itself on a 2-core machine (checked and printed at the end).
COLLECT_RATIO, COLLECT_MIB = 1.2, 500        # collect + attribute against the bare query; peak memory
RUN_SECONDS = {(10_000_000, 200): 25.0, (1_000_000, 200): 15.0}  # whole billing run, (rows, communities)
TARGETS: list[tuple[str, str, bool]] = []     # (target, measured, met)


def target(what: str, measured: str, met: bool) -> None:
    TARGETS.append((what, measured, met))
NAMESPACE = "k8s-namespace"
# The floor: the grouped sums the invoices need, straight over the files, nothing checked.
BARE_SQL = """
SELECT month, account, project, service, cost_type, currency, namespace, credit_type, sum(amount) AS amount
FROM (SELECT invoice.month AS month, billing_account_id AS account, project.id AS project,
             service.description AS service, cost_type, currency,
             list_filter(labels, lambda l: l.key = '{key}')[1].value AS namespace,
             CASE WHEN k > 0 THEN credits[k].type END AS credit_type,
             CAST(CASE WHEN k = 0 THEN cost ELSE credits[k].amount END AS DECIMAL(38, 9)) AS amount
      FROM (SELECT *, unnest(range(len(coalesce(credits, [])) + 1)) AS k FROM {reader}
            WHERE invoice.month = '{month}'))
GROUP BY ALL"""
BARE_NDJSON_COLUMNS = {
    "billing_account_id": "VARCHAR", "service": "STRUCT(description VARCHAR)", "project": "STRUCT(id VARCHAR)",
    "labels": "STRUCT(key VARCHAR, value VARCHAR)[]", "cost": "DOUBLE", "currency": "VARCHAR",
    "credits": "STRUCT(amount DOUBLE, type VARCHAR)[]", "invoice": "STRUCT(month VARCHAR)", "cost_type": "VARCHAR",
}


class Failed(Exception):
    """A measured child that did not finish (the pandas baseline may run out of memory)."""


class Measured(NamedTuple):
    """One run of one thing: ``seconds`` as the thing itself timed it (or the process's wall
    time), the child's CPU seconds and peak resident memory, and what it reported."""

    seconds: float
    cpu: float
    peak_mib: float
    report: dict


# --- the children ------------------------------------------------------------------------------

def _files(folder: Path, kind: str) -> list[str]:
    suffix = ".parquet" if kind == "parquet" else ".json.gz"
    return sorted(str(p) for p in (folder / kind).iterdir() if p.name.endswith(suffix))


def child_project(folder: Path, kind: str) -> dict:
    from billing import attribution
    from billing.collectors import gcp_files
    from billing.config import load_config
    from billing.records import Month

    config = load_config(folder / ("billing.yaml" if kind == "parquet" else "billing-ndjson.yaml"))
    [source] = config.sources
    start = time.perf_counter()
    collection = gcp_files.collect(source, Month.parse(MONTH), config.label_keys("gcp"))
    collected = time.perf_counter()
    attributed = attribution.attribute(collection.rows, config.attribution)
    done = time.perf_counter()
    return {"seconds": done - start, "collect": collected - start, "attribute": done - collected,
            "groups": len(collection.rows), "buckets": len({a.bucket for a in attributed}),
            "total": str(sum(t.total for t in collection.totals))}


def child_bare(folder: Path, kind: str) -> dict:
    import duckdb

    files = _files(folder, kind)
    if kind == "parquet":
        reader = f"read_parquet({files!r})"
    else:
        columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in BARE_NDJSON_COLUMNS.items()) + "}"
        reader = f"read_json({files!r}, format = 'newline_delimited', columns = {columns})"
    start = time.perf_counter()
    rows = duckdb.connect().execute(BARE_SQL.format(key=NAMESPACE, reader=reader, month=MONTH.replace("-", ""))).fetchall()
    return {"seconds": time.perf_counter() - start, "groups": len(rows), "total": str(sum(r[-1] for r in rows))}


def child_pandas(folder: Path, kind: str) -> dict:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.json as pj

    start = time.perf_counter()
    files = _files(folder, kind)
    columns = ["billing_account_id", "service", "project", "labels", "cost", "currency", "credits", "invoice",
               "cost_type"]
    if kind == "parquet":  # only the record fields needed (a whole project record has its ancestors)
        fields = {"service": "description", "project": "id", "invoice": "month"}
        table = ds.dataset(files, format="parquet").to_table(columns={
            name: ds.field(name, fields[name]) if name in fields else ds.field(name) for name in columns})
        table = table.set_column(table.schema.get_field_index("invoice"), "invoice",
                                 pa.StructArray.from_arrays([table["invoice"].combine_chunks()], ["month"]))
        for name in ("service", "project"):
            table = table.set_column(table.schema.get_field_index(name), name, pa.StructArray.from_arrays(
                [table[name].combine_chunks()], [fields[name]]))
    else:  # only the needed fields are parsed (the others are skipped by the reader)
        schema = pa.schema([
            ("billing_account_id", pa.string()), ("service", pa.struct([("description", pa.string())])),
            ("project", pa.struct([("id", pa.string())])),
            ("labels", pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())]))),
            ("cost", pa.float64()), ("currency", pa.string()),
            ("credits", pa.list_(pa.struct([("amount", pa.float64()), ("type", pa.string())]))),
            ("invoice", pa.struct([("month", pa.string())])), ("cost_type", pa.string())])
        options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        table = pa.concat_tables(pj.read_json(pa.CompressedInputStream(pa.OSFile(f), "gzip"), parse_options=options)
                                 for f in files)
    decimal = pa.decimal128(38, 9)
    table = table.filter(pc.equal(pc.struct_field(table["invoice"], "month"), MONTH.replace("-", "")))
    # The nested lists made flat with pyarrow (as Python objects they would not fit in memory):
    # each row's namespace, and one row per credit with the index of its export row.
    labels = table["labels"].combine_chunks()
    flat, parents = pc.list_flatten(labels), pc.list_parent_indices(labels)
    wanted = pc.equal(pc.struct_field(flat, "key"), NAMESPACE)
    namespaces = pd.Series(pc.filter(pc.struct_field(flat, "value"), wanted).to_pandas(types_mapper=pd.ArrowDtype),
                           index=pc.filter(parents, wanted).to_numpy())
    credits = table["credits"].combine_chunks()
    flat, parents = pc.list_flatten(credits), pc.list_parent_indices(credits).to_numpy()
    # Arrow-backed columns: as Python objects, ten million rows of text do not fit in memory.
    frame = pa.table({
        "billing_account_id": table["billing_account_id"], "project": pc.struct_field(table["project"], "id"),
        "service": pc.struct_field(table["service"], "description"), "cost_type": table["cost_type"],
        "currency": table["currency"], "cost": pc.cast(table["cost"], decimal, safe=False)}).to_pandas(
        types_mapper=pd.ArrowDtype)
    frame["namespace"] = namespaces[~namespaces.index.duplicated()].reindex(frame.index)
    keys = ["billing_account_id", "project", "service", "cost_type", "currency", "namespace"]
    costs = frame.groupby(keys, dropna=False)["cost"].sum()
    credit_rows = frame[keys].iloc[parents].reset_index(drop=True)
    credit_rows["type"] = pd.Series(pc.struct_field(flat, "type"), dtype=pd.ArrowDtype(pa.string()))
    credit_rows["amount"] = pd.Series(pc.cast(pc.struct_field(flat, "amount"), decimal, safe=False),
                                      dtype=pd.ArrowDtype(decimal))
    credit_sums = credit_rows.groupby(keys + ["type"], dropna=False)["amount"].sum()
    total = costs.sum() + credit_sums.sum()
    return {"seconds": time.perf_counter() - start, "groups": len(costs) + len(credit_sums), "total": str(total)}


CHILDREN = {"project": child_project, "bare": child_bare, "pandas": child_pandas}


# --- measuring ---------------------------------------------------------------------------------

def measure(argv: list[str], env: dict | None = None, timed_inside: bool = True) -> Measured:
    """Run ``argv`` as a child process; its own timing (a JSON line on stdout) or its wall time,
    and its CPU and peak memory from ``wait4`` (which counts only this child and what it reaped)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, problems = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise Failed(f"{' '.join(argv[:4])} ... failed ({process.returncode}): {problems.strip()[-2000:]}")
    report = json.loads(text.strip().splitlines()[-1]) if timed_inside else {}
    return Measured(report.get("seconds", wall), usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, report)


def repeat(times: int, work) -> list[Measured]:
    return [work() for _ in range(times)]


def child(what: str, folder: Path, kind: str) -> Measured:
    return measure([sys.executable, str(Path(__file__).resolve()), "--child", what, str(folder), kind])


def billing_run(folder: Path, kind: str) -> Measured:
    """The whole command, in a fresh output folder and ledger (a first run of the month)."""
    with tempfile.TemporaryDirectory(prefix="billing-bench-run-") as scratch:
        env = dict(os.environ, BILLING_LEDGER_URL=f"sqlite:///{scratch}/ledger.sqlite", NO_COLOR="1")
        config = folder / ("billing.yaml" if kind == "parquet" else "billing-ndjson.yaml")
        executable = shutil.which("billing", path=str(Path(sys.executable).parent)) or "billing"
        return measure([executable, "run", "--month", MONTH, "--config", str(config), "--output", f"{scratch}/out"],
                       env=env, timed_inside=False)


def render_benchmark(invoices: int, times: int) -> str:
    """What ``benchmarks/render.py`` prints (``invoices`` PDFs rendered with 1 and 2 workers), if it
    is there."""
    script = HERE / "render.py"
    if not script.exists():
        return "not measured (benchmarks/render.py is not there)"
    result = subprocess.run([sys.executable, str(script), "--invoices", str(invoices), "--repeat", str(times)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return f"not measured (benchmarks/render.py failed: {' '.join(result.stderr.strip().splitlines()[-1:])})"
    return "\n" + result.stdout.strip()


# --- printing ----------------------------------------------------------------------------------

def seconds(runs: list[Measured]) -> str:
    values = [r.seconds for r in runs]
    return f"{min(values):.2f} s (median {statistics.median(values):.2f})"


def peak(runs: list[Measured]) -> str:
    return f"{max(r.peak_mib for r in runs):,.0f} MiB"


def ratio(runs: list[Measured], floor: list[Measured]) -> str:
    return f"{min(r.seconds for r in runs) / min(r.seconds for r in floor):.2f}x"


def cpu(runs: list[Measured]) -> str:
    return f"{min(r.cpu for r in runs):.1f} s"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    memory = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    load = os.getloadavg()
    return (f"{os.cpu_count()} cores ({model}), {memory / 2**20:.1f} GiB memory, Python {platform.python_version()}; "
            f"load average when the run began {load[0]:.2f}")


def data_folder(base: Path, rows: int, communities: int, formats: tuple[str, ...]) -> Path:
    """The generated month (made by ``generate.py`` in a process of its own: this process stays
    small, since a child's peak memory counts the process it was started from)."""
    folder = base / f"rows-{rows}-c{communities}"
    started = time.perf_counter()
    subprocess.run([sys.executable, str(HERE / "generate.py"), str(folder), "--rows", str(rows), "--communities",
                    str(communities), "--formats", ",".join(formats)], check=True, stdout=subprocess.DEVNULL)
    took = time.perf_counter() - started
    if took > 5:
        print(f"  (generated {rows:,} rows for {communities} communities in {took:.0f} s)", flush=True)
    return folder


# --- the run -----------------------------------------------------------------------------------

def main_table(folder: Path, rows: int, communities: int, times: int, kinds: tuple[str, ...],
               pandas: bool) -> dict[str, dict[str, list[Measured]]]:
    results: dict[str, dict[str, list[Measured]]] = {}
    for kind in kinds:
        results[kind] = {"project": repeat(times, lambda: child("project", folder, kind)),
                         "bare": repeat(times, lambda: child("bare", folder, kind))}
        if pandas:
            try:
                results[kind]["pandas"] = repeat(times, lambda: child("pandas", folder, kind))
            except Failed as failure:
                print(f"  {kind}: the pandas + pyarrow baseline did not finish within {CHILD_MEMORY_GIB} GiB: "
                      f"{str(failure).splitlines()[-1][-200:]}", flush=True)
        totals = {what: runs[0].report["total"] for what, runs in results[kind].items()}
        same = len({str(round(float(t), 6)) for t in totals.values()}) == 1
        print(f"  {kind}: totals {'agree' if same else 'DIFFER'}: {totals}", flush=True)
    results["run"] = {"project": repeat(times, lambda: billing_run(folder, "parquet"))}
    size = f"{rows / 1e6:g}M rows" if rows >= 10**6 else f"{rows:,} rows"
    out = []
    for kind in kinds:
        r = results[kind]
        label = "Parquet" if kind == "parquet" else "gzip'd NDJSON"
        pandas_cell = f"{seconds(r['pandas'])}, {peak(r['pandas'])}" if "pandas" in r else "not measured"
        split = r["project"][0].report
        out.append([f"GCP collect + attribute, {size}, {label}",
                    f"{seconds(r['project'])}, {peak(r['project'])} ({ratio(r['project'], r['bare'])} bare; "
                    f"attribute {split['attribute']:.2f} s)",
                    f"{seconds(r['bare'])}, {peak(r['bare'])}", pandas_cell])
    for kind in kinds:
        r, label = results[kind], "Parquet" if kind == "parquet" else "gzip'd NDJSON"
        times = min(x.seconds for x in r["project"]) / min(x.seconds for x in r["bare"])
        target(f"collect + attribute within {COLLECT_RATIO}x the bare query, {size}, {label}", f"{times:.2f}x",
               times <= COLLECT_RATIO)
        most = max(x.peak_mib for x in r["project"])
        target(f"collect + attribute under {COLLECT_MIB} MiB, {size}, {label}", f"{most:,.0f} MiB", most < COLLECT_MIB)
    if (rows, communities) in RUN_SECONDS:
        best = min(x.seconds for x in results["run"]["project"])
        limit = RUN_SECONDS[(rows, communities)]
        target(f"whole billing run under {limit:g} s, {size}, {communities} communities", f"{best:.1f} s", best < limit)
    out.append([f"whole `billing run`, {size}, {communities} communities (Parquet)",
                f"{seconds(results['run']['project'])}, {peak(results['run']['project'])}", "", ""])
    print()
    print(table(["work", "this project", "bare DuckDB (same sums, same files)", "pandas + pyarrow"], out))
    print()
    print(table(["CPU seconds (least of the runs)", "this project", "bare DuckDB", "pandas + pyarrow"],
                [[f"collect + attribute, {kind}", cpu(results[kind]["project"]), cpu(results[kind]["bare"]),
                  cpu(results[kind]["pandas"]) if "pandas" in results[kind] else ""] for kind in kinds]
                + [["whole billing run", cpu(results["run"]["project"]), "", ""]]))
    return results


def grown(first: float, last: float, input_growth: float) -> str:
    return f"{last / first:.1f}x for {input_growth:g}x"


def scaling(base: Path, row_sizes: list[int], community_sizes: list[int], fixed_rows: int, fixed_communities: int,
            times: int) -> None:
    print(f"\nScaling against rows ({fixed_communities} communities, Parquet):")
    measured = []
    for rows in row_sizes:
        folder = data_folder(base, rows, fixed_communities, ("parquet",))
        measured.append((rows, repeat(times, lambda: child("project", folder, "parquet")),
                         repeat(times, lambda: child("bare", folder, "parquet")),
                         repeat(times, lambda: billing_run(folder, "parquet"))))
    print(table(["rows", "collect + attribute", "peak", "bare DuckDB", "whole billing run", "peak"],
                [[f"{rows:,}", seconds(p), peak(p), seconds(b), seconds(r), peak(r)] for rows, p, b, r in measured]))
    first, last = measured[0], measured[-1]
    growth = last[0] / first[0]
    best = [lambda m, i=i: min(x.seconds for x in m[i]) for i in (1, 2, 3)]
    for name, i in (("collect + attribute", 0), ("whole billing run", 2)):
        grew = best[i](last) / best[i](first)
        target(f"{name} grows no faster than rows ({first[0]:,} to {last[0]:,})", f"{grew:.1f}x for {growth:g}x",
               grew <= growth)
    print(f"grew: collect + attribute {grown(best[0](first), best[0](last), growth)} rows, bare "
          f"{grown(best[1](first), best[1](last), growth)}, whole run {grown(best[2](first), best[2](last), growth)}")

    print(f"\nScaling against communities ({fixed_rows:,} rows, Parquet):")
    measured = []
    for communities in community_sizes:
        folder = data_folder(base, fixed_rows, communities, ("parquet",))
        measured.append((communities, repeat(times, lambda: child("project", folder, "parquet")),
                         repeat(times, lambda: billing_run(folder, "parquet"))))
    print(table(["communities", "collect + attribute", "attribute alone", "whole billing run", "peak"],
                [[str(c), seconds(p), f"{min(x.report['attribute'] for x in p):.3f} s", seconds(r), peak(r)]
                 for c, p, r in measured]))
    first, last = measured[0], measured[-1]
    growth = last[0] / first[0]
    for c, _, r in measured:
        if (fixed_rows, c) in RUN_SECONDS:
            limit, best_run = RUN_SECONDS[(fixed_rows, c)], min(x.seconds for x in r)
            target(f"whole billing run under {limit:g} s, {fixed_rows / 1e6:g}M rows, {c} communities",
                   f"{best_run:.1f} s", best_run < limit)
    grew = min(x.seconds for x in last[2]) / min(x.seconds for x in first[2])
    target(f"whole billing run grows no faster than communities ({first[0]} to {last[0]})",
           f"{grew:.1f}x for {growth:g}x", grew <= growth)
    print(f"grew: collect + attribute {grown(min(x.seconds for x in first[1]), min(x.seconds for x in last[1]), growth)} "
          f"communities, whole run {grown(min(x.seconds for x in first[2]), min(x.seconds for x in last[2]), growth)}")


def month_arguments(description: str, repeat: int, formats: str) -> argparse.ArgumentParser:
    """The arguments every runner takes: the month's size, the repeats, the formats, where the data
    is kept, and the hidden ``--child WHAT FOLDER FORMAT`` a runner starts its children with."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--communities", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=repeat)
    parser.add_argument("--formats", default=formats, help="comma-separated: parquet, ndjson")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "billing-benchmarks",
                        help="where generated data is kept and reused")
    parser.add_argument("--child", nargs=3, metavar=("WHAT", "FOLDER", "FORMAT"), help=argparse.SUPPRESS)
    return parser


def run_child(children: dict, child: list[str]) -> None:
    """Run one measured thing in this (child) process and print what it reports, as JSON."""
    what, folder, kind = child
    cap = CHILD_MEMORY_GIB * 2**30  # fail alone with MemoryError rather than press on the machine
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    print(json.dumps(children[what](Path(folder), kind)))


def main() -> None:
    parser = month_arguments(__doc__.splitlines()[0], repeat=3, formats="parquet,ndjson")
    parser.add_argument("--quick", action="store_true", help="small sizes and one repeat: a smoke run")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas + pyarrow baseline")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling tables")
    args = parser.parse_args()
    try:
        run(args)
    except Failed as failure:
        raise SystemExit(str(failure)) from None


def run(args: argparse.Namespace) -> None:
    if args.child:
        run_child(CHILDREN, args.child)
        return
    kinds = tuple(k.strip() for k in args.formats.split(",") if k.strip())
    if args.quick:
        args.rows, args.communities, args.repeat = min(args.rows, 200_000), min(args.communities, 20), 1
        row_sizes, community_sizes, scale_rows = [50_000, 100_000, 200_000], [5, 10, 20], 100_000
    else:
        row_sizes, community_sizes, scale_rows = [1_000_000, 3_000_000, 10_000_000], [10, 50, 200], 1_000_000
    pandas = not args.no_pandas
    if pandas:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            print("pyarrow is not installed (pip install -e '.[bench]'): the pandas + pyarrow baseline is skipped")
            pandas = False
    print(f"Machine: {machine()}")
    print(f"Month {MONTH}: {args.rows:,} detailed export rows, {args.communities} communities; "
          f"{args.repeat} run(s) of each, min (median)")
    folder = data_folder(args.data, args.rows, args.communities, kinds)
    main_table(folder, args.rows, args.communities, args.repeat, kinds, pandas)
    print(f"\nRendering {args.communities} invoices (benchmarks/render.py): {render_benchmark(args.communities, args.repeat)}")
    if not args.no_scaling:
        scaling(args.data, row_sizes, community_sizes, scale_rows, args.communities, args.repeat)
    print("\nTargets (rendering's are printed with its table above):")
    print(table(["target", "measured", ""], [[what, measured, "met" if met else "NOT met"]
                                             for what, measured, met in TARGETS]))


if __name__ == "__main__":
    main()
