"""The privacy parameters an installation sets; every answer reports the ones it was released under.

A typed model: the installation file's `privacy:` section is validated by it (an unknown
key, a wrong type or a value out of range is an error that names the field)."""

from __future__ import annotations

import hashlib
import json
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field

from antal.privacy.noise import NoiseKind, NoiseName, noise_kind, rho_of_epsilon

__all__ = ["MECHANISM", "PrivacyParams"]

# how the attrition is released (privacy/mechanism.py): the buckets of a partition. Answers
# stored before issue 23 were `cumulative` (the steps at scale k/ε) and say so.
MECHANISM = "partition"
# what does not change a released answer, or is added below only when it does (the noise:
# the keys of laplace answers are those they had before there was a choice)
_NOT_IN_FINGERPRINT = {
    "default_budget",
    "max_cells",
    "availability_epsilon",
    "noise",
    "delta",
    "rho",
}


class PrivacyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    noise: NoiseName = Field(
        "laplace",
        description="discrete `laplace` noise under pure ε-DP, or discrete `gaussian` noise "
        "under zCDP (the ledger adds ρ; budgets and charges are stated in ε at `delta`): "
        "docs/privacy.md compares them",
    )
    epsilon: float = Field(0.5, gt=0, description="charged per query (and again for a breakdown)")
    delta: float = Field(
        1e-10, gt=0, le=1e-6,
        description="gaussian noise: the δ at which a total ρ is stated as (ε, δ)",
    )  # fmt: skip
    rho: float | None = Field(
        None, gt=0,
        description="gaussian noise: ρ of one release (default: the budget's ρ at `delta` "
        "times epsilon / default_budget, so a budget buys as many asks as under laplace)",
    )  # fmt: skip
    threshold: int = Field(10, ge=0, description='released counts below this are shown as "<T"')
    rounding: int = Field(1, ge=1, description="released counts are rounded to a multiple of this")
    alpha: float = Field(
        0.05, gt=0, lt=1, description="intervals cover the true count with probability 1 - alpha"
    )
    attrition_share: float = Field(
        0.55, gt=0, lt=1,
        description="of an ask with tables (2 epsilon), the share spent on the attrition; "
        "the rest measures the tables' leaves (docs/privacy.md: chosen so that the final "
        "count and the hospital cells are both within their targets)",
    )  # fmt: skip
    default_budget: float = Field(10.0, ge=0, description="a new project's total epsilon")
    max_cells: int = Field(10_000, ge=1, description="the largest breakdown table released")
    availability_epsilon: float | None = Field(
        None,
        gt=0,
        description="ε of one release of a register's availability counts, charged "
        "to its holder's catalog budget (default: epsilon)",
    )

    @property
    def kind(self) -> NoiseKind:
        return noise_kind(self.noise)

    @cached_property
    def release_rho(self) -> float:
        """ρ of one release under gaussian noise (see the field `rho`)."""
        if self.rho is not None:
            return self.rho
        return rho_of_epsilon(self.default_budget, self.delta) * self.epsilon / self.default_budget

    @property
    def release_loss(self) -> float:
        """The privacy loss of one release in the noise's own unit: ε, or ρ."""
        return self.epsilon if self.noise == "laplace" else self.release_rho

    def as_dict(self) -> dict[str, float | int | str]:
        """The parameters an answer states (the availability's ε is stated as the
        `epsilon` of its own answers, not in others); under gaussian noise its ρ and δ."""
        d = self.model_dump(exclude={"availability_epsilon", "delta", "rho"})
        if self.noise == "gaussian":
            d.update(delta=self.delta, rho=self.release_rho)
        return d

    def fingerprint(self) -> str:
        """What changes an answer: part of the key under which answers are stored (the
        keys of laplace answers are those they had before there was a choice of noise)."""
        d = self.model_dump(exclude=_NOT_IN_FINGERPRINT)
        d["mechanism"] = MECHANISM  # answers of another mechanism are never served for this one
        if self.noise == "gaussian":
            d.update(noise=self.noise, delta=self.delta, rho=self.release_rho)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
