"""The benchmark's generated month is a real export month: the same rows in Parquet and in gzip'd
NDJSON, made again byte for byte from the same seed, billed whole by its own config."""

import sys
from decimal import Decimal

import pytest

from billing import attribution
from billing.collectors import gcp_files
from billing.config import load_config
from billing.records import Month

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import generate  # noqa: E402


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    generate.generate(folder, rows=3000, communities=7, shards=3, seed=5)
    return folder


def test_both_formats_hold_the_same_rows_and_the_config_bills_every_cost(month):
    collected = {}
    for name in ("billing.yaml", "billing-ndjson.yaml"):
        config = load_config(month / name)
        [source] = config.sources
        collection = gcp_files.collect(source, Month(2022, 9), config.label_keys("gcp"))
        buckets = {item.bucket.kind for item in attribution.attribute(collection.rows, config.attribution)}
        assert buckets <= {"community", "shared", "rounding"}  # nothing unattributed
        collected[name] = collection
    parquet, ndjson = collected.values()
    assert parquet.rows == ndjson.rows and parquet.totals == ndjson.totals
    assert sum(r.net for r in parquet.rows) == parquet.totals[0].total != Decimal(0)
    communities = {r.label("k8s-namespace") for r in parquet.rows} | {r.project_or_account for r in parquet.rows}
    assert {f"hub-{i:03d}" for i in range(7)} <= communities  # a namespace each
    assert {f"hub-{i:03d}-cluster" for i in range(7)} <= communities  # and a project each (7 < 50)
    assert {r.charge_type for r in parquet.rows} >= {"usage", "tax", "rounding", "adjustment"}
    assert any(r.credits for r in parquet.rows)


def test_the_same_seed_writes_the_same_bytes(month, tmp_path):
    generate.generate(tmp_path, rows=3000, communities=7, shards=3, seed=5)
    for kind in ("parquet", "ndjson"):
        ours, again = sorted((month / kind).iterdir()), sorted((tmp_path / kind).iterdir())
        assert [p.name for p in ours] == [p.name for p in again] and len(ours) == 3
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(ours, again))
    assert (month / "billing.yaml").read_text() == (tmp_path / "billing.yaml").read_text()


def test_data_already_made_from_the_same_arguments_is_kept(month):
    before = {p: p.stat().st_mtime_ns for p in (month / "parquet").iterdir()}
    generate.generate(month, rows=3000, communities=7, shards=3, seed=5, formats=("parquet",))
    assert {p: p.stat().st_mtime_ns for p in (month / "parquet").iterdir()} == before
