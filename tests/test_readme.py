"""The README's promises: its two commands, the CI script that runs one of them, the CLI's help."""

import re

import click
import pytest
from click.testing import CliRunner

from billing.cli import main

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def shell_commands() -> list[str]:
    return re.findall(r"```sh\n(python3 -m venv .*)\n```", README)


def test_readme_gives_exactly_two_setup_commands_one_for_the_demo_one_for_the_tests():
    demo, tests = shell_commands()
    assert demo.endswith("billing run --month 2022-09")
    assert tests.endswith("pytest")
    assert "-c requirements.lock" in demo and "-c requirements.lock" in tests


def test_ci_runs_the_readmes_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    assert shell_commands()[1] in ci.splitlines()


def test_readme_names_the_system_packages_ci_installs():
    ci = (ROOT / ".ci" / "run").read_text()
    packages = re.search(r"apt-get install -y (.*?)`", README)[1].split()
    assert packages and all(p in ci for p in packages)


def commands(group=main, path=()):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from commands(command, path + (name,))
        else:
            yield path + (name,)


@pytest.mark.parametrize("command", [" ".join(c) for c in commands()])
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(main, [*command.split(), "-h"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert re.search(r"Examples?: (\S+ )*?billing " + re.escape(command) + r"\b", text), text


def test_the_readme_lists_every_command():
    for command in commands():
        assert f"billing {' '.join(command)}" in README


def test_help_documents_the_exit_codes():
    output = " ".join(CliRunner().invoke(main, ["--help"]).output.split())
    assert ("Exit codes: 0 done; 1 a data, reconciliation, guard or delivery problem (the error line says what to "
            "do: run again later, fix the config or --allow, or billing deliver); 2 a usage or config error.") in output
