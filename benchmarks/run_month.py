"""How long a month of the bundled demo takes, stage by stage.

Times loading the config, computing the month (collect, attribute, reconcile, split, price)
and writing the outputs (PDFs and CSVs), best of a few repetitions.

    python benchmarks/run_month.py [--month 2022-09] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from billing.config import load_config
from billing.records import Month
from billing.run import compute_month, write_outputs

CONFIG = Path(__file__).resolve().parents[1] / "config" / "billing.yaml"


def best(repeat: int, work) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--month", default="2022-09")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    month = Month.parse(options.month)

    load_seconds, config = best(options.repeat, lambda: load_config(CONFIG))
    compute_seconds, result = best(options.repeat, lambda: compute_month(config, month))

    def write() -> int:
        with tempfile.TemporaryDirectory() as folder:
            return len(write_outputs(Path(folder), config, result))

    write_seconds, files = best(options.repeat, write)
    print(f"demo month {month}: {len(result.attributed)} cost rows, {len(result.invoices)} invoices, {files} files")
    print(f"load config   {load_seconds * 1000:8.1f} ms")
    print(f"compute month {compute_seconds * 1000:8.1f} ms")
    print(f"write outputs {write_seconds * 1000:8.1f} ms  ({write_seconds / len(result.invoices) * 1000:.0f} ms "
          "per invoice, mostly PDF rendering)")


if __name__ == "__main__":
    main()
