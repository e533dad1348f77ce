"""Request bodies of the hub's API: a researcher's query, a node's poll and its answer.

A node's answer carries released values only (what its own gate released) and the
mechanism they were released under, which the hub needs for the combined interval."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from antal.engine.limits import (
    HUB_MAX_WAIT_SECONDS,
    HUB_NODE_MAX_ROUNDING,
    HUB_NODE_MAX_THRESHOLD,
    MAX_CRITERIA,
    MAX_STRING_CHARS,
    MAX_TEXT_BYTES,
)

__all__ = ["HubQueryIn", "NodeAnswer", "NodeError", "NodeResult", "ReleasedStep", "WorkIn"]

_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class HubQueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: str = Field(
        pattern=_NAME, description="the hub project (each node maps it to its own)"
    )
    cohort: str = Field(max_length=MAX_TEXT_BYTES, description="cohort-language text")
    nodes: list[str] | None = Field(
        None, max_length=1000, description="the nodes to ask (default: every node of the hub)"
    )
    deadline_seconds: float | None = Field(
        None, gt=0, le=7 * 86400, description="how long the query waits for its nodes"
    )
    wait: float = Field(
        0, ge=0, le=600, description="seconds this request waits for the answers (long-poll)"
    )


class WorkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holds: list[str] = Field(
        default_factory=list, max_length=1000,
        description="the registers this node holds data for (for the hub's linkage check)",
    )  # fmt: skip
    wait: float = Field(HUB_MAX_WAIT_SECONDS / 2, ge=0, le=600)


# no count of persons reaches this (the hub checks each answer against the node's
# population too: api/federation/hub.py); a bound here keeps huge integers out of the store
_MAX_COUNT = 2**31 - 1


class ReleasedStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # the hub shows its own labels of the cohort's steps, never a node's
    label: str = Field(max_length=4 * MAX_STRING_CHARS)
    count: int | None = Field(
        None, ge=0, le=_MAX_COUNT, description="the released count; null when shown as <threshold"
    )
    low: int | None = Field(None, ge=0, le=_MAX_COUNT)
    high: int | None = Field(None, ge=0, le=_MAX_COUNT)


class NodeAnswer(BaseModel):
    """One node's released attrition and how it was released (its gate's parameters)."""

    model_config = ConfigDict(extra="forbid")

    steps: list[ReleasedStep] = Field(min_length=1, max_length=MAX_CRITERIA + 1)
    mechanism: Literal["partition", "cumulative"] = Field(
        "cumulative",
        description="how the attrition was released: `partition` (its buckets at `scale`, "
        "docs/privacy.md), or `cumulative` (a node before it: the steps at `scale`)",
    )
    noise: Literal["laplace", "gaussian"] = Field(
        "laplace",
        description="the noise of the release: discrete `laplace` (ε), or discrete `gaussian` "
        "(ρ, zCDP; a partition only)",
    )
    threshold: int = Field(ge=0, le=HUB_NODE_MAX_THRESHOLD)
    rounding: int = Field(ge=1, le=HUB_NODE_MAX_ROUNDING)
    epsilon: float = Field(
        gt=0, le=1e6,
        description="the ε of the attrition's release (gaussian: alone, at the node's δ)",
    )  # fmt: skip
    rho: float | None = Field(
        None, gt=0, le=1e6, description="gaussian: the ρ of the attrition's release"
    )
    alpha: float = Field(ge=1e-6, le=0.5)
    scale: float = Field(
        ge=0, le=1e6,
        description="the discrete Laplace scale of each bucket (1/ε) or, cumulative, step "
        "(k/ε); the discrete Gaussian's σ of each bucket (1/√(2ρ))",
    )  # fmt: skip
    release: str = Field(max_length=200)
    query_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    answer_key: str = Field(pattern=r"^[0-9a-f]{64}$")
    # whether the node's local project had asked before: a fact of that local project, which
    # several hub projects may share, so the hub keeps and shows none of it
    stored: bool = False
    epsilon_charged: float = Field(0.0, ge=0, le=1e6)

    @model_validator(mode="after")
    def _consistent(self) -> NodeAnswer:
        """What any released attrition is, whatever the query (the hub checks the rest
        against the query and the node: api/federation/hub.py `answer_problem`)."""
        last: int | None = None
        hidden = False
        for i, s in enumerate(self.steps):
            if s.count is None:
                if s.low is not None or s.high is not None:
                    raise ValueError(f"step {i}: a count shown as <threshold has no interval")
                hidden = True
                continue
            if s.count < self.threshold:
                raise ValueError(f"step {i}: a shown count is at least the node's threshold")
            if hidden:
                raise ValueError(f"step {i}: a count shown after a step below the threshold")
            if s.low is None or s.high is None or not s.low <= s.count <= s.high:
                raise ValueError(f"step {i}: the interval does not contain the count")
            if last is not None and s.count > last:
                raise ValueError(f"step {i}: more persons than the step before")
            last = s.count
        return self


class NodeError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    message: str = Field(max_length=2000)


class NodeResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["succeeded", "refused", "failed"]
    answer: NodeAnswer | None = None
    error: NodeError | None = None

    @model_validator(mode="after")
    def _shape(self) -> NodeResult:
        if (self.state == "succeeded") != (self.answer is not None):
            raise ValueError("an answer comes with `succeeded`, and only with it")
        if self.state != "succeeded" and self.error is None:
            raise ValueError("a refusal or failure carries the node's error code and message")
        return self
