"""Shared pools: costs no single community caused, split among the communities that share them.

A pool has two parts, split separately with the same weights: the provider's tax on the pool's
rows (``charge_type`` tax), so that it is invoiced as tax, and everything else. Each part (per
currency) is rounded half-up to the minor unit and split in whole minor units by the
largest-remainder method, so the shares always add up to the part exactly: every community first
gets the floor of its exact share, and the cents left over go one each to the largest fractional
remainders (ties to the community id that sorts first). Weights:

- ``proportional``: the community's direct cost in the pool's scope (zero if none or negative);
- ``even``: one each; ``fixed``: the configured percentage;
- ``metric``: the community's value of the metric this month (zero if it has none).

A community that gets nothing because its weight is zero is reported; a pool with cost but no
weight at all cannot be split and stops the run (a part whose cost rounds to zero gives zeros).
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Callable, Iterable, Mapping, NamedTuple

from .attribution import matcher
from .config import Config, SharedPool
from .errors import DataError
from .metrics import Metrics
from .money import ZERO, minor_unit, quantize
from .records import TAX, Attributed, Month

COSTS = "costs"  # Share.part of everything in a pool but its tax


class Share(NamedTuple):
    """One community's share of one part of one pool.

    Attributes:
        pool: pool id.
        community: community id.
        currency: currency of the pool's costs.
        amount: the share, in the currency's minor unit.
        weight: what the share is proportional to.
        pool_total: the cost of this part of the pool at full precision (the shares add up to it
            rounded).
        part: ``"tax"`` for the provider's tax on the pool's rows, ``"costs"`` for everything else
            (usage, credits, adjustments, ...).
    """

    pool: str
    community: str
    currency: str
    amount: Decimal
    weight: Decimal
    pool_total: Decimal
    part: str = COSTS

    def percent(self, weights_total: Decimal) -> Decimal:
        return self.weight * 100 / weights_total if weights_total else ZERO


def largest_remainder(total: Decimal, weights: Mapping[str, Decimal], currency: str) -> dict[str, Decimal]:
    """Split ``total`` (rounded to the minor unit) in proportion to ``weights``, exactly.

    The result does not depend on the order of ``weights``. Weights must not be negative and
    must not all be zero.
    """
    if any(w < 0 for w in weights.values()):
        raise ValueError("weights must not be negative")
    weight_sum = sum(weights.values(), ZERO)
    if weight_sum <= 0:
        raise ValueError("the weights add up to zero")
    unit = Decimal(1).scaleb(-minor_unit(currency))
    units = int(quantize(total, currency) / unit)
    sign, count = (-1 if units < 0 else 1), abs(units)
    with localcontext() as context:
        context.prec = 60
        exact = {key: count * weight / weight_sum for key, weight in weights.items()}
    floors = {key: int(value) for key, value in exact.items()}
    left = count - sum(floors.values())
    for key in sorted(exact, key=lambda k: (-(exact[k] - floors[k]), k))[:left]:
        floors[key] += 1
    return {key: sign * floors[key] * unit for key in weights}


def _weights(pool: SharedPool, pool_rows: list[Attributed], attributed: Iterable[Attributed],
             currency: str, metrics: Metrics) -> dict[str, Decimal]:
    if pool.split == "even":
        return {c: Decimal(1) for c in pool.communities}
    if pool.split == "fixed":
        return {c: pool.percentages[c] for c in pool.communities}
    if pool.split == "metric":
        return {c: metrics.value(c, pool.metric) or ZERO for c in pool.communities}
    in_scope: Callable = (matcher(pool.scope) if pool.scope else
                          _same_accounts({(a.row.provider, a.row.project_or_account) for a in pool_rows}))
    direct = {c: ZERO for c in pool.communities}
    for item in attributed:
        if (item.bucket.kind == "community" and item.bucket.name in direct and item.row.currency == currency
                and in_scope(item.row)):
            direct[item.bucket.name] += item.row.net
    return {c: max(amount, ZERO) for c, amount in direct.items()}


def _same_accounts(accounts: set[tuple[str, str]]) -> Callable:
    return lambda row: (row.provider, row.project_or_account) in accounts


def allocate(config: Config, attributed: tuple[Attributed, ...], month: Month,
             metrics: Metrics) -> tuple[tuple[Share, ...], tuple[str, ...]]:
    """Every pool's shares, costs then tax for each pool and currency, and a warning for each
    community a pool gives nothing."""
    shares: list[Share] = []
    warnings: list[str] = []
    for pool in config.shared_pools:
        rows = [a for a in attributed if a.bucket.kind == "shared" and a.bucket.name == pool.id]
        for currency in sorted({a.row.currency for a in rows}):
            in_currency = [a for a in rows if a.row.currency == currency]
            weights = _weights(pool, in_currency, attributed, currency, metrics)
            for part in (COSTS, TAX):
                in_part = [a for a in in_currency if (a.row.charge_type == TAX) == (part == TAX)]
                if in_part:
                    shares += _split(pool, part, currency, sum((a.row.net for a in in_part), ZERO), weights, month)
            if sum(weights.values(), ZERO) > 0:
                why = {"metric": f"has no {pool.metric} in {metrics.path}",
                       "proportional": "has no direct cost in the pool's scope"}.get(pool.split, "has weight 0")
                warnings += [f"{c} gets no share of shared pool {pool.id!r} in {month}: it {why}"
                             for c in pool.communities if weights[c] == 0]
    return tuple(shares), tuple(warnings)


def _split(pool: SharedPool, part: str, currency: str, total: Decimal, weights: Mapping[str, Decimal],
           month: Month) -> list[Share]:
    if sum(weights.values(), ZERO) <= 0:
        if quantize(total, currency) == 0:
            return [Share(pool.id, c, currency, quantize(ZERO, currency), ZERO, total, part) for c in pool.communities]
        raise DataError(
            f"shared pool {pool.id!r} has {quantize(total, currency)} {currency} of "
            f"{'tax' if part == TAX else 'cost'} in {month} but nothing to split it by ({pool.split}: every "
            "community's weight is zero); change its split or its communities")
    amounts = largest_remainder(total, weights, currency)
    return [Share(pool.id, c, currency, amounts[c], weights[c], total, part) for c in pool.communities]
