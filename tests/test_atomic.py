"""A killed or concurrent run leaves every folder as before or as after (billing.atomic).

The kills are real (SIGKILL to another process at a random instant), as are the concurrent runs.
"""

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from billing import atomic
from billing.errors import Busy

from conftest import ROOT

FILES = 12


def contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def versions_of(folder: Path) -> set[str]:
    """The versions a folder's files come from: exactly one for a consistent folder."""
    return set(contents(folder).values())


def leftovers(final: Path) -> list[str]:
    versions = final.parent / atomic.VERSIONS
    current = final.resolve() if final.exists() else None
    return sorted(p.name for p in versions.iterdir() if p.resolve() != current) if versions.exists() else []


def publish(final: Path, version: str) -> None:
    with atomic.replacing(final, "the test folder") as folder:
        for n in range(FILES):
            (folder / f"file-{n:02d}.txt").write_text(version)


def test_publish_replaces_the_folder_whole_and_leaves_nothing_behind(tmp_path):
    final = tmp_path / "2022-09"
    publish(final, "first")
    publish(final, "second")
    assert final.is_symlink() and versions_of(final) == {"second"} and len(contents(final)) == FILES
    assert leftovers(final) == []
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["2022-09"]


def test_a_failure_while_writing_leaves_the_old_folder_and_no_staging(tmp_path):
    final = tmp_path / "2022-09"
    publish(final, "first")
    with pytest.raises(RuntimeError):
        with atomic.replacing(final, "the test folder") as folder:
            (folder / "file-00.txt").write_text("second")
            raise RuntimeError("a writer fails")
    assert versions_of(final) == {"first"} and leftovers(final) == []


def test_a_plain_folder_of_an_earlier_version_is_replaced_and_a_half_done_swap_recovered(tmp_path):
    final = tmp_path / "2022-09"
    final.mkdir()
    (final / "file-00.txt").write_text("legacy")
    publish(final, "first")
    assert final.is_symlink() and versions_of(final) == {"first"}

    # What an earlier version of the tool left when killed between its two renames: no folder,
    # only the retired one beside it, and a half-written staging folder.
    final.unlink()
    (tmp_path / ".2022-09.previous-1").mkdir()
    (tmp_path / ".2022-09.previous-1" / "file-00.txt").write_text("old")
    (tmp_path / ".2022-09.partial-1").mkdir()
    with atomic.locked(final, "the test folder"):
        atomic.recover(final)
    assert contents(final) == {"file-00.txt": "old"}
    assert not (tmp_path / ".2022-09.partial-1").exists() and leftovers(final) == []


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    final = tmp_path / "2022-09"
    with atomic.locked(final, "the outputs of 2022-09"):
        with pytest.raises(Busy, match=r"the outputs of 2022-09 \(.*2022-09\) are being written by another run "
                                       r"\(pid \d+ on host .* since .*\); try again when it has finished"):
            with atomic.locked(final, "the outputs of 2022-09"):
                pass
    with atomic.locked(final, "the outputs of 2022-09"):  # released
        pass


PUBLISHER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from billing import atomic
    final, n = Path(sys.argv[1]), 0
    while True:
        n += 1
        with atomic.replacing(final, "the test folder") as folder:
            for i in range({files}):
                (folder / f"file-{{i:02d}}.txt").write_text(str(n))
                time.sleep(0.0005)
""").format(files=FILES)


def test_kill_9_at_random_instants_leaves_the_old_or_the_new_folder(tmp_path):
    final = tmp_path / "out" / "2022-09"
    publish(final, "0")
    rng = random.Random(8)
    for _ in range(20):
        process = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(final)], cwd=ROOT)
        time.sleep(rng.uniform(0.25, 0.6))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert final.exists(), "a kill left no month folder"
        assert len(versions_of(final)) == 1 and len(contents(final)) == FILES, contents(final)
    publish(final, "last")  # the next run cleans what the kills left
    assert versions_of(final) == {"last"} and leftovers(final) == []


def billing(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "billing.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def register_matches_pdfs(folder: Path) -> bool:
    register = (folder / "invoice-register.csv").read_text()
    pdfs = sorted(p.name for p in folder.glob("*.pdf"))
    communities = [line.split(",")[1] for line in register.splitlines()[1:]]
    return pdfs == sorted(f"invoice-2022-09-{c}.pdf" for c in communities)


def test_two_concurrent_runs_of_one_month_never_mix_their_outputs(tmp_path):
    """Two runs with different configs (as two containers, each PID 1, would start them): the
    month's folder ends up wholly one run's, and a run that could not take the lock says why."""
    config = (ROOT / "config" / "billing.yaml").read_text().replace("../demo/", f"{ROOT}/demo/")
    (tmp_path / "a.yaml").write_text(config)
    (tmp_path / "b.yaml").write_text(config.replace("name: PaleoHack", "name: PaleoHack Two"))
    out = tmp_path / "out"
    runs = [billing("run", "--month", "2022-09", "--config", str(tmp_path / f"{name}.yaml"), "--output", str(out),
                    cwd=ROOT) for name in ("a", "b")]
    results = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    assert any(code == 0 for code, _ in results), results
    for code, stderr in results:
        assert code == 0 or (code == 1 and "are being written by another run" in stderr), stderr
    folder = out / "2022-09"
    assert register_matches_pdfs(folder)
    register = (folder / "invoice-register.csv").read_text()
    if [code for code, _ in results].count(0) == 1:  # the folder is the one that ran's
        assert ("PaleoHack Two" in register) == (results[1][0] == 0)
    assert leftovers(folder) == []


def test_a_billing_run_killed_at_random_instants_leaves_one_whole_month(tmp_path):
    config = (ROOT / "config" / "billing.yaml").read_text().replace("../demo/", f"{ROOT}/demo/")
    (tmp_path / "a.yaml").write_text(config)
    (tmp_path / "b.yaml").write_text(config.replace("name: PaleoHack", "name: PaleoHack Two"))
    whole = {}
    for name in ("a", "b"):  # what each config's run writes (reruns are byte-identical)
        done = billing("run", "--month", "2022-09", "--config", str(tmp_path / f"{name}.yaml"), "--output",
                       str(tmp_path / name), cwd=ROOT)
        assert done.wait(timeout=120) == 0
        whole[name] = contents_bytes(tmp_path / name / "2022-09")
    assert whole["a"] != whole["b"]
    out = tmp_path / "a"
    rng = random.Random(9)
    for _ in range(3):
        run = billing("run", "--month", "2022-09", "--config", str(tmp_path / "b.yaml"), "--output", str(out), cwd=ROOT)
        time.sleep(rng.uniform(0.5, 4.0))
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert contents_bytes(out / "2022-09") in (whole["a"], whole["b"]), "a kill left a mixed or missing month"


def contents_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
