"""Attribution rules and shared pools: which costs go where."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..records import provider_slug
from .fields import Id, Percent, Values, _Model


PROVIDER = r"[a-z0-9][a-z0-9-]*"


class Match(_Model):
    """Conditions on a cost row; all given conditions must hold.

    Provider-specific conditions name the provider they apply to: ``gcp_project`` and
    ``gcp_label`` (Google Cloud), ``aws_account`` and ``aws_tag`` (AWS). The general ones work for
    any provider and any source, FOCUS files included: ``provider`` (``gcp``, ``aws``, ``azure``,
    ``oci``, or another provider's name as a FOCUS file writes it, lower case with hyphens),
    ``sub_account`` (a GCP project, an AWS linked account, an Azure subscription: FOCUS's
    SubAccountId) and ``tag`` (a label or tag, FOCUS's Tags). ``gcp_project: [p]`` is
    ``provider: gcp`` with ``sub_account: [p]``.

    Label and tag conditions map a key to one value or a list of values; ``null`` among them
    matches a row that does not carry the key (unlabelled, untagged). ``gcp_project: null`` and
    ``sub_account: null`` (or ``null`` in the list) match rows without a project or sub account:
    GCP's rounding-error rows, a FOCUS row with an empty SubAccountId.
    """

    gcp_project: Values | None = None
    gcp_label: dict[str, Values] | None = None
    aws_account: Values | None = None
    aws_tag: dict[str, Values] | None = None
    provider: Values | None = None
    sub_account: Values | None = None
    tag: dict[str, Values] | None = None

    @field_validator("gcp_project", "sub_account", mode="before")
    @classmethod
    def _null_is_none_given(cls, value: Any) -> Any:
        """Runs only when the key is written, so an explicit ``null`` is a condition (no project or
        sub account), unlike a key left out (any)."""
        return [None] if value is None else value

    @field_validator("aws_account", mode="before")
    @classmethod
    def _every_aws_row_has_an_account(cls, value: Any) -> Any:
        if value is None or (isinstance(value, list) and None in value):
            raise ValueError("null matches nothing: every AWS cost row has an account (the payer's when "
                             "Cost Explorer names no linked account); give the account id")
        return value

    @field_validator("provider")
    @classmethod
    def _provider_names(cls, value: list[str | None]) -> list[str | None]:
        """A provider's own name in lower case (``microsoft``, ``amazon-web-services``) is the short
        name cost rows carry (``azure``, ``aws``): ``records.provider_slug``."""
        for name in value:
            if name is None or not re.fullmatch(PROVIDER, name):
                raise ValueError(f"{name!r} is not a provider name: gcp, aws, azure, oci, or another provider's "
                                 "name in lower case with hyphens (as FOCUS's ProviderName, e.g. 'Oracle' -> oci)")
        return [provider_slug(name) for name in value]

    @property
    def providers(self) -> frozenset[str] | None:
        """The providers whose rows can match; ``None``: any provider."""
        if self.gcp_project is not None or self.gcp_label is not None:
            return frozenset({"gcp"})
        if self.aws_account is not None or self.aws_tag is not None:
            return frozenset({"aws"})
        return frozenset(self.provider) if self.provider is not None else None

    @property
    def accounts(self) -> list[str | None] | None:
        """The projects, accounts or sub accounts a matching row is in (``None`` for a row with
        none); ``None``: any."""
        for given in (self.gcp_project, self.aws_account, self.sub_account):
            if given is not None:
                return given
        return None

    @property
    def labels(self) -> dict[str, list[str | None]]:
        """The label or tag conditions, by key."""
        return self.gcp_label or self.aws_tag or self.tag or {}

    @model_validator(mode="after")
    def _one_provider(self) -> Match:
        gcp = self.gcp_project is not None or self.gcp_label is not None
        aws = self.aws_account is not None or self.aws_tag is not None
        general = self.provider is not None or self.sub_account is not None or self.tag is not None
        if not gcp and not aws and not general:
            raise ValueError("needs at least one of provider, sub_account, tag, gcp_project, gcp_label, aws_account, "
                             "aws_tag")
        if gcp and aws:
            raise ValueError("mixes GCP and AWS conditions; a cost row comes from one provider")
        if (gcp or aws) and self.provider is not None and set(self.provider) != {"gcp" if gcp else "aws"}:
            raise ValueError(f"provider {', '.join(map(str, self.provider))} contradicts the "
                             f"{'gcp_' if gcp else 'aws_'} conditions, which match {'gcp' if gcp else 'aws'} costs only")
        if self.sub_account is not None and (self.gcp_project is not None or self.aws_account is not None):
            raise ValueError("give the project or account once: sub_account, or gcp_project / aws_account")
        if self.tag is not None and (self.gcp_label is not None or self.aws_tag is not None):
            raise ValueError("give the labels or tags once: tag, or gcp_label / aws_tag")
        if {} in (self.gcp_label, self.aws_tag, self.tag):
            raise ValueError("an empty label or tag condition matches nothing; give key: value")
        return self


class Rule(_Model):
    """Rows that match go to a ``community``, a ``shared_pool``, or are ``absorbed`` (the
    organisation's own cost; the value says why). Rules are tried in order; the first match wins."""

    community: Id | None = None
    shared_pool: Id | None = None
    absorbed: str | None = None
    match: Match

    @model_validator(mode="after")
    def _one_target(self) -> Rule:
        if sum(t is not None for t in (self.community, self.shared_pool, self.absorbed)) != 1:
            raise ValueError("give exactly one of community, shared_pool or absorbed")
        return self


class SharedPool(_Model):
    """Costs that rules send to this pool are split among ``communities``:

    - ``proportional``: to each community's direct cost in the pool's scope (by default, the
      projects and accounts the pool's own costs come from; or the rows ``scope`` matches);
    - ``even``: equal parts;
    - ``fixed``: ``percentages`` per community, adding up to 100;
    - ``metric``: to each community's value of ``metric`` in the month's metrics file.
    """

    id: Id
    description: str
    split: Literal["proportional", "even", "fixed", "metric"]
    communities: list[Id] = Field(min_length=1)
    percentages: dict[str, Percent] | None = None
    metric: str | None = None
    scope: Match | None = None

    @model_validator(mode="after")
    def _split_needs(self) -> SharedPool:
        if (self.split == "fixed") != (self.percentages is not None):
            raise ValueError("percentages go with split: fixed, and split: fixed needs them")
        if (self.split == "metric") != (self.metric is not None):
            raise ValueError("metric goes with split: metric, and split: metric needs it")
        if self.scope is not None and self.split != "proportional":
            raise ValueError("scope goes with split: proportional")
        if len(set(self.communities)) != len(self.communities):
            raise ValueError("a community is listed twice")
        return self


