"""What the command groups share: the consoles, the one settings model, and the one mapping
from typed errors to a message and an exit code (never a traceback):

- 1: the cohort does not parse or check (printed like a compiler: file:line:col, a caret);
- 2: bad input, a missing file or store, a store that cannot be reached, a failing data
  check, a settings error;
- 3: the privacy layer refused (the budget), nothing released;
- 4: a charged count failed (fail closed: the same message whatever failed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

# Every command module imports this one, and `antal --help` imports every command module:
# what a command needs beyond typer and rich is imported when it runs (the use cases, the
# settings, the engine), so that a command pays only for what it uses.
if TYPE_CHECKING:
    from pydantic import ValidationError

    from antal.api import usecases as uc
    from antal.api.settings import Settings
    from antal.catalog import Catalog, Installation
    from antal.engine import CohortError
    from antal.engine.backends import Backend
    from antal.privacy import Gate

__all__ = [
    "STORE_HELP",
    "CatalogOpt",
    "StoreOpt",
    "TlsCertOpt",
    "TlsKeyOpt",
    "checked",
    "cohort_error",
    "err",
    "fail",
    "failing",
    "load_catalog",
    "local_release",
    "out",
    "proxy_options",
    "read_cohort",
    "run_server",
    "settings",
]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

STORE_HELP = (
    "The store: a SQLite path or postgresql:// URL (default: ANTAL_STORE, else store.sqlite "
    "in the user data directory; the same for every command and the server)."
)
StoreOpt = Annotated[str | None, typer.Option(help=STORE_HELP)]
# `antal serve` and `antal hub serve`: https with both (antal.api.tls), else plain http
TlsCertOpt = Annotated[
    Path | None,
    typer.Option(help="TLS certificate (PEM) to answer https with; needs --tls-key."),
]
TlsKeyOpt = Annotated[
    Path | None, typer.Option(help="The TLS certificate's private key (PEM, unencrypted).")
]
# the local project a released count is charged to (count, forecast, report)
PurposeOpt = Annotated[
    str | None,
    typer.Option(
        help="forskning or kommersiell: which opt-outs apply. For a new project, its "
        "purpose (default forskning); for an existing one, it must be the project's."
    ),
]
ProjectOpt = Annotated[str, typer.Option(help="Local project to charge.")]
BudgetOpt = Annotated[
    float | None,
    typer.Option(help="Total ε of a new local project (an existing one keeps its own)."),
]
# the installation a command counts on (count, check, forecast, plan, report, ...)
DataOpt = Annotated[
    Path | None,
    typer.Option(
        help="Directory of canonical Parquet extracts, or a file `antal prepare` wrote "
        "(default: ANTAL_DATA)."
    ),
]
ConfigOpt = Annotated[
    Path | None, typer.Option(help="Installation config (YAML; default: ANTAL_INSTALLATION).")
]
CatalogOpt = Annotated[
    list[Path] | None, typer.Option("--catalog", help="Extra directory of entries.")
]


def fail(message: str, code: int = 2) -> NoReturn:
    # messages may hold [brackets] (file names, findings): shown as they are, not as markup
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _validation(e: ValidationError) -> str:
    first = e.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"settings: {where}: {first.get('msg', '')}"


@contextlib.contextmanager
def local_release(
    s: Settings,
    inst: Installation,
    cat: Catalog,
    project: str,
    purpose: str | None,
    budget: float | None,
) -> Iterator[tuple[Gate, Backend]]:
    """The gate and the backend of a released count on the command line's local project
    (count, forecast, plan, report): the store, the project made or checked against its
    purpose and budget, the installation's gate, and the backend, closed afterwards."""
    from antal.api import usecases as uc

    st = uc.open_store(s)
    uc.local_project(st, project, inst.privacy, purpose, budget)
    backend = uc.open_backend(s, inst, cat)
    try:
        yield uc.open_gate(s, inst, st), backend
    finally:
        backend.close()


@contextlib.contextmanager
def failing(project: str | None = None, prefix: str = "") -> Iterator[None]:
    """Typed errors → a message (after `prefix`) and an exit code (see the module docstring)."""
    from pydantic import ValidationError

    from antal.api.usecases import UseCaseError
    from antal.catalog import CatalogError
    from antal.engine import EngineError
    from antal.privacy import CountFailed, PrivacyError, SigningKeyError, StoreUnavailable

    try:
        yield
    except CountFailed as e:  # charged; the same text whatever failed (see privacy.gate)
        fail(f"{prefix}{e}; budget left ε {e.left:g} (project {project})", code=4)
    except (SigningKeyError, StoreUnavailable) as e:  # settings or operations, not a refusal
        fail(f"{prefix}{e}")
    except PrivacyError as e:
        fail(f"{prefix}{e}", code=3)
    except UseCaseError as e:
        fail(f"{prefix}{e.message}")
    except ValidationError as e:
        fail(f"{prefix}{_validation(e)}")
    except (CatalogError, EngineError, FileNotFoundError, ValueError) as e:
        fail(f"{prefix}{e}")


def settings(
    data: Path | None = None, installation: Path | None = None, **options: Any
) -> Settings:
    """The one settings model: ANTAL_CONFIG's file, ANTAL_* variables, then these options.
    A data directory or installation file given on the command line replaces both of the
    settings' (so that `--data` beats an ANTAL_INSTALLATION in the environment)."""
    from antal.api.settings import load_settings

    with failing():
        s = load_settings(None, **options)
        if data is not None or installation is not None:
            s = s.model_copy(update={"data": data, "installation": installation})
        return s
    raise AssertionError  # pragma: no cover - failing() exits


def load_catalog(
    installation: Installation | None = None, dirs: list[Path] | None = None
) -> Catalog:
    from antal.api import usecases as uc

    with failing():
        if dirs:
            from antal.catalog import bundled_dir
            from antal.catalog import load_catalog as _load

            return _load(bundled_dir(), *dirs)
        return uc.open_catalog(installation)
    raise AssertionError  # pragma: no cover


def read_cohort(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except UnicodeDecodeError:
        fail(f"{path}: not UTF-8 text")
    except OSError as e:
        fail(f"{path}: {e.strerror}")


def checked(
    path: Path, catalog: Catalog, installation: Installation | None = None, *, warn: bool = True
) -> tuple[str, uc.Validation]:
    """The cohort file's text and its validation; a cohort error exits 1, like a compiler.
    With `warn`, warnings go to stderr (with the installation: also those about its data's
    currency); without (`--json`, `sql`), the caller puts them where they belong."""
    from antal.api import usecases as uc

    text = read_cohort(path)
    v = uc.validate(text, catalog, installation)
    if v.error is not None:
        cohort_error(v.error, path, text)
    for w in v.warnings if warn else ():
        err.print(w.format(str(path), text), soft_wrap=True, markup=False)
    return text, v


def cohort_error(e: CohortError, path: Path, text: str) -> NoReturn:
    err.print(e.format(str(path), text), soft_wrap=True, markup=False)
    raise typer.Exit(1)


def run_server(
    application: Any, host: str, port: int, forwarded_allow_ips: str | None, **options: Any
) -> None:
    """uvicorn, as `antal serve` and `antal hub serve` run it (exits 3 if it cannot start)."""
    import uvicorn

    uvicorn.run(application, host=host, port=port, log_level="warning",
                **proxy_options(forwarded_allow_ips), **options)  # fmt: skip


def proxy_options(forwarded_allow_ips: str | None) -> dict[str, Any]:
    """uvicorn's options for proxies. The client address (what wrong tokens are throttled
    by) is the socket's peer: X-Forwarded-For is read only when the operator names the
    proxies that set it (`forwarded_allow_ips`). uvicorn's own default reads it from any
    loopback peer, which let a guesser on the machine choose the address it was counted by."""
    if forwarded_allow_ips is None:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": forwarded_allow_ips}
