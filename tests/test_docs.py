"""The documentation in docs/ (and README.md) is tested, so that it cannot drift from the code.

- Every ```cohort block is a complete cohort that parses and checks against the bundled
  catalog.
- Every ```cohort-error block is a cohort that fails; its trailing `# error: L:C: message`
  lines are exactly the diagnostics the engine reports (message and hint, as `antal check`
  prints them, without the file name), in order.
- Every ```yaml installation block loads as an installation config, every ```yaml server
  block as service settings.
- Every spec case and test that docs/language.md cites exists, and every case of
  tests/test_spec.py is cited there.
- Every route of the HTTP API's OpenAPI schema is in docs/api.md.
- Every relative link in docs/ and README.md resolves to a file (and, with `#anchor`, to a
  heading of it).
- The generated parts (between `<!-- BEGIN generated: NAME -->` and `<!-- END generated:
  NAME -->`) are what the code says today. After changing the catalog or a route, rewrite
  them with `python tests/test_docs.py --write`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from antal import engine
from antal.catalog import load_catalog

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md", ROOT / "fixtures/synthetic/README.md"]
CAT = load_catalog()

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.S | re.M)
_ERROR_LINE = re.compile(r"^# error: (.*)$")


def blocks(kind: str) -> list[tuple[str, int, str, str]]:
    """(page, line, info string, body) of every fenced block whose language is `kind`."""
    out = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            info = m.group(1).strip()
            if info.split(" ")[0] == kind:
                line = text.count("\n", 0, m.start()) + 1
                out.append((page.relative_to(ROOT).as_posix(), line, info, m.group(2)))
    return out


def _id(b: tuple[str, int, str, str]) -> str:
    return f"{b[0]}:{b[1]}"


# ---- cohorts ------------------------------------------------------------------------------


def test_the_docs_have_cohorts_of_both_kinds() -> None:
    assert len(blocks("cohort")) >= 20
    assert len(blocks("cohort-error")) >= 10
    # a typo in a fence's language would silently skip a block
    langs = {
        m.group(1).strip().split(" ")[0]
        for page in PAGES
        for m in _FENCE.finditer(page.read_text(encoding="utf-8"))
    }
    known = {"", "cohort", "cohort-error", "sh", "python", "yaml", "json", "text", "sql"}
    assert langs <= known, langs


@pytest.mark.parametrize("block", blocks("cohort"), ids=_id)
def test_cohort_blocks_parse_and_check(block: tuple[str, int, str, str]) -> None:
    page, line, _info, body = block
    try:
        engine.check(engine.parse(body), CAT)
    except engine.CohortError as e:
        pytest.fail(f"{page}:{line}: the cohort does not check:\n{e.format('block', body)}")


@pytest.mark.parametrize("block", blocks("cohort-error"), ids=_id)
def test_cohort_error_blocks_fail_as_documented(block: tuple[str, int, str, str]) -> None:
    page, line, _info, body = block
    expected = [m.group(1) for ln in body.splitlines() if (m := _ERROR_LINE.match(ln))]
    assert expected, f"{page}:{line}: a cohort-error block ends with `# error: L:C: message`"
    with pytest.raises(engine.CohortError) as e:
        engine.check(engine.parse(body), CAT)
    got = [
        f"{d.line}:{d.column}: {d.message}" + (f" - {d.hint}" if d.hint else "")
        for d in e.value.diagnostics
    ]
    assert got == expected, f"{page}:{line}"


def _citations(kind: str) -> list[str]:
    """Backticked names in the language page's `*Spec test(s):*` or `*Test(s):*` notes (a
    note runs to the next note, list item or blank line)."""
    text = (DOCS / "language.md").read_text(encoding="utf-8")
    out = []
    for m in re.finditer(rf"\*{kind}s?:\*(.*?)(?=\*(?:Spec )?Tests?:\*|\n- |\n\n|$)", text, re.S):
        out += re.findall(r"`([^`]+)`", m.group(1))
    return out


def test_cited_spec_cases_exist() -> None:
    """Every spec case the language page cites by name is a case of tests/test_spec.py
    (`name ...` stands for every case whose name starts with `name`), and every case is
    cited: a new rule in the spec tests needs its place in the reference."""
    from test_spec import CASES

    names = {c.name for c in CASES}
    cited = _citations("Spec test")
    assert len(cited) >= 70
    missing = [
        c
        for c in cited
        if not (
            any(n.startswith(c[:-3].rstrip()) for n in names) if c.endswith("...") else c in names
        )
    ]
    assert not missing, missing
    uncited = [
        n
        for n in names
        if not any(n.startswith(c[:-3].rstrip()) if c.endswith("...") else n == c for c in cited)
    ]
    assert not uncited, f"docs/language.md cites no rule for the spec cases {uncited}"


def test_cited_tests_exist() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py"))
    cited = [c for c in _citations("Test") if c.startswith("test_")]
    assert len(cited) >= 8
    missing = [c for c in cited if f"def {c}(" not in source]
    assert not missing, missing


# ---- configuration ------------------------------------------------------------------------


def _yaml_blocks(role: str) -> list[tuple[str, int, str, str]]:
    return [b for b in blocks("yaml") if b[2].split(" ")[1:2] == [role]]


@pytest.mark.parametrize("block", _yaml_blocks("installation"), ids=_id)
def test_installation_blocks_load(block: tuple[str, int, str, str], tmp_path: Path) -> None:
    from antal.catalog import load_installation
    from antal.privacy import PrivacyParams

    f = tmp_path / "installation.yaml"
    f.write_text(block[3], encoding="utf-8")
    inst = load_installation(f)
    assert inst.sources
    assert isinstance(inst.privacy, PrivacyParams)  # the typed section, validated on load


@pytest.mark.parametrize("block", _yaml_blocks("server"), ids=_id)
def test_server_blocks_load(block: tuple[str, int, str, str]) -> None:
    from antal.api.settings import Settings

    Settings(**yaml.safe_load(block[3]))


def test_there_are_config_examples() -> None:
    assert _yaml_blocks("installation") and _yaml_blocks("server")


# ---- links --------------------------------------------------------------------------------

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    out = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
            out.add(title)
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    bad = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        missing = not dest.exists()
        if missing or (anchor and dest.suffix == ".md" and anchor not in _anchors(dest)):
            bad.append(target)
    assert not bad, f"{page.name}: broken links {bad}"


def test_no_page_points_outside_the_repository() -> None:
    for page in PAGES:
        assert "shared/spec" not in page.read_text(encoding="utf-8"), page


# ---- generated parts ----------------------------------------------------------------------


def _openapi(tmp: Path) -> dict[str, Any]:
    from conftest import write_extracts

    from antal.api.app import create_app
    from antal.api.settings import Settings

    data = write_extracts({}, tmp / "data")
    app = create_app(Settings(data=data, store=str(tmp / "store.sqlite")))
    return app.openapi()


def _hub_openapi(tmp: Path) -> dict[str, Any]:
    from antal.api.federation.hub import create_hub_app
    from antal.api.federation.settings import HubSettings

    return create_hub_app(HubSettings(store=str(tmp / "hub.sqlite"))).openapi()


def routes(tmp: Path, hub: bool = False) -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) of every route in the OpenAPI schema (of the hub's API)."""
    spec = _hub_openapi(tmp) if hub else _openapi(tmp)
    return [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]


def render_routes(tmp: Path, hub: bool = False) -> str:
    lines = ["| method | path | tag | summary |", "| --- | --- | --- | --- |"]
    for method, path, op in sorted(routes(tmp, hub), key=lambda r: (r[1], r[0])):
        summary = (op.get("description") or op.get("summary") or "").strip().split("\n")[0]
        tag = ", ".join(op.get("tags", []))
        lines.append(f"| `{method}` | `{path}` | {tag} | {summary} |")
    return "\n".join(lines)


def _type(v: Any) -> str:
    return v.type.upper()


def render_extracts(tmp: Path) -> str:
    """One table per register of the bundled catalog: its columns, types and values."""
    out = []
    for reg in CAT.registers.values():
        out.append(f"### `{reg.id}`: {reg.title.sv} ({reg.title.en})\n")
        facts = [f"holder: {reg.holder}", f"kind: `{reg.kind}`"]
        if reg.date_column:
            facts.append(f"date: `{reg.date_column}`")
        if reg.site_column:
            facts.append(f"hospital: `{reg.site_column}`")
        cov = reg.coverage
        facts.append(f"coverage: {cov.from_year}–{cov.to_year or ''}")
        out.append("; ".join(facts) + ".\n")
        if reg.provides:
            ev = []
            for p in reg.provides:
                name = p.source or reg.id
                extra = f", main diagnosis `{p.main}`" if p.main else ""
                date = f", date `{reg.event_date(p)}`"
                ev.append(f"`{p.event}` from `{p.codes}`{extra}{date} (source `{name}`)")
            out.append("Events: " + "; ".join(ev) + ".\n")
        up = reg.update
        lag = f"complete {up.lag_months} months after " + (
            "the end of a date's year" if up.finalised == "yearly" else "a date"
        )
        out.append(f"Currency: updated {up.frequency}; {lag}.\n")
        for gap in cov.incomplete:
            span = f"{gap.start or 'start'} to {gap.until or 'now'}"
            out.append(f"Known incomplete, {span}: {' '.join((gap.note or '').split())}\n")
        for v in reg.variables:
            if v.coding:
                periods = ", ".join(
                    f"{c.system} {c.start or '…'}–{c.until or ''}"
                    + (" (historical codes)" if c.historical else "")
                    for c in v.coding
                )
                out.append(f"Code systems of `{v.name}`: {periods}.\n")
        cites = "; ".join(f"[{' '.join(x.title.split())}]({x.url})" if x.url
                          else " ".join(x.title.split()) for x in reg.sources)  # fmt: skip
        if cites:
            out.append(f"Sources: {cites}.\n")
        out.append("| column | type | null | meaning | values |")
        out.append("| --- | --- | --- | --- | --- |")
        for v in reg.variables:
            values = ""
            if v.values is not None:
                labels = v.value_labels or {}
                values = ", ".join(
                    f"`{x}`" + (f" ({labels[str(x)]})" if str(x) in labels else "")
                    for x in v.values
                )
            meaning = v.description.replace("|", "\\|")
            if v.unit:
                meaning += f" Unit: {v.unit}."
            if v.code_system:
                meaning += f" Codes: {v.code_system}" + (", space-separated." if v.multi else ".")
            null = "yes" if v.nullable else "no"
            out.append(f"| `{v.name}` | {_type(v)} | {null} | {meaning} | {values} |")
        out.append("")
    return "\n".join(out).rstrip()


GENERATED: dict[str, tuple[Path, Callable[[Path], str]]] = {
    "routes": (DOCS / "api.md", render_routes),
    "extracts": (DOCS / "extracts.md", render_extracts),
    "hub-routes": (DOCS / "api.md", lambda tmp: render_routes(tmp, hub=True)),
}


def _section(text: str, name: str) -> re.Match[str] | None:
    return re.search(
        rf"(<!-- BEGIN generated: {name}[^\n]*-->\n)(.*?)(<!-- END generated: {name} -->)",
        text,
        re.S,
    )


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_parts_are_current(name: str, tmp_path: Path) -> None:
    page, render = GENERATED[name]
    m = _section(page.read_text(encoding="utf-8"), name)
    assert m, f"{page.name} has no generated section {name!r}"
    assert m.group(2) == render(tmp_path) + "\n", (
        f"{page.name}: the {name} section is out of date: run `python tests/test_docs.py --write`"
    )


def test_every_route_is_in_the_api_page(tmp_path: Path) -> None:
    """Not only in the generated table: each route is described in the prose too."""
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    prose = text
    for name in ("routes", "hub-routes"):
        m = _section(text, name)
        assert m
        prose = prose.replace(m.group(0), "")
    every = routes(tmp_path) + routes(tmp_path, hub=True)
    missing = [f"{m_} {p}" for m_, p, _ in every if f"`{m_} {p}" not in prose]
    assert not missing, f"docs/api.md does not describe {missing}"


def write() -> None:
    import tempfile

    for name, (page, render) in GENERATED.items():
        with tempfile.TemporaryDirectory() as tmp:
            text = page.read_text(encoding="utf-8")
            m = _section(text, name)
            if m is None:
                raise SystemExit(f"{page}: no section {name}")
            new = text[: m.start(2)] + render(Path(tmp)) + "\n" + text[m.end(2) :]
            page.write_text(new, encoding="utf-8")
            print(f"wrote {page.relative_to(ROOT)} ({name})")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))  # for conftest
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/test_docs.py --write")
    write()
