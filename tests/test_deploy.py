"""The deploy examples (``deploy/``) say what they do: every ``billing`` command line in them is
one the CLI accepts, as click itself parses it, and the settings a monthly job relies on are there.

Command lines come from the Dockerfile (ENTRYPOINT + CMD), the CronJob's container (command +
args, or the image's), the workflow's ``run:`` steps, the systemd service's ExecStart and the
README's shell blocks. Each is parsed by ``billing.cli.main`` down to its command
(``make_context`` on the group, then on each subcommand, as ``click.Group.invoke`` does), with
the environment the example gives it, so an unknown option, a missing required one, a bad
choice (``--log-format jsn``) or an unknown command fails here. Every checker is also shown a
deliberately broken copy, to prove it can fail.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import click
import pytest
import yaml

from billing import dates
from billing.cli import main
from billing.config import load_config
from billing.errors import BillingError

from conftest import ROOT

DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
CRONJOB = DEPLOY / "kubernetes" / "cronjob.yaml"
WORKFLOW = DEPLOY / "github-actions" / "billing.yml"
SERVICE = DEPLOY / "systemd" / "billing.service"
TIMER = DEPLOY / "systemd" / "billing.timer"
README = DEPLOY / "README.md"

# The secrets a deployment hands the job; none may be written into a manifest.
SECRETS = ("BILLING_LEDGER_URL", "PGPASSWORD", "BILLING_SMTP_PASSWORD", "BILLING_WEBHOOK_URL")
# The monthly job: last month, logged as JSON lines.
MONTHLY = ["run", "--month", "last", "--log-format", "json"]


# --- the checker: click's own parser -------------------------------------------------------------

class InvalidCommandLine(AssertionError):
    """A ``billing`` command line the CLI would refuse; ``reason`` is the CLI's own message."""

    def __init__(self, shown: str, reason: str):
        super().__init__(f"{shown}: {reason}")
        self.reason = reason


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """Only ``env``'s BILLING_* variables, for the parse (click reads options such as --config and
    --log-format from them); logging and stdout as they were afterwards (--version prints, a
    --log-format callback may set up logging)."""
    saved = {name: value for name, value in os.environ.items() if name.startswith("BILLING_")}
    loggers = [logging.getLogger(), logging.getLogger("billing")]
    state = [(logger, list(logger.handlers), logger.level, logger.propagate) for logger in loggers]
    for name in saved:
        del os.environ[name]
    os.environ.update({name: value for name, value in env.items() if name.startswith("BILLING_")})
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for name in [n for n in os.environ if n.startswith("BILLING_")]:
            del os.environ[name]
        os.environ.update(saved)
        for logger, handlers, level, propagate in state:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def _pending(ctx: click.Context) -> list[str]:
    """The arguments a group left for its subcommand (``Group.invoke`` reads the same two lists)."""
    protected = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args
    return [*protected, *ctx.args]


def check_invocation(args: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Parse ``billing <args>`` exactly as the CLI would, without running it; return the command's
    path (``("run",)``, ``("ledger", "upgrade")``). Raises ``InvalidCommandLine`` with click's
    message for anything the CLI would refuse before doing any work, and for a ``--month`` or
    ``--today`` value that the command would refuse as its first step (``billing.dates``)."""
    shown = shlex.join(["billing", *args])
    path: list[str] = []
    with _environment(env or {}):
        try:
            ctx = main.make_context("billing", list(args))  # resilient_parsing is False: errors raise
            command: click.Command = main
            while isinstance(command, click.Group):
                rest = _pending(ctx)
                if not rest:
                    raise click.UsageError("missing command", ctx)
                name, found, rest = command.resolve_command(ctx, rest)
                assert name is not None and found is not None
                path.append(name)
                command = found
                ctx = command.make_context(name, rest, parent=ctx)
            if ctx.params.get("month") is not None:
                dates.month(ctx.params["month"], dates.today(ctx.params.get("today")))
        except click.exceptions.Exit as done:  # --version, --help: complete command lines that end the parse
            if done.exit_code != 0:
                raise InvalidCommandLine(shown, f"exits {done.exit_code}") from None
            return tuple(path) or ("--version",)
        except click.UsageError as error:
            raise InvalidCommandLine(shown, error.format_message()) from None
        except BillingError as error:
            raise InvalidCommandLine(shown, error.message) from None
    return tuple(path)


def test_the_checker_accepts_what_the_cli_accepts():
    assert check_invocation(MONTHLY) == ("run",)
    assert check_invocation(["run", "--month", "2022-09", "--today", "2022-10-06", "--force", "--allow",
                             "cost-change", "--allow", "unattributed:USD", "-q"]) == ("run",)
    assert check_invocation(["deliver", "--month", "last", "--log-format", "json"]) == ("deliver",)
    assert check_invocation(["ledger", "upgrade"]) == ("ledger", "upgrade")
    assert check_invocation(["aws", "check-tags", "-v"]) == ("aws", "check-tags")
    assert check_invocation(["--version"]) == ("--version",)


@pytest.mark.parametrize("args, message", [
    (["run", "--mnth", "last"], "No such option '--mnth'"),
    (["rn", "--month", "last"], "No such command 'rn'"),
    (["run"], "Missing option '--month'"),
    (["run", "--month", "last", "--log-format", "jsn"], "'jsn' is not one of"),
    (["run", "--month", "last", "extra"], "unexpected extra argument (extra)"),
    (["ledger"], "Usage: billing ledger"),                  # a group alone shows its help
    (["ledger", "upgrade", "--month", "last"], "No such option '--month'"),
    ([], "Usage: billing"),
    (["run", "--month", "lastt"], "--month 'lastt' is neither YYYY-MM"),
    (["run", "--month", "2022-13"], "--month '2022-13' is neither YYYY-MM"),
    (["run", "--month", "last", "--today", "yesterday"], "--today (or BILLING_TODAY) 'yesterday'"),
])
def test_the_checker_refuses_what_the_cli_refuses(args, message):
    with pytest.raises(InvalidCommandLine) as refused:
        check_invocation(args)
    assert message in refused.value.reason


def test_the_checker_reads_the_options_environment_variables():
    with pytest.raises(InvalidCommandLine) as refused:
        check_invocation(["run", "--month", "last"], {"BILLING_LOG_FORMAT": "jsn"})
    assert "'jsn' is not one of" in refused.value.reason
    check_invocation(["run", "--month", "last"], {"BILLING_LOG_FORMAT": "json"})


# --- small parsers for the files that are not YAML -----------------------------------------------

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order; comment lines dropped, continuation lines joined."""
    logical, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            logical.append(current.strip())
        current = ""
    if current.strip():
        logical.append(current.strip())
    return [(parts[0].upper(), parts[1] if len(parts) > 1 else "") for parts in (ln.split(None, 1) for ln in logical)]


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (name, _) in enumerate(instructions) if name == "FROM"]
    assert starts, "the Dockerfile has no FROM"
    return instructions[starts[-1]:]


def last(stage: list[tuple[str, str]], name: str) -> str | None:
    values = [value for instruction, value in stage if instruction == name]
    return values[-1] if values else None


def exec_form(value: str | None, what: str) -> list[str]:
    assert value is not None, f"the Dockerfile has no {what}"
    try:
        words = json.loads(value)
    except json.JSONDecodeError:
        words = None
    assert isinstance(words, list) and all(isinstance(w, str) for w in words), (
        f"{what} must be in exec form (a JSON list), so that the job gets signals and CMD its arguments: {value}")
    return words


def dockerfile_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, value in stage:
        if instruction == "ENV":
            for word in shlex.split(value):
                name, _, setting = word.partition("=")
                env[name] = setting
    return env


def unit_file(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit: section -> key -> every value given (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    section = None
    text = re.sub(r"\\\n", " ", text)
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = sections.setdefault(line[1:-1], {})
            continue
        assert section is not None and "=" in line, f"not a unit file line: {line!r}"
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return sections


OPERATORS = {";", "&&", "||", "|", "|&", "&"}
KEYWORDS = {"then", "do", "else", "elif", "if", "while", "until", "!", "exec", "time", "{", "("}
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script, each a list of words with quotes removed: lines
    joined at backslash-newline, split at ``; && || | |& &``, redirections dropped (with their
    target), leading keywords (``then``, ``do``, ...) dropped. Enough for the examples; what it
    does not read is refused rather than misread: here-documents anywhere, $(...) and backquotes
    in a line that runs billing (``billing_lines``)."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        line = re.sub(r"(?<![\w$}])\d+(?=[<>])", "", line)  # 2>&1 -> >&1: the fd goes with its operator
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words, skip = [], False
        for word in list(lexer) + [";"]:
            if skip:
                skip = False
            elif word in OPERATORS:
                if words:
                    commands.append(words)
                words = []
            elif re.fullmatch(r"[<>&|]+", word) and re.search(r"[<>]", word):
                assert "<<" not in word, f"here-documents are not read: {line!r}"
                skip = True
            elif not words and word in KEYWORDS:
                continue
            else:
                words.append(word)
    return commands


def billing_lines(script: str) -> list[tuple[dict[str, str], list[str]]]:
    """The commands of ``script`` that run billing: (assignments before it, its arguments)."""
    found = []
    for words in shell_commands(script):
        assignments = {}
        while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            assignments[name] = value
        if words and (words[0] == "billing" or words[0].endswith("/bin/billing")):
            assert not any(mark in " ".join(words) for mark in ("$(", "`")), f"not read: {' '.join(words)}"
            found.append((assignments, words[1:]))
    return found


def expand(words: Sequence[str], values: Mapping[str, Sequence[str]], where: str) -> list[list[str]]:
    """``words`` with each ``$NAME``/``${NAME}`` replaced, once per combination of ``values``."""
    names = sorted({m[1] or m[2] for word in words for m in _VARIABLE.finditer(word)})
    missing = [name for name in names if name not in values]
    assert not missing, (f"{where}: ${missing[0]} in a billing line is set nowhere the test can see (or to an "
                         "expression with no sample values in EXPRESSIONS)")
    out = []
    for combination in itertools.product(*(values[name] for name in names)):
        chosen = dict(zip(names, combination))
        out.append([_VARIABLE.sub(lambda m: chosen[m[1] or m[2]], word) for word in words])
    return out


def check_all(invocations: Sequence[tuple[list[str], Mapping[str, str]]], where: str) -> list[tuple[str, ...]]:
    assert invocations, f"{where}: no billing command line found"
    return [check_invocation(args, env) for args, env in invocations]


# --- the Dockerfile ----------------------------------------------------------------------------

def docker_invocations(text: str) -> list[tuple[list[str], dict[str, str]]]:
    stage = final_stage(dockerfile_instructions(text))
    argv = exec_form(last(stage, "ENTRYPOINT"), "ENTRYPOINT") + exec_form(last(stage, "CMD"), "CMD")
    assert argv[0] == "billing", f"the image's entry point is {argv[0]!r}, not billing"
    return [(argv[1:], dockerfile_env(stage))]


def dockerfile_problems(text: str) -> list[str]:
    problems = []
    instructions = dockerfile_instructions(text)
    stage = final_stage(instructions)
    base = last(stage, "FROM") or ""
    if not re.fullmatch(r"python:3\.1[12]-slim-bookworm", base.split()[0] if base else ""):
        problems.append(f"base image {base!r} is not python:3.11/3.12-slim-bookworm")
    user = last(stage, "USER")
    name = (user or "root").split(":")[0]
    if name in ("root", "0") or not name.isdigit():
        problems.append(f"USER {user!r}: the job must run as a non-root user given by number (runAsNonRoot)")
    runs = " ".join(value for instruction, value in instructions if instruction == "RUN")
    if "--no-install-recommends" not in runs:
        problems.append("apt-get install without --no-install-recommends")
    if not re.search(r"pip install [^&]*-c requirements\.lock", runs):
        problems.append("the package is not installed with the committed requirements.lock as constraints")
    missing = [p for p in ci_system_packages() if p not in runs.split()]
    if missing:
        problems.append(f"the system packages .ci/run installs are missing: {', '.join(missing)}")
    if dockerfile_env(stage).get("BILLING_CONFIG") != "/etc/billing/billing.yaml":
        problems.append("BILLING_CONFIG is not /etc/billing/billing.yaml")
    return problems


def ci_system_packages() -> list[str]:
    ci = (ROOT / ".ci" / "run").read_text()
    packages = re.search(r"apt-get install -y -qq (.*)", ci)[1].split()
    assert "libpango-1.0-0" in packages
    return packages


def test_the_dockerfiles_command_line_is_valid():
    assert check_all(docker_invocations(DOCKERFILE.read_text()), "Dockerfile") == [("run",)]
    assert docker_invocations(DOCKERFILE.read_text())[0][0] == MONTHLY


def test_the_dockerfile_runs_as_a_numbered_user_on_a_pinned_base_with_the_locked_packages():
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


def test_the_image_copies_all_the_package_needs_and_the_ignore_file_keeps_it():
    """The PDF template lives in templates/, outside the package: the image must copy it."""
    stage = final_stage(dockerfile_instructions(DOCKERFILE.read_text()))
    copied = set()
    for instruction, value in stage:
        if instruction == "COPY":
            words = [word for word in shlex.split(value) if not word.startswith("--")]
            copied.update(word.rstrip("/") for word in words[:-1])
    assert {"pyproject.toml", "README.md", "requirements.lock", "billing", "templates"} <= copied
    ignore = [line for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]
    assert ignore[0] == "*" and {"!billing/", "!templates/", "!pyproject.toml", "!README.md",
                                 "!requirements.lock"} <= set(ignore)


# --- the CronJob ---------------------------------------------------------------------------------

def k8s_documents(text: str) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(text) if doc}


def cron_fields(schedule: str) -> list[str]:
    fields = schedule.split()
    assert len(fields) == 5, f"not a five-field cron schedule: {schedule!r}"
    return fields


def monthly_on_the_6th(schedule: str) -> str | None:
    """Why ``schedule`` is not once a month on the 6th, or None. A restricted day of week would
    also fire on those weekdays (cron ORs the two day fields)."""
    minute, hour, day, month, weekday = cron_fields(schedule)
    if day != "6" or month != "*" or weekday != "*" or not minute.isdigit() or not hour.isdigit():
        return f"schedule {schedule!r} is not once a month on the 6th (minute hour 6 * *)"
    return None


def pod_of(docs: dict[str, dict]) -> dict:
    return docs["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def billing_container(docs: dict[str, dict]) -> dict:
    containers = pod_of(docs)["containers"]
    assert len(containers) == 1, "one container, the job"
    return containers[0]


def cronjob_invocations(text: str) -> list[tuple[list[str], dict[str, str]]]:
    container = billing_container(k8s_documents(text))
    stage = final_stage(dockerfile_instructions(DOCKERFILE.read_text()))
    image_env = dockerfile_env(stage)
    if "command" in container:  # Kubernetes: a command replaces the image's ENTRYPOINT and CMD
        argv = list(container["command"]) + list(container.get("args", []))
    else:
        argv = exec_form(last(stage, "ENTRYPOINT"), "ENTRYPOINT") + list(
            container.get("args", exec_form(last(stage, "CMD"), "CMD")))
    assert argv[0] == "billing", f"the container runs {argv[0]!r}, not billing"
    env = {**image_env, **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e}}
    return [(argv[1:], env)]


def cronjob_problems(text: str) -> list[str]:
    docs = k8s_documents(text)
    problems = []
    cronjob = docs["CronJob"]["spec"]
    problem = monthly_on_the_6th(cronjob["schedule"])
    if problem:
        problems.append(problem)
    if cronjob.get("timeZone") not in ("Etc/UTC", "UTC"):
        problems.append(f"timeZone {cronjob.get('timeZone')!r} is not UTC")
    if cronjob.get("concurrencyPolicy") != "Forbid":
        problems.append(f"concurrencyPolicy {cronjob.get('concurrencyPolicy')!r}, not Forbid")
    if not isinstance(cronjob.get("startingDeadlineSeconds"), int):
        problems.append("no startingDeadlineSeconds")
    backoff = cronjob["jobTemplate"]["spec"].get("backoffLimit")
    if not isinstance(backoff, int) or backoff > 3:
        problems.append(f"backoffLimit {backoff!r} is not small (0 to 3)")

    pod = pod_of(docs)
    security = pod.get("securityContext", {})
    if security.get("runAsNonRoot") is not True:
        problems.append("the pod's securityContext lacks runAsNonRoot: true")
    user = (last(final_stage(dockerfile_instructions(DOCKERFILE.read_text())), "USER") or "").split(":")[0]
    if str(security.get("runAsUser")) != user:
        problems.append(f"runAsUser {security.get('runAsUser')!r} is not the image's user {user!r}")
    account = docs.get("ServiceAccount", {})
    if pod.get("serviceAccountName") != account.get("metadata", {}).get("name"):
        problems.append("the pod does not run as the ServiceAccount of the file")
    if "iam.gke.io/gcp-service-account" not in account.get("metadata", {}).get("annotations", {}):
        problems.append("the ServiceAccount has no GKE Workload Identity annotation")

    container = billing_container(docs)
    env = {e["name"]: e for e in container.get("env", [])}
    for name in SECRETS:
        if name not in env:
            problems.append(f"{name} is not given to the job")
        elif not env[name].get("valueFrom", {}).get("secretKeyRef"):
            problems.append(f"{name} must come from a Secret (valueFrom.secretKeyRef), not a literal value")
    for name, entry in env.items():
        if "value" in entry and re.search(r"PASSWORD|SECRET|TOKEN|WEBHOOK|KEY", name):
            problems.append(f"{name} is written into the manifest; give it from a Secret")
    if container.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
        problems.append("the container's root filesystem is not read-only")
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    workdir = last(final_stage(dockerfile_instructions(DOCKERFILE.read_text())), "WORKDIR")
    for path in ("/tmp", workdir):
        if path not in mounts:
            problems.append(f"{path} is not a mounted volume: with a read-only root the job cannot write there")
    config_folder = str(Path(env.get("BILLING_CONFIG", {}).get("value", "")).parent)
    if "configMap" not in volumes.get(mounts.get(config_folder, ""), {}):
        problems.append(f"the config folder {config_folder} is not a ConfigMap volume")
    return problems


def test_the_cronjobs_command_line_is_valid():
    assert check_all(cronjob_invocations(CRONJOB.read_text()), "CronJob") == [("run",)]
    assert cronjob_invocations(CRONJOB.read_text())[0][0] == MONTHLY


def test_the_cronjob_runs_once_a_month_alone_non_root_with_secrets_from_a_secret():
    assert cronjob_problems(CRONJOB.read_text()) == []


# --- the GitHub Actions workflow -----------------------------------------------------------------

# Values the runner gives (samples), and what the workflow's expressions can evaluate to.
RUNNER = {"RUNNER_TEMP": ["/home/runner/work/_temp"], "GITHUB_WORKSPACE": ["/home/runner/work/repo/repo"]}
EXPRESSIONS = {"${{ inputs.month || 'last' }}": ["last", "2022-09"]}


def workflow_of(text: str) -> dict:
    workflow = yaml.safe_load(text)
    if True in workflow:  # YAML 1.1 reads the key `on` as true
        workflow["on"] = workflow.pop(True)
    return workflow


def steps_of(workflow: dict) -> list[tuple[dict, dict]]:
    return [(job, step) for job in workflow["jobs"].values() for step in job.get("steps", [])]


def workflow_invocations(text: str) -> list[tuple[list[str], dict[str, str]]]:
    workflow = workflow_of(text)
    found = []
    for job, step in steps_of(workflow):
        if "run" not in step:
            continue
        env = {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}
        values: dict[str, list[str]] = dict(RUNNER)
        for name, value in env.items():
            value = str(value)
            if "${{" in value:
                if value.strip() in EXPRESSIONS:
                    values[name] = EXPRESSIONS[value.strip()]
            else:
                values[name] = [value]
        literal = {name: str(value) for name, value in env.items() if "${{" not in str(value)}
        for assignments, args in billing_lines(step["run"]):
            for expanded in expand(args, values, f"step {step.get('name')!r}"):
                found.append((expanded, {**literal, **assignments}))
    return found


def workflow_problems(text: str) -> list[str]:
    workflow = workflow_of(text)
    problems = []
    triggers = workflow.get("on") or {}
    schedules = triggers.get("schedule") or []
    if not schedules:
        problems.append("no schedule trigger")
    for entry in schedules:
        problem = monthly_on_the_6th(entry["cron"])
        if problem:
            problems.append(problem)
    dispatch = triggers.get("workflow_dispatch") or {}
    if "workflow_dispatch" not in triggers:
        problems.append("no workflow_dispatch trigger (a month by hand)")
    elif (dispatch.get("inputs") or {}).get("month", {}).get("default") != "last":
        problems.append("workflow_dispatch has no input month defaulting to last")
    permissions = workflow.get("permissions") or {}
    if permissions.get("id-token") != "write":
        problems.append("permissions lack id-token: write (OIDC to the clouds)")
    if permissions.get("contents") != "read":
        problems.append("permissions should give contents: read only")

    steps = steps_of(workflow)
    uses = {step.get("uses", "").split("@")[0]: step for _, step in steps}
    if "workload_identity_provider" not in (uses.get("google-github-actions/auth", {}).get("with") or {}):
        problems.append("no google-github-actions/auth step with workload_identity_provider")
    if "role-to-assume" not in (uses.get("aws-actions/configure-aws-credentials", {}).get("with") or {}):
        problems.append("no aws-actions/configure-aws-credentials step with role-to-assume")
    uploads = [step for _, step in steps if step.get("uses", "").startswith("actions/upload-artifact@")]
    if not any(str(step["with"]["path"]).endswith(".log") and "always()" in str(step.get("if", ""))
               for step in uploads):
        problems.append("no upload-artifact step that keeps the log even when the run failed (if: always())")
    if not any("invoices" in str(step["with"]["path"]) for step in uploads):
        problems.append("no upload-artifact step for the month's files")
    scripts = "\n".join(step.get("run", "") for _, step in steps)
    if not re.search(r"pip\"? install [^\n]*-c requirements\.lock", scripts):
        problems.append("billing is not installed with requirements.lock as constraints")
    missing = [p for p in ci_system_packages() if p not in scripts.replace("\\\n", " ").split()]
    if missing:
        problems.append(f"the system packages .ci/run installs are missing: {', '.join(missing)}")
    for scope in [workflow] + [job for job in workflow["jobs"].values()] + [step for _, step in steps]:
        for name, value in (scope.get("env") or {}).items():
            if name in SECRETS and not re.fullmatch(rf"\$\{{\{{ secrets\.{name} }}}}", str(value)):
                problems.append(f"{name} must be ${{{{ secrets.{name} }}}}, not {value!r}")
    return problems


def test_the_workflows_command_lines_are_valid():
    invocations = workflow_invocations(WORKFLOW.read_text())
    assert check_all(invocations, "workflow") == [("run",), ("run",)]  # the month's two sample values
    assert [args[:2] for args, _ in invocations] == [["run", "--month"]] * 2


def test_the_workflow_runs_on_the_6th_and_by_hand_with_oidc_and_keeps_the_files():
    assert workflow_problems(WORKFLOW.read_text()) == []


# --- systemd -------------------------------------------------------------------------------------

def systemd_invocations(text: str) -> list[tuple[list[str], dict[str, str]]]:
    service = unit_file(text)["Service"]
    env = {}
    for line in service.get("Environment", []):
        for word in shlex.split(line):
            name, _, value = word.partition("=")
            env[name] = value
    found = []
    for line in service.get("ExecStart", []):
        argv = shlex.split(line.lstrip("@-:+!"))
        assert argv[0].startswith("/") and argv[0].endswith("/billing"), f"ExecStart runs {argv[0]!r}, not billing"
        found.append((argv[1:], env))
    return found


def systemd_problems(service_text: str, timer_text: str) -> list[str]:
    problems = []
    service = unit_file(service_text).get("Service", {})
    expected = {"Type": "oneshot", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes"}
    for key, value in expected.items():
        if service.get(key, [None])[-1] != value:
            problems.append(f"the service lacks {key}={value}")
    if service.get("User", ["root"])[-1] in ("root", "0"):
        problems.append("the service runs as root")
    if not service.get("EnvironmentFile"):
        problems.append("no EnvironmentFile for the secrets")
    if any(secret in line for line in service.get("Environment", []) for secret in SECRETS):
        problems.append("a secret is written into the unit; put it in the EnvironmentFile")
    if service.get("ExecStart", [""])[-1].split()[0] != "/opt/billing/.venv/bin/billing":
        problems.append("ExecStart is not /opt/billing/.venv/bin/billing (as deploy/README.md installs it)")
    timer = unit_file(timer_text).get("Timer", {})
    calendar = timer.get("OnCalendar", [""])
    if len(calendar) != 1 or not re.fullmatch(r"\*-\*-0?6 \d\d:\d\d(:\d\d)? UTC", calendar[0]):
        problems.append(f"OnCalendar {calendar} is not once a month on the 6th, in UTC")
    if timer.get("Persistent", ["false"])[-1] not in ("true", "yes"):
        problems.append("the timer is not Persistent (a run missed while the machine was off would be lost)")
    return problems


def test_the_services_command_line_is_valid():
    assert check_all(systemd_invocations(SERVICE.read_text()), "billing.service") == [("run",)]
    assert systemd_invocations(SERVICE.read_text())[0][0] == MONTHLY


def test_the_timer_is_monthly_and_persistent_and_the_service_hardened():
    assert systemd_problems(SERVICE.read_text(), TIMER.read_text()) == []


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_reads_the_timers_calendar_as_the_6th():
    calendar = unit_file(TIMER.read_text())["Timer"]["OnCalendar"][0]
    shown = subprocess.run(["systemd-analyze", "calendar", "--iterations=2", calendar],
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert re.findall(r"\d{4}-\d\d-(\d\d) 06:00:00 UTC", shown.stdout) == ["06", "06"]


# --- the README's shell blocks -------------------------------------------------------------------

def readme_invocations(text: str) -> list[tuple[list[str], dict[str, str]]]:
    """billing run directly, through ``docker run ... billing:<tag> ...`` (the image's entry
    point), ``systemd-run ... /opt/billing/.venv/bin/billing ...``, and the argument lists the
    one-off Kubernetes Jobs are given (``.args = [...]``)."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for assignments, args in billing_lines(block):
            found.append((args, assignments))
        for words in shell_commands(block):
            if words[:2] == ["docker", "run"]:
                image = next(i for i, word in enumerate(words) if word.startswith("billing:"))
                env = dict(words[i + 1].split("=", 1) for i, word in enumerate(words[:image]) if word == "-e")
                found.append((words[image + 1:], env))
            elif "systemd-run" in words:
                program = next(i for i, word in enumerate(words) if word.endswith("/bin/billing"))
                env = dict(words[i + 1].split("=", 1) for i, word in enumerate(words[:program]) if word == "-E")
                found.append((words[program + 1:], env))
        for array in re.findall(r"\.args = (\[.*?\])", block):
            found.append((json.loads(array), {}))
    return found


def test_the_readmes_command_lines_are_valid():
    invocations = readme_invocations(README.read_text())
    paths = check_all(invocations, "deploy/README.md")
    assert {("--version",), ("run",), ("deliver",), ("ledger", "upgrade")} <= set(paths), paths
    assert len(invocations) >= 6


def test_the_readmes_config_excerpt_is_a_valid_config(tmp_path):
    """The config sections a deployment sets, as the README shows them, added to the demo config."""
    excerpt = re.search(r"```yaml\n(# the parts of billing\.yaml .*?)```", README.read_text(), re.S)[1]
    config = yaml.safe_load((ROOT / "config" / "billing.yaml").read_text())
    config.update(yaml.safe_load(excerpt))
    path = tmp_path / "billing.yaml"
    path.write_text(yaml.safe_dump(config))
    loaded = load_config(path)
    assert str(loaded.output) == "/var/lib/billing/output"
    assert loaded.deliver is not None and loaded.deliver.buckets


# --- broken copies: each checker can fail ---------------------------------------------------------

def broken(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} is not in the file any more: update this test"
    return text.replace(old, new)


@pytest.mark.parametrize("name, invocations, path, old, new", [
    ("Dockerfile CMD", docker_invocations, DOCKERFILE, '"--month"', '"--mnth"'),
    ("CronJob args", cronjob_invocations, CRONJOB, '"--month"', '"--mnth"'),
    ("workflow run step", workflow_invocations, WORKFLOW, 'billing run --month', 'billing run --mnth'),
    ("systemd ExecStart", systemd_invocations, SERVICE, "run --month last", "run --mnth last"),
    ("README systemd-run", readme_invocations, README, "billing deliver --month", "billing deliver --mnth"),
    ("README docker run", readme_invocations, README, "run --month 2022-09 --no-deliver",
     "run --mnth 2022-09 --no-deliver"),
    ("README Job args", readme_invocations, README, '["run", "--month"', '["run", "--mnth"'),
])
def test_a_misspelt_option_in_each_file_is_refused(name, invocations, path, old, new):
    with pytest.raises(InvalidCommandLine) as refused:
        check_all(invocations(broken(path.read_text(), old, new)), name)
    assert "No such option '--mnth'" in refused.value.reason


def test_a_bad_value_from_the_cronjobs_environment_is_refused():
    docs = list(yaml.safe_load_all(CRONJOB.read_text()))
    container = billing_container({doc["kind"]: doc for doc in docs})
    container["args"] = ["run", "--month", "last"]
    container["env"].append({"name": "BILLING_LOG_FORMAT", "value": "jsn"})
    with pytest.raises(InvalidCommandLine) as refused:
        check_all(cronjob_invocations(yaml.safe_dump_all(docs)), "CronJob")
    assert "'jsn' is not one of" in refused.value.reason


def test_a_cronjob_without_its_image_command_falls_back_to_the_images_and_is_checked():
    text = broken(CRONJOB.read_text(), '              command: ["billing"]\n', "")
    text = broken(text, '["run", "--month", "last", "--log-format", "json"]', '["run", "--month", "last", "--bogus"]')
    with pytest.raises(InvalidCommandLine) as refused:
        check_all(cronjob_invocations(text), "CronJob")
    assert "No such option '--bogus'" in refused.value.reason


def test_a_variable_the_workflow_does_not_set_is_refused():
    text = broken(WORKFLOW.read_text(), 'billing run --month "$MONTH"', 'billing run --month "$MONTHS"')
    with pytest.raises(AssertionError, match=r"\$MONTHS"):
        workflow_invocations(text)


@pytest.mark.parametrize("old, new, problem", [
    ("concurrencyPolicy: Forbid", "concurrencyPolicy: Allow", "concurrencyPolicy 'Allow'"),
    ('schedule: "0 6 6 * *"', 'schedule: "0 6 6 * 1"', "not once a month on the 6th"),
    ('schedule: "0 6 6 * *"', 'schedule: "0 6 * * 6"', "not once a month on the 6th"),
    ("runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot"),
    ("backoffLimit: 2", "backoffLimit: 6", "backoffLimit 6"),
    ("""                - name: PGPASSWORD
                  valueFrom:
                    secretKeyRef:
                      name: billing
                      key: PGPASSWORD
""", """                - name: PGPASSWORD
                  value: hunter2
""", "PGPASSWORD must come from a Secret"),
    ("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "read-only"),
    ("""                - name: tmp
                  mountPath: /tmp
""", "", "/tmp is not a mounted volume"),
])
def test_a_broken_cronjob_is_refused(old, new, problem):
    problems = cronjob_problems(broken(CRONJOB.read_text(), old, new))
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("old, new, problem", [
    ("  id-token: write", "  id-token: none", "id-token: write"),
    ('    - cron: "0 6 6 * *"', '    - cron: "0 6 1 * *"', "not once a month on the 6th"),
    ("  workflow_dispatch:\n", "  push:\n", "workflow_dispatch"),
    ("PGPASSWORD: ${{ secrets.PGPASSWORD }}", "PGPASSWORD: hunter2", "PGPASSWORD must be"),
    ("      - name: Upload the log\n        if: always()\n", "      - name: Upload the log\n",
     "no upload-artifact step that keeps the log even when the run failed"),
])
def test_a_broken_workflow_is_refused(old, new, problem):
    problems = workflow_problems(broken(WORKFLOW.read_text(), old, new))
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("which, old, new, problem", [
    ("timer", "Persistent=true", "Persistent=false", "not Persistent"),
    ("timer", "OnCalendar=*-*-06 06:00:00 UTC", "OnCalendar=*-*-01 06:00:00 UTC", "not once a month on the 6th"),
    ("service", "User=billing", "User=root", "runs as root"),
    ("service", "Type=oneshot", "Type=simple", "Type=oneshot"),
])
def test_broken_systemd_units_are_refused(which, old, new, problem):
    service, timer = SERVICE.read_text(), TIMER.read_text()
    if which == "timer":
        timer = broken(timer, old, new)
    else:
        service = broken(service, old, new)
    problems = systemd_problems(service, timer)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("old, new, problem", [
    ("USER 10001:10001", "USER root", "non-root"),
    ("USER 10001:10001", "USER billing", "by number"),
    ("FROM python:3.11-slim-bookworm", "FROM python:3.11", "base image"),
    ("install -c requirements.lock -e .", "install -e .", "requirements.lock"),
    (" fonts-dejavu-core", "", "fonts-dejavu-core"),
])
def test_a_broken_dockerfile_is_refused(old, new, problem):
    problems = dockerfile_problems(broken(DOCKERFILE.read_text(), old, new))
    assert any(problem in p for p in problems), problems


def test_a_shell_form_entrypoint_is_refused():
    text = broken(DOCKERFILE.read_text(), 'ENTRYPOINT ["billing"]', "ENTRYPOINT billing")
    with pytest.raises(AssertionError, match="exec form"):
        docker_invocations(text)


# --- the image itself, where a docker daemon is at hand ----------------------------------------

def test_the_image_builds_and_bills_the_demo_month():
    """Build deploy/Dockerfile, then in the image: `billing --version`, and the demo month billed
    with a read-only root (PDFs need Pango, the fonts and the templates folder)."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
        pytest.skip(f"no docker daemon: {reason}")
    tag = f"billing-deploy-test:{os.getpid()}"
    build = subprocess.run([docker, "build", "-f", "deploy/Dockerfile", "-t", tag, "."], cwd=ROOT,
                           capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    try:
        version = subprocess.run([docker, "run", "--rm", tag, "--version"], capture_output=True, text=True,
                                 timeout=120)
        assert version.returncode == 0, version.stderr
        assert version.stdout.startswith("billing, version ")

        demo = subprocess.run(
            [docker, "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--tmpfs", "/var/lib/billing:rw,mode=1777",
             "-v", f"{ROOT / 'config'}:/demo/config:ro", "-v", f"{ROOT / 'demo'}:/demo/demo:ro",
             "-e", "BILLING_LEDGER_URL=sqlite:////var/lib/billing/ledger.sqlite",
             "--entrypoint", "/bin/sh", tag, "-c",
             "billing run --month 2022-09 --config /demo/config/billing.yaml --output /var/lib/billing/output "
             "--no-deliver --log-format json && ls /var/lib/billing/output/2022-09/"],
            capture_output=True, text=True, timeout=600)
        assert demo.returncode == 0, demo.stderr[-3000:]
        files = demo.stdout.split()
        assert "invoice-register.csv" in files and sum(name.endswith(".pdf") for name in files) >= 1, files
    finally:
        subprocess.run([docker, "image", "rm", "-f", tag], capture_output=True, timeout=120)
