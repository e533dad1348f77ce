"""The two noises an installation can release counts under, defined once (`PrivacyParams.noise`).

- **laplace**: OpenDP's discrete Laplace mechanism under pure ε-differential privacy. A
  vector in which one person moves at most `s` units in L1 norm costs ε = s / scale; asks
  compose by adding their ε.
- **gaussian**: OpenDP's discrete Gaussian mechanism under zero-concentrated differential
  privacy (zCDP, Bun & Steinke 2016). A vector in which one person moves at most `s` units in
  L2 norm costs ρ = s² / (2·scale²); asks compose by adding their ρ, and a total ρ implies
  (ε, δ)-differential privacy for every δ > 0 (OpenDP's conversion, `epsilon_of_rho`). K
  tables in which a person is in one cell each move by √K in L2 (K in L1), so tables cost
  less, and many asks compose more tightly (ε grows like √(asks), not like asks).

Each kind gives what the release and the hub need: the measurement (OpenDP's, whose privacy
map is the charge), its draws, the variance and the 1 − α half-width of one draw, and the
mean of its positive part (the bias of a count clipped at 0). The moments are computed here
without OpenDP (the hub imports this module and needs no OpenDP); OpenDP is imported only to
draw noise and to convert ρ to (ε, δ).
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # numpy is imported where it is used: `antal check` starts without it
    import numpy as np

if TYPE_CHECKING:
    import opendp.prelude as dp

__all__ = [
    "NOISES",
    "Gaussian",
    "Laplace",
    "NoiseKind",
    "NoiseName",
    "describe_noise",
    "epsilon_of_rho",
    "noise_kind",
    "rho_of_epsilon",
]

NoiseName = Literal["laplace", "gaussian"]
NOISES: tuple[NoiseName, ...] = ("laplace", "gaussian")


def _opendp() -> object:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


class NoiseKind(ABC):
    """One noise: its OpenDP measurement and the moments of its draws at a scale."""

    name: NoiseName
    unit: str  # what a release's privacy loss is counted in: "ε" or "ρ"

    @abstractmethod
    def measurement(self, scale: float) -> dp.Measurement:
        """OpenDP's mechanism on a vector of integer counts at `scale`."""

    def sample(self, values: list[int], scale: float) -> list[int]:
        """The counts with this noise added (OpenDP draws it)."""
        return list(self.measurement(scale)(list(values)))

    @abstractmethod
    def scale_for(self, loss: float, tables: int = 1, contribution: int = 1) -> float:
        """The scale at which `tables` vectors, a person in one cell of each, cost `loss`;
        with `contribution` K, a person is up to K units of each vector (K episodes of an
        `index each` cohort), worst case all in one cell: sensitivity K per vector."""

    @abstractmethod
    def variance(self, scale: float) -> float:
        """The variance of one draw."""

    @abstractmethod
    def accuracy_of_variance(self, variance: float, alpha: float) -> float:
        """The 1 − α half-width of an error of this variance made of this noise (a sum of
        draws, or a mean: a projected cell)."""

    @abstractmethod
    def accuracy(self, scale: float, alpha: float) -> float:
        """The 1 − α half-width of one draw at `scale`."""

    @abstractmethod
    def positive_part_mean(self, scale: float) -> float:
        """E[max(e, 0)] of one draw e: the bias of a count of 0 released as max(0, 0 + e)."""

    @abstractmethod
    def pmf(self, k: np.ndarray, scale: float) -> np.ndarray:
        """P(e = k) for integers k (numpy; what a model of released values needs)."""

    @abstractmethod
    def at_most(self, k: np.ndarray, scale: float) -> np.ndarray:
        """P(e <= k) for integers k."""

    @abstractmethod
    def draws(self, rng: np.random.Generator, scale: float, n: int) -> np.ndarray:
        """n draws from a seeded numpy generator: the distribution OpenDP samples exactly,
        for a simulation that must give the same numbers each time (never a release)."""


class Laplace(NoiseKind):
    name: NoiseName = "laplace"
    unit = "ε"

    def measurement(self, scale: float) -> dp.Measurement:
        dp = _opendp()
        return dp.m.make_laplace(  # type: ignore[attr-defined]
            dp.vector_domain(dp.atom_domain(T=int)),
            dp.l1_distance(T=int),
            scale=scale,  # type: ignore[attr-defined]
        )

    def scale_for(self, loss: float, tables: int = 1, contribution: int = 1) -> float:
        return tables * contribution / loss  # L1: a person moves K units in each table

    def variance(self, scale: float) -> float:
        if scale <= 0:
            return 0.0
        q = math.exp(-1 / scale)
        return 2 * q / (1 - q) ** 2

    def accuracy_of_variance(self, variance: float, alpha: float) -> float:
        # that of the discrete Laplace of the same variance: the heaviest tails of the errors
        # here (a projected cell's error is a mean of independent Laplace draws)
        if variance <= 0:
            return 0.0
        return self.accuracy(math.sqrt(variance / 2), alpha)

    def accuracy(self, scale: float, alpha: float) -> float:
        # OpenDP's formula; 0 where P(|e| >= 1) is already below alpha (at such small scales
        # OpenDP's function overflows to infinity)
        q = math.exp(-1 / scale) if scale > 0 else 0.0
        if 2 * q / (1 + q) <= alpha:
            return 0.0
        from opendp.accuracy import discrete_laplacian_scale_to_accuracy

        return float(discrete_laplacian_scale_to_accuracy(float(scale), float(alpha)))

    def positive_part_mean(self, scale: float) -> float:
        if scale <= 0:
            return 0.0
        q = math.exp(-1 / scale)
        return q / ((1 + q) * (1 - q))

    def pmf(self, k: np.ndarray, scale: float) -> np.ndarray:
        import numpy as np

        if scale <= 0:
            return (k == 0).astype(float)
        q = math.exp(-1.0 / scale)
        return (1 - q) / (1 + q) * np.power(q, np.abs(k))

    def at_most(self, k: np.ndarray, scale: float) -> np.ndarray:
        import numpy as np

        if scale <= 0:
            return (k >= 0).astype(float)
        q = math.exp(-1.0 / scale)
        # P(e <= k) = 1 - q^(k+1) / (1 + q) for k >= 0, q^(-k) / (1 + q) below
        k = np.asarray(k)
        return np.where(k >= 0, 1 - np.power(q, k + 1) / (1 + q), np.power(q, -k) / (1 + q))

    def draws(self, rng: np.random.Generator, scale: float, n: int) -> np.ndarray:
        import numpy as np

        # the difference of two geometric counts (p = 1 - q) is discrete Laplace
        if scale <= 0:
            return np.zeros(n, dtype=np.int64)
        p = -math.expm1(-1.0 / scale)
        return rng.geometric(p, n) - rng.geometric(p, n)


class Gaussian(NoiseKind):
    name: NoiseName = "gaussian"
    unit = "ρ"

    def measurement(self, scale: float) -> dp.Measurement:
        dp = _opendp()
        return dp.m.make_gaussian(  # type: ignore[attr-defined]
            dp.vector_domain(dp.atom_domain(T=int)),
            dp.l2_distance(T=int),
            scale=scale,  # type: ignore[attr-defined]
        )

    def scale_for(self, loss: float, tables: int = 1, contribution: int = 1) -> float:
        # L2: K in one cell of each table, √tables·K in all; ρ = tables·K² / (2σ²)
        return math.sqrt(tables / (2 * loss)) * contribution

    def variance(self, scale: float) -> float:
        return _dg_moments(scale)[0]

    def accuracy_of_variance(self, variance: float, alpha: float) -> float:
        # a sum or mean of independent Gaussian draws is Gaussian: the discrete Gaussian's
        # half-width at that standard deviation
        if variance <= 0:
            return 0.0
        return self.accuracy(math.sqrt(variance), alpha)

    def accuracy(self, scale: float, alpha: float) -> float:
        # OpenDP's formula (as the Laplace's: the same convention for both), 0 where
        # P(|e| >= 1) is already below alpha
        if scale <= 0 or 1 - _dg_pmf(scale)[0] <= alpha:
            return 0.0
        from opendp.accuracy import discrete_gaussian_scale_to_accuracy

        return float(discrete_gaussian_scale_to_accuracy(float(scale), float(alpha)))

    def positive_part_mean(self, scale: float) -> float:
        return _dg_moments(scale)[1]

    def pmf(self, k: np.ndarray, scale: float) -> np.ndarray:
        import numpy as np

        if scale <= 0:
            return (np.asarray(k) == 0).astype(float)
        p = np.array(_dg_pmf(scale))
        a = np.abs(np.asarray(k))
        return np.where(a < p.size, p[np.minimum(a, p.size - 1)], 0.0)

    def at_most(self, k: np.ndarray, scale: float) -> np.ndarray:
        import numpy as np

        if scale <= 0:
            return (np.asarray(k) >= 0).astype(float)
        p = np.array(_dg_pmf(scale))
        top = p.size - 1
        full = np.concatenate([p[:0:-1], p])  # P(e = -top .. top)
        cdf = np.cumsum(full)
        idx = np.clip(np.asarray(k) + top, -1, 2 * top)
        return np.where(idx < 0, 0.0, cdf[np.maximum(idx, 0)])

    def draws(self, rng: np.random.Generator, scale: float, n: int) -> np.ndarray:
        import numpy as np

        if scale <= 0:
            return np.zeros(n, dtype=np.int64)
        p = np.array(_dg_pmf(scale))
        top = p.size - 1
        full = np.concatenate([p[:0:-1], p])
        return rng.choice(np.arange(-top, top + 1), size=n, p=full / full.sum())


@functools.lru_cache(maxsize=256)
def _dg_pmf(scale: float) -> tuple[float, ...]:
    """P(e = x) for x = 0, 1, 2, ... of the discrete Gaussian ∝ exp(-x² / 2σ²), to 14 σ."""
    top = int(14 * scale) + 2
    w = [math.exp(-(x * x) / (2 * scale * scale)) for x in range(top)]
    z = w[0] + 2 * sum(w[1:])
    return tuple(x / z for x in w)


@functools.lru_cache(maxsize=256)
def _dg_moments(scale: float) -> tuple[float, float]:
    """(variance, E[max(e, 0)]) of the discrete Gaussian at `scale`."""
    if scale <= 0:
        return 0.0, 0.0
    p = _dg_pmf(scale)
    var = 2 * sum(x * x * px for x, px in enumerate(p))
    return var, sum(x * px for x, px in enumerate(p))


_KINDS: dict[str, NoiseKind] = {"laplace": Laplace(), "gaussian": Gaussian()}


def noise_kind(name: str) -> NoiseKind:
    """The noise named `name`; an unknown name is a programming error, never a default."""
    try:
        return _KINDS[name]
    except KeyError:
        # imported here: this module imports nothing of antal's (the catalog's installation
        # file types its `privacy:` section with privacy.params, which imports this)
        from antal.catalog.errors import InternalError

        raise InternalError(f"no noise {name!r} (known: {', '.join(NOISES)})") from None


@functools.lru_cache(maxsize=4096)
def epsilon_of_rho(rho: float, delta: float) -> float:
    """The ε of (ε, δ)-differential privacy that ρ-zCDP implies at `delta`: OpenDP's
    conversion (the bound of Canonne, Kamath & Steinke 2020, tighter than ρ + 2√(ρ ln 1/δ))."""
    if rho <= 0:
        return 0.0
    dp = _opendp()
    m = Gaussian().measurement(1 / math.sqrt(2 * rho))  # exactly ρ for a person moving one unit
    profile = dp.c.make_zCDP_to_approxDP(m).map(1)  # type: ignore[attr-defined]
    return float(profile.epsilon(delta))


@functools.lru_cache(maxsize=256)
def rho_of_epsilon(epsilon: float, delta: float) -> float:
    """The largest ρ whose (ε, δ) at `delta` is at most `epsilon` (the inverse of
    `epsilon_of_rho`, to a relative 1e-9)."""
    if epsilon <= 0:
        return 0.0
    lo, hi = 0.0, max(epsilon, 1.0)
    while epsilon_of_rho(hi, delta) < epsilon:
        hi *= 2
    while hi - lo > 1e-9 * hi:
        mid = (lo + hi) / 2
        if epsilon_of_rho(mid, delta) <= epsilon:
            lo = mid
        else:
            hi = mid
    return lo


def describe_noise(params: Mapping[str, Any]) -> str:
    """The noise of an answer in words, from the parameters it states (the one place these
    words come from: the command line, the report and the hub say them alike)."""
    if params.get("noise", "laplace") == "laplace":
        return f"discrete Laplace (pure ε-DP), ε {float(params['epsilon']):g} per release"
    return (
        f"discrete Gaussian (zCDP), ρ {float(params['rho']):.3g} per release, "
        f"stated as ε at δ {float(params['delta']):g}"
    )
