"""`antal catalog export` (HealthDCAT-AP) and `antal catalog availability` (released counts)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from antal.api.cli.common import ConfigOpt, DataOpt, StoreOpt, fail, failing, out, settings

__all__ = ["availability", "export"]


def export(
    fmt: Annotated[str, typer.Option("--format", help="turtle or jsonld")] = "turtle",
    register: Annotated[
        str | None, typer.Option("--register", help="One register (default: the catalog).")
    ] = None,
    base_url: Annotated[
        str, typer.Option(help="The service's URL: the IRIs of the datasets.")
    ] = "http://127.0.0.1:8000",
    ns: Annotated[
        str | None,
        typer.Option("--healthdcatap-ns", help="The (provisional) healthdcatap namespace."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--validate", help="Run the SHACL shapes; exit 1 on a violation.")
    ] = False,
    data: DataOpt = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """The catalog (or one register) as HealthDCAT-AP, in Turtle or JSON-LD. With --data or
    --config, the released availability of each register (if released) adds its persons and
    records, rounded and protected; nothing is released or charged here."""
    from antal.api import usecases as uc
    from antal.api.availability import dataset_facts, stored_availability
    from antal.catalog.dcat import (
        FORMATS,
        HEALTHDCATAP_NS,
        catalog_graph,
        dataset_graph,
        serialize,
        validate,
    )
    from antal.privacy.store import store_exists

    if fmt not in FORMATS:
        fail(f"--format is one of {', '.join(FORMATS)}, not {fmt!r}")
    ns = ns or HEALTHDCATAP_NS
    s = settings(data, config, store=store)
    with failing():
        inst = uc.open_installation(s) if (s.data or s.installation) else None
        cat = uc.catalog_for(s, inst)
        facts = {}
        if inst is not None and store_exists(s.store):
            st = uc.open_store(s, must_exist=True)
            for rid in cat.ids():
                facts[rid] = dataset_facts(stored_availability(cat, inst, st, inst.privacy, rid))
        if register is not None:
            reg = cat.register(register)
            if reg is None:
                fail(f"unknown register '{register}'; registers: {', '.join(cat.ids())}")
            g = dataset_graph(reg, base_url, facts.get(reg.id), ns=ns)
        else:
            g = catalog_graph(list(cat.registers.values()), base_url, facts, ns=ns)
        typer.echo(serialize(g, fmt))  # type: ignore[arg-type]
        if check:
            v = validate(g, ns=ns)
            for focus, path, message in v.violations:
                out.print(f"[red]violation[/] {focus} {path}: {message}", soft_wrap=True)
            out.print(f"SHACL: {len(v.violations)} violations, {len(v.warnings)} warnings")
            if not v.conforms:
                raise typer.Exit(1)


def availability(
    register: Annotated[str, typer.Argument(metavar="REGISTER")],
    data: DataOpt = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Release a register's availability counts for this data release (persons per code,
    code group and variable, by year), charged once to its holder's catalog budget; asked
    again for the same release, the stored answer, free."""
    from antal.api import usecases as uc
    from antal.api.availability import availability_json, release_availability

    s = settings(data, config, store=store)
    with failing(f"catalog of {register}"):
        inst = uc.open_installation(s)
        st = uc.open_store(s)
        cat = uc.open_catalog(inst, st)
        reg = cat.register(register)
        if reg is None:
            fail(f"unknown register '{register}'; registers: {', '.join(cat.ids())}")
        backend = uc.open_backend(s, inst, cat)
        answer = release_availability(cat, inst, st, inst.privacy, backend, register, "cli",
                                      uc.open_signer(s))  # fmt: skip
        doc = availability_json(answer, reg)
        if as_json:
            typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
            return
        out.print(f"[bold]{reg.id}[/] release {doc['release']}: persons {doc['persons']['display']},"
                  f" records {doc['records']['display']}; ε charged {doc['epsilon_charged']:g}"
                  + (" (stored answer)" if doc["stored_answer"] else ""))  # fmt: skip
        table = Table("variable", "level", "value", "year", "persons", "95% interval")
        for c in doc["cells"][:200]:
            table.add_row(c["variable"], c["level"], c["value"], str(c["year"] or ""),
                          c["display"], f"{c['lower']}–{c['upper']}")  # fmt: skip
        out.print(table)
        out.print(f"[dim]{doc['note']}[/]")
