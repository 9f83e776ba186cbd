"""The committed demo data is exactly what demo/generate.py makes."""

import runpy

from conftest import ROOT


def test_demo_data_is_the_generators_output(tmp_path, capsys):
    generate = runpy.run_path(str(ROOT / "demo" / "generate.py"))
    generate["main"](tmp_path)
    committed = ROOT / "demo" / "data"
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert made == sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    for relative in made:
        assert (tmp_path / relative).read_bytes() == (committed / relative).read_bytes(), relative
