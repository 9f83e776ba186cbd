"""Attribution rules and shared pools: which costs go where."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .fields import Id, Percent, Values, _Model


class Match(_Model):
    """Conditions on a cost row; all given conditions must hold.

    ``gcp_label`` and ``aws_tag`` map a key to one value or a list of values; ``null`` among them
    matches a row that does not carry the key (unlabelled, untagged). ``gcp_project: null`` (or
    ``null`` in its list) matches rows without a project: GCP's rounding-error rows.
    """

    gcp_project: Values | None = None
    gcp_label: dict[str, Values] | None = None
    aws_account: Values | None = None
    aws_tag: dict[str, Values] | None = None

    @field_validator("gcp_project", mode="before")
    @classmethod
    def _null_is_no_project(cls, value: Any) -> Any:
        """Runs only when the key is written, so an explicit ``null`` is a condition (no project),
        unlike a key left out (any project)."""
        return [None] if value is None else value

    @field_validator("aws_account", mode="before")
    @classmethod
    def _every_aws_row_has_an_account(cls, value: Any) -> Any:
        if value is None or (isinstance(value, list) and None in value):
            raise ValueError("null matches nothing: every AWS cost row has an account (the payer's when "
                             "Cost Explorer names no linked account); give the account id")
        return value

    @property
    def provider(self) -> str:
        return "gcp" if self.gcp_project or self.gcp_label else "aws"

    @model_validator(mode="after")
    def _one_provider(self) -> Match:
        gcp = self.gcp_project is not None or self.gcp_label is not None
        aws = self.aws_account is not None or self.aws_tag is not None
        if not gcp and not aws:
            raise ValueError("needs at least one of gcp_project, gcp_label, aws_account, aws_tag")
        if gcp and aws:
            raise ValueError("mixes GCP and AWS conditions; a cost row comes from one provider")
        if self.gcp_label == {} or self.aws_tag == {}:
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


