"""Request bodies of the hub's API: a researcher's query, a node's poll and its answer.

A node's answer carries released values only (what its own gate released) and the
mechanism they were released under, which the hub needs for the combined interval."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from antal.engine.limits import (
    HUB_MAX_WAIT_SECONDS,
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


class ReleasedStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(max_length=4 * MAX_STRING_CHARS)
    count: int | None = Field(description="the released count; null when shown as <threshold")
    low: int | None = None
    high: int | None = None


class NodeAnswer(BaseModel):
    """One node's released attrition and how it was released (its gate's parameters)."""

    model_config = ConfigDict(extra="forbid")

    steps: list[ReleasedStep] = Field(min_length=1, max_length=MAX_CRITERIA + 1)
    threshold: int = Field(ge=0)
    rounding: int = Field(ge=1)
    epsilon: float = Field(gt=0, description="the ε of the attrition's release")
    alpha: float = Field(gt=0, lt=1)
    scale: float = Field(ge=0, description="the discrete Laplace scale of each step (k/ε)")
    release: str = Field(max_length=200)
    query_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    answer_key: str = Field(pattern=r"^[0-9a-f]{64}$")
    stored: bool
    epsilon_charged: float = Field(ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> NodeAnswer:
        for s in self.steps:
            if s.count is not None and (s.count < self.threshold or s.count < 0):
                raise ValueError("a shown count is at least the node's threshold")
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
