"""The privacy parameters an installation sets; every answer reports the ones it was released under.

A typed model: the installation file's `privacy:` section is validated by it (an unknown
key, a wrong type or a value out of range is an error that names the field)."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MECHANISM", "PrivacyParams"]

# how the attrition is released (privacy/mechanism.py): the buckets of a partition. Answers
# stored before issue 23 were `cumulative` (the steps at scale k/ε) and say so.
MECHANISM = "partition"


class PrivacyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: float = Field(0.5, gt=0, description="charged per query (and again for a breakdown)")
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

    def as_dict(self) -> dict[str, float | int]:
        # the availability's ε is stated as the `epsilon` of its own answers, not in others
        return self.model_dump(exclude={"availability_epsilon"})

    def fingerprint(self) -> str:
        """What changes an answer: part of the key under which answers are stored."""
        d = self.model_dump(exclude={"default_budget", "max_cells", "availability_epsilon"})
        d["mechanism"] = MECHANISM  # answers of another mechanism are never served for this one
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
