"""Utility of the released numbers: many independent releases of the examples against
their exact counts, at the installation's default privacy parameters.

    python -m bench.utility --persons 20000,200000,1000000 --releases 300 [--noise both]

For each extract size (synthetic, seed 1, generated once under --root) and each example,
the engine computes the exact counts once; then the privacy layer's own release function
(`antal.privacy.gate.release`, what the gate runs after charging) releases them
`--releases` times with fresh noise. Reported, per example:

- per attrition step: the mean absolute error of the released count and its mean 95%
  half-width ((upper - lower) / 2), over the releases where it is shown;
- per table as asked (level 0; the roll-up levels are sums of it): the same over its cells
  with an exact count of at least 1;
- for a `report by hospital` table: false sites per release (shown at or above the
  threshold whose exact count is below half of it), those of them shown without the
  `near_threshold` mark (antal.privacy.sites), and the Spearman correlation of the
  released ranking of the sites with an exact count of at least 20 with the exact ranking;
- the ε the ask is charged (under `--noise gaussian`, its ρ and the ε at δ of the ask
  alone; the default ρ makes a project's default budget last as many asks as ε does).

No store, no budget: this measures the mechanism, not the accounting. `--noise` chooses
the installation's noise: `laplace` (pure ε-DP), `gaussian` (zCDP) or `both`, each at its
defaults otherwise (docs/privacy.md compares them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

from scipy.stats import spearmanr

from antal.api import usecases as uc
from antal.catalog import Installation
from antal.engine import prepare
from antal.engine.backends import get_backend
from antal.privacy.gate import answer_from_json, query_cost, release
from antal.privacy.noise import describe_noise, epsilon_of_rho
from antal.privacy.params import PrivacyParams
from antal.privacy.sites import site_marks
from bench.run import ensure_data

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _half(c: Any) -> float | None:
    return None if c.value is None else (c.high - c.low) / 2


def measure(text: str, inst: Installation, catalog: Any, backend: Any, releases: int,
            params: PrivacyParams) -> dict[str, Any]:  # fmt: skip
    p = prepare(text, catalog, inst, purpose="forskning")
    prepared = uc.CompiledCohort(p.checked, p.compiled)
    true = uc.true_counts(prepared, inst, catalog, backend)
    tables = true.all_tables()
    dims = tuple(d for t in tables for d in t.dims)
    cost = query_cost(params, bool(dims))
    k = len(true.counts)
    step_err: list[list[float]] = [[] for _ in range(k)]
    step_half: list[list[float]] = [[] for _ in range(k)]
    cell_err: dict[int, list[float]] = {}
    cell_half: dict[int, list[float]] = {}
    false_sites: list[int] = []
    false_unmarked: list[int] = []
    rho: list[float] = []
    for _ in range(releases):
        a = answer_from_json(release(true, dims, cost, params), cost, 0.0, "", "", "", "", False,
                             true.labels)  # fmt: skip
        for j, (c, n) in enumerate(zip(a.steps, true.counts, strict=True)):
            if c.value is not None:
                step_err[j].append(abs(c.value - n))
                step_half[j].append(_half(c) or 0.0)
        for i, (t, rt) in enumerate(zip(tables, a.tables, strict=True)):
            if t.level != 0:
                continue
            for key, c in rt.cells:
                n = t.cells.get(key, 0)
                if n >= 1 and c.value is not None:
                    cell_err.setdefault(i, []).append(abs(c.value - n))
                    cell_half.setdefault(i, []).append(_half(c) or 0.0)
            if t.dims == ("hospital",):
                shown = {key: c.value for key, c in rt.cells if c.value is not None}
                marks = site_marks(rt.cells, params.threshold)
                false_sites.append(sum(1 for key in shown
                                       if t.cells.get(key, 0) < params.threshold / 2))  # fmt: skip
                false_unmarked.append(sum(1 for key in shown
                                          if t.cells.get(key, 0) < params.threshold / 2
                                          and not marks[key][0]))  # fmt: skip
                big = [key for key in t.domain if t.cells.get(key, 0) >= 20]
                if len(big) >= 3:
                    r = spearmanr([t.cells[key] for key in big], [shown.get(key, 0) for key in big])
                    rho.append(float(r.statistic))
    mean = statistics.fmean
    return {
        "labels": list(true.labels),
        "exact": list(true.counts),
        "step_mae": [mean(e) if e else None for e in step_err],
        "step_half": [mean(h) if h else None for h in step_half],
        "tables": {
            ",".join(tables[i].dims): (mean(cell_err[i]), mean(cell_half[i]))
            for i in sorted(cell_err)
        },
        "false_sites": mean(false_sites) if false_sites else None,
        "false_unmarked": mean(false_unmarked) if false_unmarked else None,
        "spearman": mean(rho) if rho else None,
        "loss": cost,
    }


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", default="20000,200000")
    ap.add_argument("--releases", type=int, default=300)
    ap.add_argument("--examples", default="her2_breast_cancer,recruitment_hf_sites")
    ap.add_argument("--root", default="/tmp/antal-utility", help="where extracts are generated")
    ap.add_argument("--noise", choices=["laplace", "gaussian", "both"], default="laplace")
    ap.add_argument("--policy", action="store_true",
                    help="only the stated half-widths of both noises by asks per budget")  # fmt: skip
    ap.add_argument("--contribution", type=int, default=1,
                    help="with --policy: units one person adds (an `index each` cohort's K)")  # fmt: skip
    a = ap.parse_args()
    if a.policy:
        policy_table(contribution=a.contribution)
        return
    noises = ["laplace", "gaussian"] if a.noise == "both" else [a.noise]
    for noise in noises:
        params = PrivacyParams(noise=noise)
        print(f"## {describe_noise(params.as_dict())}\n")
        print(f"privacy parameters: {params.as_dict()}; {a.releases} releases each\n")
        _sizes(a, params)
    sys.stdout.flush()


def policy_table(
    budget: float = 10.0, cells: int = 56, tables: int = 2, contribution: int = 1
) -> None:
    """The stated 95% half-widths (the mechanism's own formulas, no data) of an ask with
    tables when a project's budget (ε `budget`; at δ for the Gaussian) buys N such asks:
    the final count, a step adding up 4 buckets, and a cell of one of `tables` leaf tables
    of `cells` cells (recruitment_hf_sites: 56 hospitals and the months), for a cohort whose
    person adds up to `contribution` units (episodes: recruitment_hf_sites has 3)."""
    from antal.privacy.mechanism import attrition_variances, variance_accuracy

    print(f"up to {contribution} unit(s) a person\n")
    print("| asks per budget | noise | final count ± | a 4-bucket step ± | a leaf cell ± |")
    print("| --- | --- | --- | --- | --- |")
    for asks in (5, 10, 20, 50, 100):
        for noise in ("laplace", "gaussian"):
            p = PrivacyParams(noise=noise, epsilon=budget / asks / 2, default_budget=budget)
            kind, ask = p.kind, 2 * p.release_loss
            s1 = kind.scale_for(p.attrition_share * ask, 1, contribution)
            s2 = kind.scale_for((1 - p.attrition_share) * ask, tables, contribution)
            steps = attrition_variances(4, s1, noise)
            leaf = kind.variance(s2) * (1 - 1 / cells) + steps[-1] / cells**2
            half = [variance_accuracy(v, p.alpha, noise) for v in (steps[-1], steps[0], leaf)]
            print(f"| {asks} | {noise} | " + " | ".join(f"{h:.0f}" for h in half) + " |")


def _cost(params: PrivacyParams, loss: float) -> str:
    if params.noise == "laplace":
        return f"ε {loss:g} per ask"
    return f"ρ {loss:.4g} per ask, alone ε {epsilon_of_rho(loss, params.delta):.2f} at δ {params.delta:g}"


def _sizes(a: argparse.Namespace, params: PrivacyParams) -> None:
    for persons in (int(x) for x in a.persons.split(",")):
        data = Path(a.root) / f"p{persons}-s1"
        ensure_data(data, persons, 1)
        inst = Installation.from_data_dir(data)
        catalog = uc.open_catalog(inst)
        backend = get_backend(None, inst, catalog, threads=2)
        for name in a.examples.split(","):
            text = (EXAMPLES / f"{name}.cohort").read_text(encoding="utf-8")
            m = measure(text, inst, catalog, backend, a.releases, params)
            print(f"### {name}, {persons:,} persons ({_cost(params, m['loss'])})\n")
            print("| step | exact | mean abs. error | mean 95% half-width |")
            print("| --- | --- | --- | --- |")
            for lab, n, e, h in zip(m["labels"], m["exact"], m["step_mae"], m["step_half"],
                                    strict=True):  # fmt: skip
                print(f"| {lab} | {n} | {_f(e)} | {_f(h)} |")
            for dims, (e, h) in m["tables"].items():
                print(f"| cells by {dims} | | {_f(e)} | {_f(h)} |")
            if m["false_sites"] is not None:
                print(f"\nfalse sites per release: {m['false_sites']:.2f}, of them without the "
                      f"`near_threshold` mark: {m['false_unmarked']:.2f}; "
                      f"site ranking Spearman (sites ≥ 20): {_f(m['spearman'])}")  # fmt: skip
            print()
        backend.close()


if __name__ == "__main__":
    main()
