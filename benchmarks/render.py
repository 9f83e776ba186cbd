"""How long rendering a month's PDF invoices takes with 1 and with 2 (or more) worker processes.

The invoices are the demo's September invoices repeated under distinct community ids and names
(``paleohack-001``, ...), N in all (default 200), each with its community in the config; every
one is rendered (no PDF is kept from an earlier run), as ``render.pdf.write_pdfs`` renders
them. Each worker count renders them all ``--repeat`` times into a fresh folder; the figures
are wall times, min and median, the speed-up of the best multi-worker time over the best
single-worker one, and the CPU time per invoice (this process and its workers); the worker
counts take turns, repeat after repeat. Before timing, each worker count renders a few invoices
untimed (importing WeasyPrint, starting the forkserver): that start is printed apart, as a run
pays it once.

    python benchmarks/render.py [--invoices 200] [--jobs 1 2] [--repeat 3]

Rendering is CPU-bound: other work on the machine shows as a smaller speed-up (the load average
is printed), and somewhat in the CPU time per invoice too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Sequence

CONFIG = Path(__file__).resolve().parents[1] / "config" / "billing.yaml"
TARGET_SECONDS, TARGET_SPEEDUP = 15.0, 1.7  # the targets for 200 invoices on 2 cores


def invoices_and_config(count: int, month: str = "2022-09"):
    """``count`` invoices made from the demo month's, each for a community of its own, and a
    config that has those communities."""
    from billing.config import load_config
    from billing.records import Month
    from billing.run import compute_month

    config = load_config(CONFIG)
    demo = compute_month(config, Month.parse(month)).invoices
    invoices, communities = [], []
    for n in range(count):
        invoice = demo[n % len(demo)]
        community = config.community(invoice.community_id)
        new_id = f"{community.id}-{n + 1:03d}"
        name = f"{community.name} {n + 1}"
        communities.append(community.model_copy(update={"id": new_id, "name": name}))
        invoices.append(invoice._replace(community_id=new_id, community_name=name,
                                         number=invoice.number.replace(community.id, new_id)))
    return invoices, config.model_copy(update={"communities": communities})


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used so far (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def render_once(invoices: Sequence, config, jobs: int) -> tuple[float, float]:
    """Wall time and CPU time (this process and its workers) of rendering every invoice into an
    empty folder with ``jobs`` worker processes, as ``render.pdf.write_pdfs`` renders them."""
    from billing.render.pdf import pdf_name
    from billing.render.pool import Renderer

    with tempfile.TemporaryDirectory() as folder:
        start, cpu = time.perf_counter(), time.process_time()
        with Renderer(config, jobs, len(invoices)) as renderer:
            pending = [renderer.start(Path(folder) / pdf_name(invoice), invoice,
                                      config.community(invoice.community_id)) for invoice in invoices]
            for rendering in pending:
                rendering.wait()
            workers = sum(_cpu_seconds(pid) for pid in renderer.pids())
        return time.perf_counter() - start, time.process_time() - cpu + workers


def measure(count: int = 200, jobs: Sequence[int] = (1, 2), repeat: int = 3) -> dict[int, dict[str, object]]:
    """Per worker count: its untimed start (``start``, seconds), every repeat's wall time
    (``times``), their ``min`` and ``median``, and the CPU seconds per invoice of the fastest
    (``cpu_per_invoice``)."""
    invoices, config = invoices_and_config(count)
    starts = {workers: render_once(invoices[:max(workers, 2) * 2], config, workers)[0] for workers in jobs}
    runs: dict[int, list[tuple[float, float]]] = {workers: [] for workers in jobs}
    for _ in range(repeat):  # in turn, so that other work on the machine weighs on each alike
        for workers in jobs:
            runs[workers].append(render_once(invoices, config, workers))
    figures: dict[int, dict[str, object]] = {}
    for workers in jobs:
        times = [wall for wall, _ in runs[workers]]
        figures[workers] = {"start": starts[workers], "times": times, "min": min(times),
                            "median": statistics.median(times), "cpu_per_invoice": min(runs[workers])[1] / count}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=200)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()

    from billing.render.pool import usable_cpus

    before = os.getloadavg()[0]
    figures = measure(options.invoices, options.jobs, options.repeat)
    print(f"rendering {options.invoices} invoices; {usable_cpus()} usable CPUs; load average {before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after (other work on the machine slows the figures)")
    print(f"{'workers':>7}  {'min s':>7}  {'median s':>8}  {'speed-up':>8}  {'CPU ms/invoice':>14}  {'start s':>7}  all s")
    base = figures[min(figures)]["min"]
    for workers, figure in figures.items():
        print(f"{workers:>7}  {figure['min']:>7.2f}  {figure['median']:>8.2f}  {base / figure['min']:>7.2f}x  "
              f"{figure['cpu_per_invoice'] * 1000:>14.0f}  {figure['start']:>7.2f}  "
              f"{' '.join(f'{t:.2f}' for t in figure['times'])}")
    if options.invoices == 200 and 1 in figures and 2 in figures:
        best, speedup = figures[2]["min"], figures[1]["min"] / figures[2]["min"]
        print(f"targets (200 invoices, 2 workers): under {TARGET_SECONDS:.0f} s: {best:.1f} s "
              f"({'met' if best < TARGET_SECONDS else 'NOT met'}); at least {TARGET_SPEEDUP}x one worker: "
              f"{speedup:.2f}x ({'met' if speedup >= TARGET_SPEEDUP else 'NOT met'})")


if __name__ == "__main__":  # workers import this module again: nothing may run on import
    main()
