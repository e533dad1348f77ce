"""`antal receipt verify FILE [--cohort COHORT]`: check a receipt's signature; for a whole
answer as `antal count --json` or the API gives it, that its values and step labels are
those the receipt was signed for; with `--cohort`, that the cohort (checked as counting
checks it, against the same catalog) is the question the receipt was signed for: its query
hash, title and step labels. Exit 0: valid; 1: not valid (the message says why), or the
cohort does not parse or check (file:line:col); 2: a file or the key cannot be read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from antal.api.cli.common import (
    CatalogOpt,
    ConfigOpt,
    DataOpt,
    checked,
    err,
    fail,
    failing,
    out,
    settings,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from antal.api import usecases as uc

__all__ = ["app"]

app = typer.Typer(help="Signed receipts of released answers.", no_args_is_help=True)

PUBLIC_KEY_ROUTE = "/v1/receipts/public-key"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        fail(f"{path}: not JSON ({e})")
    except OSError as e:
        fail(f"{path}: {e.strerror}")


def _from_url(url: str) -> Ed25519PublicKey:
    """The key a server publishes: `url` is the server (http://host:8000) or the route."""
    import httpx

    from antal.privacy.receipts import load_public_key

    url = url.rstrip("/")
    if not url.endswith(PUBLIC_KEY_ROUTE):
        url += PUBLIC_KEY_ROUTE
    try:
        r = httpx.get(url, timeout=30.0)
    except httpx.HTTPError as e:
        fail(f"cannot fetch the public key from {url}: {e}")
    if not r.is_success:
        fail(f"cannot fetch the public key from {url}: HTTP {r.status_code}")
    try:
        return load_public_key(r.text)
    except ValueError as e:
        fail(f"{url}: {e}")


def _public_key(key_file: Path | None, url: str | None, store: str | None) -> Ed25519PublicKey:
    from antal.api.settings import default_signing_key
    from antal.privacy import Signer
    from antal.privacy.receipts import load_public_key

    if key_file is not None and url is not None:
        fail("give --public-key or --url, not both")
    if key_file is not None:
        try:
            return load_public_key(key_file.read_bytes())
        except OSError as e:
            fail(f"{key_file}: {e.strerror}")
        except ValueError as e:
            fail(f"{key_file}: {e}")
    if url is not None:
        return _from_url(url)
    # this installation's own key (the settings' signing_key, else beside the store): never
    # made here, a verification creates nothing
    s = settings(store=store)
    path = s.signing_key or default_signing_key(s.store)
    if not path.exists():
        fail(f"no signing key at {path}: give the installation's --public-key FILE or --url URL")
    with failing():
        return Signer.from_file(path).public
    raise AssertionError  # pragma: no cover - failing() exits


@app.command("verify")
def verify_cmd(
    file: Annotated[
        Path, typer.Argument(help="A receipt (JSON), or a whole answer with its `receipt`.")
    ],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The installation's public key: PEM, base64, or the JSON of its public-key route.",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            help="An antal server: its public key is fetched from /v1/receipts/public-key."
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="Without --public-key or --url: the key of this store's installation. With "
            "--cohort: also the catalog entries published to it."
        ),
    ] = None,
    cohort: Annotated[
        Path | None,
        typer.Option(
            help="A .cohort file: check that the receipt answers this question (its query "
            "hash, title and step labels)."
        ),
    ] = None,
    data: DataOpt = None,
    config: ConfigOpt = None,
    catalog_dir: CatalogOpt = None,
) -> None:
    """Check a receipt's signature (and with --cohort its question); exit 0 when it is valid, 1 when it is not."""
    from antal.api import usecases as uc
    from antal.privacy.receipts import caveats

    document = _read_json(file)
    key = _public_key(public_key, url, store)
    question = _question(cohort, data, config, store, catalog_dir) if cohort else None
    problems = uc.verify_receipt(document, key, question)
    if problems:
        for p in problems:
            err.print(f"[bold red]receipt not valid:[/] {escape(p)}", markup=True, soft_wrap=True)
        raise typer.Exit(1)
    whole = isinstance(document.get("receipt"), dict)
    r = document["receipt"] if whole else document
    what = "answer and receipt" if whole else "receipt"
    asked = f", the question of {cohort}" if cohort else ""
    out.print(
        f"{what} valid{asked}: project {r['project']}, query {r['query_hash'][:16]}, data "
        f"release {r['data_release']}, audit entry {r['audit_seq']}, {r['time']}; signed by "
        f"key {r['key_id']} (receipt version {r['version']})",
        soft_wrap=True,
        markup=False,
    )
    for note in caveats(r):
        err.print(f"note: {note}", soft_wrap=True, markup=False)


def _question(
    path: Path, data: Path | None, config: Path | None, store: str | None,
    dirs: list[Path] | None,
) -> uc.Validation:  # fmt: skip
    """The cohort checked as counting checks it: against the catalog every face sees for
    these settings (the bundled entries, the installation's, those published to the store),
    or the bundled entries and `--catalog` directories. A cohort error exits 1."""
    from antal.api import usecases as uc
    from antal.api.cli.common import load_catalog

    if dirs:
        catalog = load_catalog(dirs=dirs)
    else:
        s = settings(data, config, store=store)
        with failing():
            catalog = uc.catalog_for(s)
    _, v = checked(path, catalog, warn=False)
    return v
