"""The privacy parameters an installation sets; every answer reports the ones it was released under."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

__all__ = ["PrivacyParams"]


@dataclass(frozen=True)
class PrivacyParams:
    epsilon: float = 0.5  # charged per query (and again for a breakdown table)
    threshold: int = 10  # released counts below this are shown as "<threshold"
    rounding: int = 1  # released counts are rounded to a multiple of this (1: none)
    alpha: float = 0.05  # intervals cover the true count with probability 1 - alpha
    default_budget: float = 10.0  # a new project's total epsilon
    max_cells: int = 10_000  # the largest breakdown table released

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ValueError("epsilon must be positive")
        if self.threshold < 0 or self.rounding < 1:
            raise ValueError("threshold must be >= 0 and rounding >= 1")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be between 0 and 1")

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def fingerprint(self) -> str:
        """What changes an answer: part of the key under which answers are stored."""
        d = {k: v for k, v in asdict(self).items() if k not in ("default_budget", "max_cells")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
