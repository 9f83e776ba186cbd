"""Guards against silent loss: findings that stop a month's run before it sends invoices that
quietly lost money, unless a person accepts them (``--allow``).

A typo in a project id does not fail anything downstream: the project's cost goes to
"unattributed", the community's invoice says "No cloud usage was attributed", the buckets still add
up. So each run compares what it found with what the run of the month before found (the figures
the ledger keeps per month, ``ledger.figures``) and with the config's ``guards`` limits:

- ``unattributed``: unattributed cost above ``max_unattributed`` (an amount, or a percentage of
  the sources' total), per currency;
- ``rule-unmatched``: an attribution rule that matched no cost this month while it matched cost
  last month; with no record of last month, a rule of a community under contract that matched
  nothing (what a typo looks like on a first run);
- ``cost-zero``: a community under contract whose cloud cost fell to zero since last month;
- ``cost-change``: one whose cloud cost changed by more than ``max_change_percent``.

A finding's ``key`` is ``kind:subject`` (the subject is a currency, a community or a pool id),
what ``--allow`` takes, whole (``cost-change:ciroh``) or by kind (``cost-change``).
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from decimal import Decimal
from typing import Iterable, NamedTuple, Sequence

from .attribution import bucket_of, describe
from .config import Config, Rule, source_providers
from .errors import UsageError
from .money import ZERO, format_amount, quantize
from .records import Attributed, Bucket, Figure, Month, provider_name, sub_account_noun

KINDS = ("unattributed", "rule-unmatched", "cost-zero", "cost-change")
CENT = Decimal("0.01")  # a rule that matched less than this last month is not missed
SOURCE, UNATTRIBUTED = "source", "unattributed"


class Finding(NamedTuple):
    """One reason a run stops. ``key`` (``kind:subject``) is what ``--allow`` accepts."""

    kind: str
    subject: str
    message: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"


def _target(bucket: Bucket) -> str:
    return f"{'shared_pool' if bucket.kind == 'shared' else bucket.kind}:{bucket.name}"


def rule_subjects(rules: Sequence[Rule]) -> list[str]:
    """Each rule's subject, ``rule:<target>#<n>``, in rule order."""
    seen: dict[str, int] = defaultdict(int)
    subjects = []
    for rule in rules:
        target = _target(bucket_of(rule))
        seen[target] += 1
        subjects.append(f"rule:{target}#{seen[target]}")
    return subjects


def rule_text(rules: Sequence[Rule], index: int) -> str:
    """``attribution[4] (community callysto: Google Cloud project callysto-hub)``."""
    bucket = bucket_of(rules[index])
    target = {"community": "community", "shared": "shared pool", "absorbed": "absorbed"}[bucket.kind]
    return f"attribution[{index}] ({target} {bucket.name}: {describe(rules[index].match)})"


def figures(config: Config, attributed: Iterable[Attributed], shares: Iterable, totals: Iterable) -> tuple[Figure, ...]:
    """The month's figures: per rule, per community, the sources' total and the unattributed cost,
    each per currency. ``shares`` are ``allocation.Share``s, ``totals`` ``ReconciliationRow``s."""
    subjects = rule_subjects(config.attribution)
    sums: dict[tuple[str, str], list] = defaultdict(lambda: [ZERO, 0, ""])

    def add(subject: str, currency: str, amount: Decimal, rows: int, detail: str = "") -> None:
        entry = sums[(subject, currency)]
        entry[0] += amount
        entry[1] += rows
        entry[2] = detail or entry[2]

    for item in attributed:
        row = item.row
        if item.rule is not None and (row.cost or row.net):
            add(subjects[item.rule], row.currency, row.net, 1, rule_text(config.attribution, item.rule))
        if item.bucket.kind == "community":
            add(f"community:{item.bucket.name}", row.currency, row.net, 1)
        elif item.bucket.kind == "unattributed":
            add(UNATTRIBUTED, row.currency, row.net, 1)
    for share in shares:
        add(f"community:{share.community}", share.currency, share.amount, 0)
    for total in totals:
        add(SOURCE, total.currency, total.source_total, 0)
    return tuple(Figure(subject, currency, amount, rows, detail)
                 for (subject, currency), (amount, rows, detail) in sorted(sums.items()))


def _by_subject(items: Iterable[Figure]) -> dict[str, dict[str, Figure]]:
    found: dict[str, dict[str, Figure]] = defaultdict(dict)
    for figure in items:
        found[figure.subject][figure.currency] = figure
    return found


def _amounts(by_currency: dict[str, Figure] | None) -> str:
    return ", ".join(f"{format_amount(f.amount, c)} {c}" for c, f in sorted((by_currency or {}).items())) or "nothing"


def check(config: Config, month: Month, now: Sequence[Figure], last: Sequence[Figure] | None,
          attributed: Sequence[Attributed], contracted: Iterable[str]) -> tuple[Finding, ...]:
    """The findings of ``month``'s figures ``now`` against the limits and ``last`` month's figures
    (``None``: the ledger has no record of last month). ``contracted``: the communities with a
    contract in force this month."""
    current, before = _by_subject(now), _by_subject(last) if last is not None else None
    contracted = list(contracted)
    return (tuple(_unattributed(config, current, attributed))
            + tuple(_unmatched_rules(config, month, current, before, contracted, attributed))
            + tuple(_cost_changes(config, month, current, before, contracted)))


def _unattributed(config: Config, current: dict[str, dict[str, Figure]],
                  attributed: Sequence[Attributed]) -> Iterable[Finding]:
    """Measured by its size, not its sum: every unattributed row's cost before credits, counted
    whatever its sign, so that a lost project is not hidden by an unrelated negative adjustment,
    nor by credits a contract withholds (the community would have paid the cost before them)."""
    limits = config.guards.max_unattributed
    sizes: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for item in attributed:
        if item.bucket.kind == "unattributed":
            sizes[item.row.currency] += abs(item.row.cost) or abs(item.row.net)
    for currency, size in sorted(sizes.items()):
        net = current.get(UNATTRIBUTED, {}).get(currency, Figure(UNATTRIBUTED, currency, ZERO, 0)).amount
        total = abs(current.get(SOURCE, {}).get(currency, Figure(SOURCE, currency, ZERO, 0)).amount)
        percent = size * 100 / total if total else None
        over_amount = limits.amount is not None and size > limits.amount
        over_percent = limits.percent is not None and percent is not None and percent > limits.percent
        if not (over_amount or over_percent):
            continue
        share = f" ({percent:.2f}% of the sources' {format_amount(total, currency)} {currency})" if percent else ""
        limit = " and ".join(part for part in (
            f"{format_amount(limits.amount, currency)} {currency}" if limits.amount is not None else "",
            f"{limits.percent.normalize():f}%" if limits.percent is not None else "") if part)
        after = f", {format_amount(net, currency)} {currency} after credits" if quantize(net - size, currency) else ""
        yield Finding("unattributed", currency, (
            f"unattributed cost {format_amount(size, currency)} {currency}{after}{share} is above "
            f"guards.max_unattributed (at most {limit}); most of it: {_largest_unattributed(attributed, currency)}"))


def _largest_unattributed(attributed: Sequence[Attributed], currency: str) -> str:
    groups: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for item in attributed:
        if item.bucket.kind == "unattributed" and item.row.currency == currency:
            groups[(item.row.provider, item.row.project_or_account)] += abs(item.row.cost) or abs(item.row.net)
    ranked = sorted(groups.items(), key=lambda kv: (-abs(kv[1]), kv[0]))[:3]
    return ", ".join(f"{provider_name(p)} {sub_account_noun(p)} {where or '(none)'} {format_amount(a, currency)} "
                     f"{currency}"
                     for (p, where), a in ranked)


def _unmatched_rules(config: Config, month: Month, current: dict[str, dict[str, Figure]],
                     before: dict[str, dict[str, Figure]] | None, contracted: list[str],
                     attributed: Sequence[Attributed]) -> Iterable[Finding]:
    for index, subject in enumerate(rule_subjects(config.attribution)):
        if subject in current:
            continue
        bucket = bucket_of(config.attribution[index])
        text = rule_text(config.attribution, index)
        hint = _spelling_hint(config.attribution[index], attributed)
        if before is not None and subject in before and any(abs(f.amount) >= CENT for f in before[subject].values()):
            then = next(iter(before[subject].values())).detail
            was = f"; last month's rule was {then}" if then and then != text else ""
            yield Finding("rule-unmatched", "absorbed" if bucket.kind == "absorbed" else bucket.name, (
                f"{text} matched no cost in {month}; in {month.previous} it matched "
                f"{_amounts(before[subject])}{was}{hint}"))
        elif before is None and bucket.kind == "community" and bucket.name in contracted:
            yield Finding("rule-unmatched", bucket.name, (
                f"{text} matched no cost in {month}, and the ledger has no record of {month.previous} to compare "
                f"with{hint}"))


def _spelling_hint(rule: Rule, attributed: Sequence[Attributed]) -> str:
    """``; did you mean 'callysto-hub', whose cost is unattributed?``: among this month's
    unattributed rows of the rule's provider, the closest value to one the rule names that no
    such row carries (a project or account, or a label or tag value)."""
    match = rule.match
    loose = [i.row for i in attributed if i.bucket.kind == "unattributed"
             and (match.providers is None or i.row.provider in match.providers)]
    where, labels = match.accounts, match.labels
    conditions = [(None, [v for v in where or [] if v], {row.project_or_account for row in loose})]
    conditions += [(key, [v for v in values if v], {row.label(key) for row in loose}) for key, values in
                   sorted(labels.items())]
    for key, wanted, seen in conditions:
        seen = sorted(v for v in seen if v)
        for value in wanted:
            if value in seen:
                continue  # this condition holds for some unattributed row: the typo is elsewhere
            close = difflib.get_close_matches(value, seen, n=1, cutoff=0.6)
            if close:
                what = f"{key} {close[0]!r}" if key else repr(close[0])
                return f"; did you mean {what}, whose cost is unattributed?"
    return ""


def _cost_changes(config: Config, month: Month, current: dict[str, dict[str, Figure]],
                  before: dict[str, dict[str, Figure]] | None, contracted: list[str]) -> Iterable[Finding]:
    if before is None:
        return
    limit, floor = config.guards.max_change_percent, config.guards.min_change_amount
    for community in contracted:
        subject = f"community:{community}"
        for currency, then in sorted(before.get(subject, {}).items()):
            if then.amount <= 0:
                continue  # nothing to compare a change with
            now = current.get(subject, {}).get(currency)
            amount = now.amount if now else ZERO
            was = f"{format_amount(then.amount, currency)} {currency} in {month.previous}"
            if amount == 0:
                yield Finding("cost-zero", community, (
                    f"community {community} is under contract but its cloud cost fell to zero in {month} "
                    f"(it was {was}); check its attribution rules"))
                continue
            change = (amount - then.amount) * 100 / then.amount
            small = floor is not None and abs(amount - then.amount) < floor
            if limit is not None and abs(change) > limit and not small:
                floor_text = f", min_change_amount {floor.normalize():f}" if floor is not None else ""
                yield Finding("cost-change", community, (
                    f"community {community}'s cloud cost changed by {change:+.1f}% since last month: "
                    f"{format_amount(amount, currency)} {currency} in {month}, {was} (guards.max_change_percent "
                    f"is {limit.normalize():f}{floor_text})"))


def allowed(findings: Sequence[Finding], allow: Sequence[str]) -> tuple[tuple[Finding, ...], tuple[Finding, ...], tuple[str, ...]]:
    """Split ``findings`` by ``allow`` (``kind`` or ``kind:subject``): those that stop the run,
    those accepted, and the ``allow`` entries that accepted none (worth a warning: a typo)."""
    for entry in allow:
        if entry.split(":", 1)[0] not in KINDS:
            raise UsageError(f"--allow {entry!r}: not a kind of finding; give one of {', '.join(KINDS)}, alone "
                             "or as kind:subject (e.g. cost-change:ciroh)")
    used: set[str] = set()
    stopping, accepted = [], []
    for finding in findings:
        entry = next((e for e in allow if e in (finding.kind, finding.key)), None)
        if entry is None:
            stopping.append(finding)
        else:
            used.add(entry)
            accepted.append(finding)
    return tuple(stopping), tuple(accepted), tuple(e for e in allow if e not in used)


def never_match(config: Config) -> tuple[str, ...]:
    """Rules that can never match whatever the data: an earlier rule takes every row they would
    (its conditions are each as wide or wider), or no source reads their provider."""
    read: set[str] | None = set()
    for source in config.sources:
        providers = source_providers(source)
        read = None if read is None or providers is None else read | providers
    found = []
    conditions = [_conditions(rule) for rule in config.attribution]
    for index, rule in enumerate(config.attribution):
        if read is not None and rule.match.providers is not None and not rule.match.providers & read:
            found.append(f"{rule_text(config.attribution, index)} can never match: no source reads "
                         f"{' or '.join(provider_name(p) for p in sorted(rule.match.providers))} costs")
            continue
        for earlier in range(index):
            if _covers(conditions[earlier], conditions[index], config.attribution[earlier], rule):
                found.append(f"{rule_text(config.attribution, index)} can never match: every cost it matches is "
                             f"taken first by attribution[{earlier}]")
                break
    return tuple(found)


def _conditions(rule: Rule) -> dict[str, frozenset]:
    match = rule.match
    found = {f"label:{key}": frozenset(values) for key, values in match.labels.items()}
    if match.accounts is not None:
        found["where"] = frozenset(match.accounts)
    if match.providers is not None:
        found["provider"] = match.providers
    return found


def _covers(wide: dict[str, frozenset], narrow: dict[str, frozenset], first: Rule, then: Rule) -> bool:
    """Every row ``then`` matches, ``first`` matches too."""
    return all(key in narrow and narrow[key] <= values for key, values in wide.items())
