"""Privacy: every test here fails if privacy breaks (docs/privacy.md)."""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import write_extracts

from antal import engine
from antal.api.usecases import count_released
from antal.catalog import Installation, load_catalog
from antal.privacy import BudgetExceeded, Gate, PrivacyParams, SQLiteStore, TrueCounts, open_store
from antal.privacy.gate import answer_from_json
from antal.privacy.mechanism import (
    measurement,
    noisy_vector,
    release_attrition,
    release_cells,
)

CAT = load_catalog()
ROOT = Path(__file__).parent.parent


def dlap_variance(scale: float) -> float:
    """Variance of the discrete Laplace distribution P(x) ∝ exp(-|x|/scale)."""
    q = math.exp(-1 / scale)
    return 2 * q / (1 - q) ** 2


# ---- the mechanism ----------------------------------------------------------------------------


def test_attrition_scale_costs_exactly_epsilon() -> None:
    """The attrition is a partition of the index pool (issue 23): one person added or
    removed moves one bucket by 1 (L1 distance 1), whatever the number of steps."""
    p = PrivacyParams(epsilon=0.5)
    for k in (1, 3, 6):
        _, scale = release_attrition(tuple(range(100 * k, 0, -100)), p)
        assert scale == 1 / 0.5
        # OpenDP's own privacy map: one bucket moved by 1 costs ε
        assert measurement(scale).map(1) == pytest.approx(0.5)
        # a person removed by criterion i leaves steps 1..i-1 too: the cumulative counts
        # move by up to k, the buckets by 1
        counts = tuple(range(100 * k, 0, -100))
        fewer = tuple(c - (1 if j < max(1, k - 1) else 0) for j, c in enumerate(counts))
        buckets = [[a[i] - a[i + 1] for i in range(k - 1)] + [a[-1]] for a in (counts, fewer)]
        assert sum(abs(x - y) for x, y in zip(*buckets, strict=True)) == 1
    _, scale = release_cells({("01",): 5}, [("01",), ("03",)], p)
    assert measurement(scale).map(1) == pytest.approx(0.5)  # a partition: one cell moves


@pytest.mark.parametrize("scale", [2.0, 12.0])
def test_noise_has_the_distribution_it_claims(scale: float) -> None:
    n = 40_000
    xs = noisy_vector([0] * n, scale)
    mean = sum(xs) / n
    var = sum(x * x for x in xs) / n - mean**2
    expected = dlap_variance(scale)
    # the sample variance's relative standard error is about sqrt(var of x² / n) / var ≈ 2.5/sqrt(n)
    # here (1.3%); a scale 10% off moves the variance by ~20%: far outside 6%
    assert abs(var / expected - 1) < 0.06, (var, expected)
    assert abs(dlap_variance(scale * 1.1) / expected - 1) > 0.15
    assert abs(mean) < 5 * math.sqrt(expected / n)
    # the tails: P(|X| >= t) for the discrete Laplace, against the empirical share
    t = int(2 * scale)
    q = math.exp(-1 / scale)
    p_tail = 2 * q**t / (1 + q)
    share = sum(1 for x in xs if abs(x) >= t) / n
    assert abs(share - p_tail) < 5 * math.sqrt(p_tail * (1 - p_tail) / n)


def test_intervals_cover_the_true_count() -> None:
    p = PrivacyParams(epsilon=0.5, threshold=0)
    hits = 0
    runs = 600
    for _ in range(runs):
        steps, _ = release_attrition((500, 400, 300), p)
        hits += sum(
            1 for c, true in zip(steps, (500, 400, 300), strict=True) if c.low <= true <= c.high
        )
    share = hits / (3 * runs)
    assert share >= 0.93, share  # 95% intervals (post-processing only narrows the error)


def test_attrition_is_released_non_increasing_and_suppressed() -> None:
    p = PrivacyParams(epsilon=0.5)
    for _ in range(200):
        steps, _ = release_attrition((40, 39, 38, 38, 2), p)
        values = [c.value if c.value is not None else 0 for c in steps]
        assert values == sorted(values, reverse=True)
        for c in steps:
            assert c.value is None or c.value >= 10
            assert (c.shown() == "<10") == c.suppressed


def test_rounding_applies_to_counts_and_intervals() -> None:
    p = PrivacyParams(epsilon=0.5, rounding=5, threshold=10)
    steps, _ = release_attrition((1003, 512), p)
    for c in steps:
        assert c.value % 5 == 0 and c.low % 5 == 0 and c.high % 5 == 0


def test_breakdown_covers_its_whole_domain() -> None:
    p = PrivacyParams()
    domain = [(r,) for r in ("01", "03", "04", None)]
    cells, _ = release_cells({("01",): 500}, domain, p)
    assert [k for k, _ in cells] == domain  # zero cells released too: presence says nothing
    assert cells[0][1].value is not None


# ---- the gate, on real data ------------------------------------------------------------------


def _tables(n_t2d: int, extra: list[dict] | None = None) -> dict[str, list[dict]]:
    import datetime as dt

    pop = [
        {
            "lopnr": i,
            "kon": 1 + i % 2,
            "fodelsear": 1950 + i % 30,
            "fodelsemanad": 1 + i % 12,
            "lan": "01",
        }
        for i in range(1, n_t2d + 1)
    ]
    npr = [
        {"lopnr": i, "indatum": dt.date(2020, 1, 1) + dt.timedelta(days=i % 300), "vardform": "O",
         "sjukhus": "01001", "hdia": "E119", "diagnos": "E119"}
        for i in range(1, n_t2d + 1)
    ]  # fmt: skip
    for row in extra or []:
        pop.append(row)
    return {"population": pop, "npr": npr}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_extracts(_tables(4711), tmp_path_factory.mktemp("priv"))


@pytest.fixture
def setup(tmp_path: Path, data_dir: Path):
    store = SQLiteStore(tmp_path / "store.sqlite")
    store.create_project("p", "Test project", "forskning", 10.0)
    inst = Installation.from_data_dir(data_dir)
    backend = engine.get_backend("duckdb", inst, CAT)
    yield store, inst, backend
    backend.close()


def test_averaging_attack_gets_one_value_and_one_charge(setup) -> None:
    store, inst, backend = setup
    gate = Gate(store)
    runs = {"n": 0}

    class Counting:
        def run(self, compiled):
            runs["n"] += 1
            return backend.run(compiled)

    values = set()
    for i in range(1000):
        # every other spelling differs but compiles to the same canonical IR
        text = (
            "index first diagnosis E11*\n"
            if i % 2
            else "codeset d = E11*, E119\nindex first diagnosis @d\n"
        )
        a = count_released(text, inst, CAT, gate, "p", "attacker", Counting()).answer  # type: ignore[arg-type]
        values.add(a.count.value)
        assert a.epsilon_charged == (0.5 if i == 0 else 0.0)
    assert len(values) == 1
    assert runs["n"] == 1  # the data were read once
    assert store.project("p").spent == 0.5
    assert store.ledger_problems() == [] and store.verify_audit() == []


def test_differencing_attack_runs_out_of_budget(tmp_path: Path) -> None:
    """Two cohorts that differ by one person (in region 25). Each fresh spelling costs ε;
    the budget ends before the difference of 1 can be told from 0 at 95% confidence."""
    import datetime as dt

    target = {"lopnr": 9999, "kon": 2, "fodelsear": 1957, "fodelsemanad": 3, "lan": "25"}
    tables = _tables(800, [target])
    tables["npr"].append({"lopnr": 9999, "indatum": dt.date(2020, 5, 5), "vardform": "O",
                          "sjukhus": "25001", "hdia": "E119", "diagnos": "E119"})  # fmt: skip
    inst = Installation.from_data_dir(write_extracts(tables, tmp_path / "d"))
    store = SQLiteStore(tmp_path / "s.sqlite")
    store.create_project("p", "attack", "forskning", 10.0)
    gate = Gate(store)
    backend = engine.get_backend("duckdb", inst, CAT)
    with_person, without = [], []
    charged = 0
    try:
        for i in range(1000):
            # a no-op criterion with a new date makes a new query each time (no record is
            # that old; ages are bounded by AGE_MAX, dates only by DATE_MIN)
            noop = f"exclude diagnosis E11* before {dt.date(1900, 1, 2) + dt.timedelta(days=i)}\n"
            text = "index first diagnosis E11*\n" + noop + ("exclude region 25\n" if i % 2 else "")
            a = count_released(text, inst, CAT, gate, "p", "attacker", backend).answer
            (without if i % 2 else with_person).append(a.count.value)
            charged += 1
    except BudgetExceeded as e:
        assert e.left < 0.5 and "Nothing was released" in str(e)
    finally:
        backend.close()
    assert charged == 20  # ε 10 at ε 0.5 a query
    assert store.project("p").spent == pytest.approx(10.0)
    # what the attacker can learn: the difference of the two means has this standard error
    var = dlap_variance(2 / 0.5)  # each answer is a 2-step attrition: scale 2/ε
    se = math.sqrt(var / len(with_person) + var / len(without))
    assert 1.96 * se > 1.0  # a 95% interval around the estimate always spans both 0 and 1


def test_refusal_releases_nothing_and_says_what_is_left(setup) -> None:
    store, inst, backend = setup
    gate = Gate(store, PrivacyParams(epsilon=4.0))
    count_released("index first diagnosis E11*", inst, CAT, gate, "p", "u", backend)
    count_released("index first diagnosis E119", inst, CAT, gate, "p", "u", backend)
    answers_before = store.project_queries("p")
    with pytest.raises(BudgetExceeded) as e:
        count_released("index first diagnosis E11", inst, CAT, gate, "p", "u", backend)
    assert e.value.left == pytest.approx(2.0) and e.value.needed == 4.0
    assert "has ε 2 left" in str(e.value)
    assert store.project_queries("p") == answers_before
    assert store.project("p").spent == pytest.approx(8.0)
    assert [x.action for x in store.audit_entries()][-1] == "refused_budget"
    assert store.ledger_problems() == []


def test_no_true_count_anywhere(setup, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """4711 persons at index, 2356 women: neither number may appear anywhere but --exact."""
    import logging

    caplog.set_level(logging.DEBUG)
    store, inst, backend = setup
    gate = Gate(store, PrivacyParams(rounding=1000))
    text = "index first diagnosis E11*\ninclude sex male\nreport by sex"
    exact = engine.count_exact(text, inst, CAT)
    secrets = {str(n) for n in exact.counts} | {str(n) for _, n in exact.cells}
    assert secrets >= {"4711"}
    a = count_released(text, inst, CAT, gate, "p", "u", backend).answer
    seen = [repr(a), str(a.to_json())]
    with pytest.raises(BudgetExceeded) as e:
        Gate(store, PrivacyParams(epsilon=100)).answer(
            "p", "u", "h", "q", inst.release, ("x",), (), lambda: TrueCounts(("x",), (4711,))
        )
    seen.append(str(e.value))
    seen.append(repr(TrueCounts(("x",), (4711,))))
    seen += [str(x) for x in store.audit_entries()]
    seen += [str(q) for q in store.project_queries("p")]
    seen += [r.getMessage() for r in caplog.records]
    # the command line, released mode
    cohort = tmp_path / "c.cohort"
    cohort.write_text(text)
    from typer.testing import CliRunner

    from antal.api.cli import app

    cfg = tmp_path / "installation.yaml"
    files = {rid: src.parquet for rid, src in inst.sources.items()}
    cfg.write_text(
        "registers:\n"
        + "".join(f"  {rid}: {{parquet: '{f}'}}\n" for rid, f in files.items())
        + "privacy: {rounding: 1000}\n"
    )
    r = CliRunner().invoke(
        app,
        [
            "count",
            str(cohort),
            "--config",
            str(cfg),
            "--store",
            str(tmp_path / "cli.sqlite"),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    seen.append(r.output)
    blob = "\n".join(seen).replace(",", "").replace(" ", "")
    numbers = set(
        re.findall(r"(?<![0-9a-f])[0-9]+(?![0-9a-f])", blob)
    )  # whole numbers, not inside hashes
    assert not secrets & numbers, secrets & numbers


def test_exact_counts_only_with_exact(tmp_path: Path, data_dir: Path) -> None:
    from typer.testing import CliRunner

    from antal.api.cli import app

    cohort = tmp_path / "c.cohort"
    cohort.write_text("index first diagnosis E11*\n")
    r = CliRunner().invoke(
        app,
        ["count", str(cohort), "--data", str(data_dir), "--store", str(tmp_path / "s"), "--json"],
    )
    released = json.loads(r.stdout)
    first = released["attrition"][0]
    assert released["epsilon_charged"] == 0.5 and first["suppressed"] is False
    assert first["lower"] <= first["count"] <= first["upper"]
    r = CliRunner().invoke(
        app, ["count", str(cohort), "--data", str(data_dir), "--exact", "--json"]
    )
    exact = json.loads(r.stdout)
    assert {k: exact[k] for k in ("count", "attrition", "breakdown")} == {
        "count": 4711, "attrition": [{"label": "Index event", "count": 4711}], "breakdown": []
    }  # fmt: skip
    # no extraction date stated: the currency is unknown, and the answer says so
    assert exact["data_currency"]["extracted"] is None and "note" in exact["data_currency"]
    assert all(w["severity"] == "warning" for w in exact["warnings"])
    # and without --exact there is no way to ask for true counts: the options say so
    r = CliRunner().invoke(app, ["count", "--help"])
    assert "--exact" in r.output


def test_opt_outs_follow_the_project_purpose(tmp_path: Path) -> None:
    tables = _tables(60)
    tables["optout"] = [
        {"lopnr": i, "andamal": "kommersiell"} for i in range(1, 31)
    ]  # half opted out of commercial use only
    inst = Installation.from_data_dir(write_extracts(tables, tmp_path / "d"))
    assert (
        engine.count_exact("index first diagnosis E11*", inst, CAT, purpose="forskning").count == 60
    )
    assert (
        engine.count_exact("index first diagnosis E11*", inst, CAT, purpose="kommersiell").count
        == 30
    )
    store = SQLiteStore(tmp_path / "s")
    store.create_project("res", "r", "forskning", 10)
    store.create_project("com", "c", "kommersiell", 10)
    gate = Gate(store, PrivacyParams(epsilon=5.0, threshold=0))  # scale 0.2: nearly exact
    be = engine.get_backend("duckdb", inst, CAT)
    a = count_released("index first diagnosis E11*", inst, CAT, gate, "res", "u", be).answer
    b = count_released("index first diagnosis E11*", inst, CAT, gate, "com", "u", be).answer
    be.close()
    assert a.key != b.key  # purpose is part of the stored answer's key
    assert abs(a.count.value - 60) <= 3 and abs(b.count.value - 30) <= 3


# ---- the store: concurrency and crashes, on SQLite and PostgreSQL ---------------------------------

_WORKER = textwrap.dedent(
    """
    import sys, threading
    from antal.privacy import Gate, PrivacyParams, TrueCounts, open_store, BudgetExceeded
    store = open_store(sys.argv[1])
    gate = Gate(store, PrivacyParams(epsilon=0.5))
    prefix, n = sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    for i in range(n):
        try:
            a = gate.answer("p", prefix, f"{prefix}-{i}", "q", "rel", ("i",), (),
                            lambda: TrueCounts(("i",), (1000,)))
            print("released", a.key, flush=True)
        except BudgetExceeded:
            print("refused", flush=True)
    """
)


def _store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return str(tmp_path / "s.sqlite") if kind == "sqlite" else request.getfixturevalue("pg_dsn")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_concurrent_requests_never_overspend(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _store_url(kind, tmp_path, request)
    store = open_store(url)
    store.create_project("p", "race", "forskning", 5.0)  # room for 10 queries of ε 0.5
    # 4 processes × 8 queries, and 8 threads × 4 queries in this process, all at once
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, f"proc{j}", "8"], stdout=subprocess.PIPE, text=True
        )
        for j in range(4)
    ]
    released: list[str] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        s = open_store(url)
        g = Gate(s, PrivacyParams(epsilon=0.5))
        for i in range(4):
            try:
                a = g.answer(
                    "p",
                    "t",
                    f"thread{t}-{i}",
                    "q",
                    "rel",
                    ("i",),
                    (),
                    lambda: TrueCounts(("i",), (1000,)),
                )
                with lock:
                    released.append(a.key)
            except BudgetExceeded:
                pass

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        released += [line.split()[1] for line in out.splitlines() if line.startswith("released")]
    assert len(released) == 10
    assert store.project("p").spent == pytest.approx(5.0)
    assert store.ledger_problems() == []
    assert store.verify_audit() == []


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_crash_never_releases_uncharged_or_loses_a_charge(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _store_url(kind, tmp_path, request)
    store = open_store(url)
    store.create_project("p", "crash", "forskning", 1e6)
    rng = random.Random(1)
    printed: list[str] = []
    for round_ in range(12):
        p = subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, f"r{round_}", "100000"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert p.stdout is not None
        first = p.stdout.readline()  # started (imports done, store open): however busy the machine
        assert first.strip() == "ready", first
        time.sleep(0.05 + rng.random() * 0.5)  # then a random point in the loop
        os.kill(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        # whole lines only: a line the kill cut short (no newline yet) was not printed
        lines = out.split("\n")[:-1]
        printed += [line.split()[1] for line in lines if line.startswith("released ")]
    assert printed, "the worker never got to release anything before being killed"
    assert (
        store.ledger_problems() == []
    )  # no answer without its charge, no charge without its answer
    assert store.verify_audit() == []
    with store.transaction(write=False) as tx:
        keys = {r[0] for r in tx.all("SELECT answer_key FROM charges")}
    assert set(printed) <= keys  # everything a client saw was charged


def test_audit_verify_detects_edits_and_deletions(tmp_path: Path) -> None:
    url = tmp_path / "s.sqlite"
    store = SQLiteStore(url)
    store.create_project("p", "audit", "forskning", 10)
    gate = Gate(store)
    for i in range(4):
        gate.answer("p", "u", f"h{i}", "q", "rel", ("i",), (), lambda: TrueCounts(("i",), (100,)))
    assert store.verify_audit() == []
    from typer.testing import CliRunner

    from antal.api.cli import app

    assert CliRunner().invoke(app, ["audit", "verify", "--store", str(url)]).exit_code == 0
    with store.transaction() as tx:
        tx.execute("UPDATE audit SET epsilon = epsilon + 1 WHERE seq = 3")
    assert any("entry 3 was altered" in p for p in store.verify_audit())
    r = CliRunner().invoke(app, ["audit", "verify", "--store", str(url)])
    assert r.exit_code == 1 and "altered" in r.output
    with store.transaction() as tx:
        tx.execute("DELETE FROM audit WHERE seq = 2")
    assert any("entry 2 is missing" in p for p in store.verify_audit())
    with store.transaction() as tx:
        tx.execute("DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)")
    assert any("log ends at entry" in p for p in store.verify_audit())


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_store_creates_the_whole_schema_and_raises_typed_errors(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """privacy/schema.py is the application database: opening a store creates every table
    (accounts and published entries too), and lookups fail with antal's own errors."""
    from antal.api.accounts import Accounts
    from antal.catalog.errors import AntalError
    from antal.privacy import AlreadyExists, InvalidValue, UnknownProject, UnknownUser
    from antal.privacy.schema import TABLES

    store = open_store(_store_url(kind, tmp_path, request))
    assert set(TABLES) >= {"projects", "answers", "charges", "project_queries", "audit",
                           "audit_head", "users", "tokens", "members", "catalog_entries"}  # fmt: skip
    with store.transaction(write=False) as tx:
        for table in TABLES:  # names from the schema module, not from a user
            assert tx.one(f"SELECT COUNT(*) FROM {table}")[0] == (1 if table == "audit_head" else 0)
    acc = Accounts(store)
    store.create_project("p", "t", "forskning", 1.0)
    acc.create_user("anna", "Anna", "researcher")
    cases = [
        (lambda: store.create_project("p", "t", "forskning", 1.0), AlreadyExists, "project 'p' exists"),
        (lambda: store.create_project("q", "t", "reklam", 1.0), InvalidValue, "purpose is one of forskning, kommersiell"),
        (lambda: store.create_project("q", "t", "forskning", -1.0), InvalidValue, "budget must not be negative"),
        (lambda: store.set_registers("nope", ("npr",)), UnknownProject, "no project 'nope'"),
        (lambda: acc.create_user("anna", "A", "researcher"), AlreadyExists, "user 'anna' exists"),
        (lambda: acc.create_user("bo", "B", "boss"), InvalidValue, "role is one of researcher, holder, admin"),  # type: ignore[arg-type]
        (lambda: acc.issue_token("nobody"), UnknownUser, "no user 'nobody'"),
        (lambda: acc.add_member("nope", "anna"), UnknownProject, "no project 'nope'"),
        (lambda: acc.add_member("p", "nobody"), UnknownUser, "no user 'nobody'"),
    ]  # fmt: skip
    for call, error, message in cases:
        with pytest.raises(error) as e:
            call()
        assert isinstance(e.value, AntalError) and not isinstance(e.value, KeyError | ValueError)
        assert str(e.value).startswith(message)  # the message itself: no quotes to strip
    assert store.verify_audit() == [] and store.ledger_problems() == []


def test_a_released_cell_never_exceeds_the_released_total() -> None:
    """Post-processing, no ε: a final `<10` with a cell `10 (3–17)` contradicted itself."""
    from antal.privacy.mechanism import ReleasedCount, within_total

    shown = ReleasedCount(12, 5, 19, 10)
    cells = [(("a",), ReleasedCount(15, 8, 22, 10)), (("b",), ReleasedCount(11, 4, 18, 10)),
             (("c",), ReleasedCount(None, None, None, 10))]  # fmt: skip
    assert within_total(cells, shown) == [
        (("a",), ReleasedCount(12, 8, 19, 10)),  # lowered to the total, interval capped
        (("b",), ReleasedCount(11, 4, 18, 10)),  # within: unchanged
        (("c",), ReleasedCount(None, None, None, 10)),
    ]
    hidden = ReleasedCount(None, None, None, 10)
    assert all(c.suppressed for _, c in within_total(cells, hidden))
    # end to end through the gate: a small cohort, all in one cell, asked many times over
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        store = SQLiteStore(Path(d) / "s.sqlite")
        store.create_project("p", "t", "forskning", 1e6)
        gate = Gate(store, PrivacyParams(epsilon=0.5))
        for i in range(200):
            a = gate.answer("p", "u", f"q{i}", "q", "rel", ("i", "s"), ("sex",),
                            lambda: TrueCounts(("i", "s"), (14, 11), ("sex",), {("f",): 11},
                                               [("f",), ("m",)]))  # fmt: skip
            total = a.steps[-1]
            for _, c in a.cells:
                if total.suppressed:
                    assert c.suppressed
                elif not c.suppressed:
                    assert c.value <= total.value and c.high <= total.high


# ---- issue 23: the attrition as a partition ------------------------------------------------


def test_a_partition_release_has_one_counts_noise_on_the_final_step() -> None:
    """Over many releases of a 5-step attrition: the final count's error has the variance of
    one bucket (not of five steps), step j that of the k - j buckets it adds up (within
    12%), every release is non-increasing, and the intervals cover at least 94%."""
    from antal.privacy.mechanism import attrition_variances

    p = PrivacyParams(epsilon=0.5, threshold=0)
    truth = (1000, 800, 700, 650, 600)
    runs = 4000
    errs: list[list[int]] = [[] for _ in truth]
    covered = 0
    for _ in range(runs):
        steps, scale = release_attrition(truth, p)
        values = [c.value for c in steps]
        assert values == sorted(values, reverse=True)
        for j, (c, n) in enumerate(zip(steps, truth, strict=True)):
            errs[j].append(c.value - n)
            covered += c.low <= n <= c.high
    stated = attrition_variances(len(truth), scale)
    for j, e in enumerate(errs):
        mean = sum(e) / runs
        var = sum((x - mean) ** 2 for x in e) / runs
        assert abs(var / stated[j] - 1) < 0.12, (j, var, stated[j])
    assert stated[-1] == pytest.approx(dlap_variance(1 / 0.5))  # one count's noise
    assert covered / (runs * len(truth)) >= 0.94


def test_a_criterion_that_removes_nobody_shows_as_removing_about_nobody() -> None:
    """The review's finding: "Index 70 → Women 42" with exact 54 → 54. As a partition, the
    bucket of a criterion that removes nobody is released as max(0, noise): the step after
    it is never far below the step before."""
    p = PrivacyParams(epsilon=0.5, threshold=10)
    drops = []
    for _ in range(2000):
        steps, _ = release_attrition((54, 54), p)
        drops.append(steps[0].value - steps[1].value)
    assert min(drops) >= 0 and sum(d > 12 for d in drops) / len(drops) < 0.01


def test_an_answer_stored_before_the_partition_reads_back_labelled() -> None:
    old = json.dumps({"params": PrivacyParams().as_dict(), "steps": [
        {"count": 120, "suppressed": False, "lower": 90, "upper": 150, "display": "120"}],
        "dims": [], "cells": [], "epsilon": 0.5, "scales": {"attrition": 2.0}})  # fmt: skip
    a = answer_from_json(old, 0.0, 9.5, "h", "r", "k", "forskning", True, ("Index event",))
    j = a.to_json()
    assert a.mechanism == "cumulative" and j["mechanism"] == "cumulative"
    assert "partition" in j["mechanism_note"]
    assert j["count"] == 120 and j["lower"] == 90


def test_neighbouring_data_sets_stay_within_e_to_the_epsilon() -> None:
    """The guarantee, tested as stated: two attritions that differ by one person (removed by
    the second criterion: its bucket 10 against 9), released many times; for every released
    value of that criterion's bucket (the second step less the third: post-processing, so
    bound by the same guarantee) seen often enough under both, the ratio of its frequencies
    stays within e^ε (with the sampling error's slack). A mechanism whose noise assumed the
    wrong sensitivity (the old k/ε sums, or 1/ε where a person moves two buckets) breaks it:
    the ratio reaches e^(2ε); and the largest ratio seen comes near e^ε, so the test has
    the power to see that."""
    from collections import Counter

    p = PrivacyParams(epsilon=1.0, threshold=0)
    runs = 20_000
    seen: list[Counter[int]] = []
    for counts in ((40, 30, 20), (39, 29, 20)):
        c: Counter[int] = Counter()
        for _ in range(runs):
            steps, _ = release_attrition(counts, p)
            c[steps[1].value - steps[2].value] += 1
        seen.append(c)
    ratios = [seen[0][v] / seen[1][v] for v in seen[0] if min(seen[0][v], seen[1][v]) >= 800]
    assert len(ratios) >= 4
    bound = math.exp(p.epsilon)
    assert max(ratios) <= bound * 1.2 and min(ratios) >= 1 / (bound * 1.2), ratios
    assert max(max(ratios), 1 / min(ratios)) >= bound * 0.8, ratios  # near the bound


# ---- issue 24: episodes (`index each`) and their contribution bound -------------------------


def test_episodes_are_noised_for_every_episode_of_a_person() -> None:
    """An `index each` cohort counts episodes; one person is up to K of them (engine.ir
    .contribution), so every release is scaled by K: the attrition's buckets at K/ε (L1
    sensitivity K, worst case all in one bucket), K leaf tables at T·K/ε. The ε charged
    is the same; the answer states its unit and K."""
    from antal import engine
    from antal.engine import ir
    from antal.privacy.gate import release
    from antal.privacy.mechanism import TrueTable, attrition_variances

    co = engine.parse("index each diagnosis I50* between 2020-01-01 and 2020-01-10, "
                      "washout 2 days\nreport by month\nreport by sex\n")  # fmt: skip
    k = ir.contribution(co.index)
    assert k == 4
    p = PrivacyParams(epsilon=0.5, threshold=0)
    tables = (TrueTable(("month",), {(202001,): 90}, [(202001,)]),
              TrueTable(("sex",), {("f",): 50, ("m",): 40}, [("f",), ("m",)], report=1))  # fmt: skip
    true = TrueCounts(("i", "s"), (120, 90), tables=tables, contribution=k, unit="episodes")
    d = json.loads(release(true, ("month",), 2 * p.epsilon, p))
    eps_a = p.attrition_share * 2 * p.epsilon
    assert d["scales"]["attrition"] == pytest.approx(k / eps_a)
    assert d["scales"]["breakdown"] == pytest.approx(2 * k / (2 * p.epsilon - eps_a))
    # OpenDP's own privacy map: a person moving K units of the buckets costs what is charged
    assert measurement(d["scales"]["attrition"]).map(k) == pytest.approx(eps_a)
    assert d["contribution"] == k and d["epsilon"] == pytest.approx(2 * p.epsilon)
    a = answer_from_json(json.dumps(d), 1.0, 9.0, "h", "r", "k", "forskning", False, ("i", "s"))
    assert (a.to_json()["unit"], a.to_json()["contribution"]) == ("episodes", k)
    with pytest.raises(ValueError, match="at least 1"):
        TrueCounts(("i",), (1,), contribution=0)
    # the stated variances follow the scale: the final count's is one bucket's at K/ε
    runs, errs = 6000, []
    for _ in range(runs):
        steps, scale = release_attrition((1000, 600), p, contribution=k)
        errs.append(steps[-1].value - 600)
    var = sum(e * e for e in errs) / runs - (sum(errs) / runs) ** 2
    stated = attrition_variances(2, scale)[-1]
    assert stated == pytest.approx(dlap_variance(k / 0.5))
    assert abs(var / stated - 1) < 0.12, (var, stated)


def test_neighbouring_episode_data_sets_stay_within_e_to_the_epsilon() -> None:
    """The guarantee with episodes: a person with K = 3 episodes, all in the final bucket
    (the worst case), removed; the ratio of the final count's frequencies stays within e^ε
    at the scale K/ε, and comes near e^(3ε) at a person's scale 1/ε (the test can fail)."""
    from collections import Counter

    p = PrivacyParams(epsilon=0.5, threshold=0)
    runs = 20_000

    def ratios(contribution: int) -> list[float]:
        seen: list[Counter[int]] = []
        for counts in ((60, 40), (57, 37)):  # 3 episodes of one person in the last bucket
            c: Counter[int] = Counter()
            for _ in range(runs):
                steps, _ = release_attrition(counts, p, contribution=contribution)
                c[steps[-1].value] += 1
            seen.append(c)
        return [seen[0][v] / seen[1][v] for v in seen[0] if min(seen[0][v], seen[1][v]) >= 300]

    bound = math.exp(p.epsilon)
    scaled = ratios(3)
    assert len(scaled) >= 4
    assert max(scaled) <= bound * 1.2 and min(scaled) >= 1 / (bound * 1.2), scaled
    person = ratios(1)
    assert max(max(person), 1 / min(person)) > bound * 1.5, person  # e^(3ε) = 4.5 > e^ε = 1.6
