"""Back-test of the recruitment forecast (privacy/forecast.py) on synthetic data.

    python -m bench.forecast                      # 200 000 persons, seed 1, 10 noise replicates

1. Generates the synthetic extracts (`antal.synthetic.generate`, as `antal synth`) into
   `--data` unless they are there.
2. Counts, exactly and with the engine, the persons newly eligible each month of the
   cohort's window (`COHORT`): for each month the cohort is rewritten so that its index
   falls in that month (`month_cohort`) and broken down by län and hospital. As a check,
   the months of each year add up to the original cohort's `report by year`.
3. Releases each month's table the way the privacy layer releases a partition
   (`privacy.mechanism.release_cells`: OpenDP's discrete Laplace at scale 1/ε, the
   threshold, zero cells included), once per sjukvårdsregion table, once per hospital
   table, once for the whole country; `--replicates` independent releases.
4. Runs the forecast's back-test (refit on all but the last 12 months, predict them) on
   each released series and reports the coverage of the 90% and 50% prediction intervals
   over the last 12 months, per sjukvårdsregion and per hospital with enough patients
   (mean exact monthly count at least the threshold over the fitted months), plus how
   far the predicted mean was from the exact count.

The tables are printed as markdown and written between the result markers of
docs/forecast.md for that number of persons (`<!-- results p200000:start -->`). The noise is OpenDP's (not seeded), so the figures move a little from
run to run; the replicates average that out.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shlex
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from antal import engine
from antal.catalog import Installation, load_catalog
from antal.engine import ir
from antal.engine.backends import DuckDBBackend
from antal.privacy import PrivacyParams
from antal.privacy.forecast import BACKTEST_MONTHS, ForecastError, ReleasedMonth, backtest
from antal.privacy.mechanism import release_cells

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "forecast.md"

# A cohort with an event index and a washout, so that "newly eligible" means newly
# diagnosed: adults whose first specialist-care contact (npr) with hypertension, type 2
# diabetes, atrial fibrillation, heart failure, myocardial infarction or ischaemic stroke
# falls in 2016-2025, with none of them in npr before (back to 2006, the extract's start).
# Several diagnoses together, because one alone is too rare per hospital and month in a
# 200 000-person extract (2% of Sweden) to be shown above the threshold.
COHORT = """\
cohort "Newly diagnosed cardiometabolic disease in specialist care, adults, 2016-2025"
codeset cm = I10*, E11*, I48*, I50*, I21*, I63*
index first diagnosis @cm between 2016-01-01 and 2025-12-31
exclude "Diagnosed before": diagnosis @cm before index
include "Adult": age 18..120
"""

# The six sjukvårdsregioner by län (hälso- och sjukvårdsförordningen (2017:80) 2 kap. 1 §;
# the same division as the former förordning (1982:777) om rikets indelning i regioner för
# hälso- och sjukvård). Hallands län is split by kommun (Halmstad, Hylte and Laholm in
# Södra, Kungsbacka, Varberg and Falkenberg in Västra); the extract knows only the län,
# so all of Halland is put in Västra, where most of its residents live.
SJUKVARDSREGIONER: dict[str, tuple[str, ...]] = {
    "Norra": ("22", "23", "24", "25"),
    "Mellansverige (Uppsala-Örebro)": ("03", "04", "17", "18", "19", "20", "21"),
    "Stockholm-Gotland": ("01", "09"),
    "Sydöstra": ("05", "06", "08"),
    "Södra": ("07", "10", "12"),
    "Västra": ("13", "14"),
}
LAN_TO_REGION = {lan: name for name, lans in SJUKVARDSREGIONER.items() for lan in lans}


def months_of(window: ir.Window) -> list[dt.date]:
    assert window.start is not None and window.end is not None, "the index needs a window"
    out, m = [], window.start.replace(day=1)
    while m <= window.end:
        out.append(m)
        m = (m + dt.timedelta(days=32)).replace(day=1)
    return out


def month_cohort(cohort: ir.Cohort, month: dt.date) -> ir.Cohort:
    """The cohort restricted to persons whose index date falls in `month`.

    For `index first EVENT W`, the index is in month M exactly when the person has an
    event in W ∩ M and none in W before M: the index window becomes W ∩ M and a first
    step excludes an event in W before M (for `last`, symmetrically, after M). The index
    date, and so every step relative to it and the hospital of the index, are unchanged."""
    idx = cohort.index
    if not isinstance(idx, ir.IndexEvent):
        raise ValueError("a cohort with a date index has no newly eligible persons per month")
    w = idx.window
    m_end = (month + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    start = max(month, w.start) if w.start else month
    end = min(m_end, w.end) if w.end else m_end
    steps = list(cohort.steps)
    if idx.which == "first" and (w.start is None or w.start < month):
        before = ir.Window(start=w.start, end=month - dt.timedelta(days=1))
        steps.insert(0, ir.Step("exclude", ir.EventCond(idx.event, before), "index event earlier"))
    if idx.which == "last" and (w.end is None or w.end > m_end):
        after = ir.Window(start=m_end + dt.timedelta(days=1), end=w.end)
        steps.insert(0, ir.Step("exclude", ir.EventCond(idx.event, after), "index event later"))
    index = dataclasses.replace(idx, window=ir.Window(start=start, end=end))
    return dataclasses.replace(cohort, index=index, steps=tuple(steps))


def exact_monthly(
    cohort: ir.Cohort, inst: Installation, catalog, backend: DuckDBBackend
) -> tuple[list[dt.date], dict[dt.date, dict[tuple[str | None, str | None], int]]]:
    """Per month, the exact count per (län, hospital) of the persons newly eligible."""
    by = (ir.Dim("region"), ir.Dim("hospital"))
    months = months_of(cohort.index.window)  # type: ignore[union-attr]
    out = {}
    for m in months:
        res = engine.count_exact(
            dataclasses.replace(month_cohort(cohort, m), reports=(ir.Report(by),)),
            inst,
            catalog,
            backend=backend,
        )
        out[m] = {(k[0], k[1]): n for k, n in res.cells}
        assert sum(out[m].values()) == res.count
    # check: the months of each year add up to the whole cohort's `report by year`
    whole = engine.count_exact(
        dataclasses.replace(cohort, reports=(ir.Report((ir.Dim("year"),)),)),
        inst,
        catalog,
        backend=backend,
    )
    per_year: dict[int, int] = defaultdict(int)
    for m, cells in out.items():
        per_year[m.year] += sum(cells.values())
    assert {int(k[0]): n for k, n in whole.cells} == dict(per_year), "months do not add up"
    return months, out


def released_series(
    months: list[dt.date],
    exact: dict[dt.date, dict[str, int]],
    domain: list[str],
    params: PrivacyParams,
) -> dict[str, list[ReleasedMonth]]:
    """Each month's table released as one partition (every cell, zero cells included)."""
    series: dict[str, list[ReleasedMonth]] = {key: [] for key in domain}
    for m in months:
        cells = {(key,): exact[m].get(key, 0) for key in domain}
        released, scale = release_cells(cells, [(key,) for key in domain], params)
        for (key,), r in released:
            series[key].append(ReleasedMonth(m, r.value, scale, params.threshold, params.rounding))
    return series


def grouped(
    exact: dict[dt.date, dict[tuple[str | None, str | None], int]], key
) -> dict[dt.date, dict[str, int]]:
    out: dict[dt.date, dict[str, int]] = {}
    for m, cells in exact.items():
        acc: dict[str, int] = defaultdict(int)
        for cell, n in cells.items():
            k = key(cell)
            if k is not None:
                acc[k] += n
        out[m] = dict(acc)
    return out


@dataclasses.dataclass
class Row:
    name: str
    mean_monthly: float  # exact, over the fitted months
    cov90: list[float] = dataclasses.field(default_factory=list)
    cov50: list[float] = dataclasses.field(default_factory=list)
    compared: list[int] = dataclasses.field(default_factory=list)
    abs_err: list[float] = dataclasses.field(default_factory=list)  # |mean - exact| / exact
    err: list[float] = dataclasses.field(default_factory=list)  # (exact - mean) / mean: bias
    failed: int = 0

    def cells(self) -> list[str]:
        def pct(xs: list[float]) -> str:
            return f"{100 * statistics.fmean(xs):.0f}%" if xs else "-"

        shown = f"{statistics.fmean(self.compared):.1f}" if self.compared else "-"
        bias = f"{100 * statistics.fmean(self.err):+.0f}%" if self.err else "-"
        return [self.name, f"{self.mean_monthly:.1f}", shown, pct(self.cov90), pct(self.cov50),
                bias, pct(self.abs_err)]  # fmt: skip


def run_backtests(
    rows: dict[str, Row],
    months: list[dt.date],
    exact: dict[dt.date, dict[str, int]],
    params: PrivacyParams,
    replicates: int,
) -> None:
    domain = list(rows)
    held = months[-BACKTEST_MONTHS:]
    for _ in range(replicates):
        series = released_series(months, exact, domain, params)
        for key, row in rows.items():
            try:
                bt = backtest(series[key])
            except ForecastError:
                row.failed += 1
                continue
            if bt.compared:
                row.cov90.append(bt.coverage(90) or 0.0)
                row.cov50.append(bt.coverage(50) or 0.0)
            row.compared.append(bt.compared)
            for b, m in zip(bt.months, held, strict=True):
                true = exact[m].get(key, 0)
                if true:
                    row.abs_err.append(abs(b.predicted.mean - true) / true)
                    # as the back-test states it: how far the counts were off the forecast
                    row.err.append((true - b.predicted.mean) / b.predicted.mean)


def table(title: str, rows: list[Row], total: bool = True) -> list[str]:
    head = ["", "mean per month (exact)", "months compared (of 12)", "90% PI coverage",
            "50% PI coverage", "bias (exact vs forecast)",
            "mean abs. error of the point forecast"]  # fmt: skip
    out = [f"**{title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    if total and len(rows) > 1:
        pooled = Row("all of the above", statistics.fmean(r.mean_monthly for r in rows))
        for r in rows:
            pooled.cov90 += r.cov90
            pooled.cov50 += r.cov50
            pooled.compared += r.compared
            pooled.abs_err += r.abs_err
            pooled.err += r.err
        out.append("| " + " | ".join(f"**{c}**" for c in pooled.cells()) + " |")
    return [*out, ""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--persons", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--replicates", type=int, default=10, help="independent noisy releases")
    ap.add_argument("--epsilon", type=float, default=PrivacyParams().epsilon)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = ap.parse_args(argv)
    data = args.data or Path(f"/tmp/antal_forecast_p{args.persons}_s{args.seed}")
    if not (data / "population.parquet").exists():
        from antal.synthetic import generate

        generate(args.persons, args.seed, data)
    params = PrivacyParams(epsilon=args.epsilon)
    inst = Installation.from_data_dir(data)
    catalog = load_catalog()
    backend = DuckDBBackend(inst, catalog)
    cohort = engine.check(engine.parse(COHORT), catalog)
    t0 = time.perf_counter()
    months, exact = exact_monthly(cohort, inst, catalog, backend)
    t_exact = time.perf_counter() - t0
    fitted = months[:-BACKTEST_MONTHS]

    def mean_of(series: dict[dt.date, dict[str, int]], key: str) -> float:
        return statistics.fmean(series[m].get(key, 0) for m in fitted)

    t0 = time.perf_counter()
    national = grouped(exact, lambda c: "Sweden")
    by_region = grouped(exact, lambda c: LAN_TO_REGION.get(c[0]) if c[0] else None)
    by_hospital = grouped(exact, lambda c: c[1])
    sites = {s.code: s.name for s in catalog.sites}
    nat_rows = {"Sweden": Row("Sweden", mean_of(national, "Sweden"))}
    reg_rows = {k: Row(k, mean_of(by_region, k)) for k in SJUKVARDSREGIONER}
    hospitals = sorted({h for cells in by_hospital.values() for h in cells})
    enough = [h for h in hospitals if mean_of(by_hospital, h) >= params.threshold]
    hosp_rows = {h: Row(f"{h} {sites.get(h, '')}".strip(), mean_of(by_hospital, h)) for h in enough}
    run_backtests(nat_rows, months, national, params, args.replicates)
    run_backtests(reg_rows, months, by_region, params, args.replicates)
    # the hospital table is released over every hospital (its public domain), back-tested
    # on those with enough patients
    all_hosp = {h: Row(h, 0.0) for h in hospitals}
    all_hosp.update(hosp_rows)
    run_backtests(all_hosp, months, by_hospital, params, args.replicates)
    t_bt = time.perf_counter() - t0

    cmd = "python -m bench.forecast" + (" " + shlex.join(argv or sys.argv[1:]) if (argv or sys.argv[1:]) else "")  # fmt: skip
    lines = [
        f"Command: `{cmd}` ({args.persons:_} synthetic persons, seed {args.seed}; ε {params.epsilon:g} "
        f"per monthly table, so noise scale {1 / params.epsilon:g}; threshold {params.threshold}; "
        f"{args.replicates} independent releases of every series; history "
        f"{months[0]:%Y-%m} to {months[-1]:%Y-%m}, the last {BACKTEST_MONTHS} months held out). "
        f"Exact monthly counts {t_exact:.0f} s, back-tests {t_bt:.0f} s.".replace("_", " "),
        "",
        *table("Whole country", list(nat_rows.values()), total=False),
        *table("Per sjukvårdsregion", list(reg_rows.values())),
        *table(
            f"Per hospital with at least {params.threshold} newly eligible a month on average "
            f"({len(enough)} of the {len(hospitals)} hospitals)",
            sorted(hosp_rows.values(), key=lambda r: -r.mean_monthly),
        ),
    ]
    text = "\n".join(lines)
    print(text)
    # each size has its own place in the page
    start, end = f"<!-- results p{args.persons}:start -->", f"<!-- results p{args.persons}:end -->"
    doc = DOC.read_text() if DOC.exists() else ""
    if not args.no_write and start in doc and end in doc:
        a, b = doc.index(start) + len(start), doc.index(end)
        DOC.write_text(doc[:a] + "\n" + text + "\n" + doc[b:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
