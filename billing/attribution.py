"""Attribution: ordered rules put every cost row in exactly one bucket; the first match wins.

Buckets: a community, a shared pool (split among communities later, by ``allocation``), absorbed
(the organisation's own cost), or, for a row no rule matches, ``rounding`` if it is one of the
provider's rounding rows (carried by the organisation, like absorbed cost) and ``unattributed``
otherwise: it is never dropped, and it is reported.
"""

from __future__ import annotations

from typing import Callable, Iterable, NamedTuple, Sequence

from .config import Match, Rule
from .records import PROVIDER_ROUNDING, ROUNDING, UNATTRIBUTED, Attributed, Bucket, CostRow, provider_name, sub_account_noun


class _Compiled(NamedTuple):
    providers: frozenset[str] | None
    accounts: frozenset[str] | None
    labels: tuple[tuple[str, frozenset[str]], ...]
    bucket: Bucket


def bucket_of(rule: Rule) -> Bucket:
    if rule.community is not None:
        return Bucket("community", rule.community)
    if rule.shared_pool is not None:
        return Bucket("shared", rule.shared_pool)
    return Bucket("absorbed", rule.absorbed or "")


def _compile(match: Match, bucket: Bucket = UNATTRIBUTED) -> _Compiled:
    """``gcp_project: null`` becomes ``""``, the project of rows that have none (GCP rounding)."""
    accounts = match.accounts
    return _Compiled(
        providers=match.providers,
        accounts=frozenset("" if a is None else a for a in accounts) if accounts is not None else None,
        labels=tuple((key, frozenset(values)) for key, values in sorted(match.labels.items())),
        bucket=bucket,
    )


def matcher(match: Match) -> Callable[[CostRow], bool]:
    """A predicate for one match, e.g. a shared pool's scope."""
    compiled = _compile(match)
    return lambda row: _matches(compiled, row)


def _matches(rule: _Compiled, row: CostRow) -> bool:
    if rule.providers is not None and row.provider not in rule.providers:
        return False
    if rule.accounts is not None and row.project_or_account not in rule.accounts:
        return False
    return all(row.label(key) in values for key, values in rule.labels)


def attribute(rows: Iterable[CostRow], rules: Iterable[Rule]) -> tuple[Attributed, ...]:
    """Give each row the bucket of the first rule that matches it; else the provider's rounding
    rows go to ``rounding`` and any other row to ``unattributed``."""
    compiled = [_compile(rule.match, bucket_of(rule)) for rule in rules]
    attributed = []
    for row in rows:
        for index, rule in enumerate(compiled):
            if _matches(rule, row):
                attributed.append(Attributed(row, rule.bucket, index))
                break
        else:
            attributed.append(Attributed(row, PROVIDER_ROUNDING if row.charge_type == ROUNDING else UNATTRIBUTED,
                                         None))
    return tuple(attributed)


def _values(values: list[str | None]) -> str:
    words = ["(none)" if v is None else v for v in values]
    return words[0] if len(words) == 1 else "one of " + ", ".join(words)


def describe(match: Match) -> str:
    """A phrase a finance reader understands: what costs a rule covers."""
    providers = sorted(match.providers) if match.providers is not None else []
    what = " or ".join("AWS" if p == "aws" else provider_name(p) for p in providers) or "Cloud"
    noun = sub_account_noun(providers[0]) if len(providers) == 1 else "sub account"
    where = match.accounts
    named = [w for w in where or [] if w is not None]
    text = f"{what} {noun} {_values(named)}" if named else f"{what} costs"
    if where and None in where:  # GCP's rounding rows have no project
        text += (" and costs" if named else "") + f" without a {noun}" + (" (provider rounding)" if noun == "project" else "")
    if match.labels:
        text += " where " + " and ".join(f"{k} is {_values(v)}" for k, v in sorted(match.labels.items()))
    return text


def scope(attributed: Iterable[Attributed], rules: Sequence[Rule]) -> tuple[str, ...]:
    """What the given rows cover: the description of each rule that matched one, in rule order."""
    matched = sorted({item.rule for item in attributed if item.rule is not None})
    return tuple(dict.fromkeys(describe(rules[index].match) for index in matched))
