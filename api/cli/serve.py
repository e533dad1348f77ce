"""`antal serve`: the HTTP API under uvicorn, from the one settings model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from antal.api.cli.common import StoreOpt, TlsCertOpt, TlsKeyOpt, err, failing, run_server

__all__ = ["serve"]


def serve(
    config: Annotated[
        Path | None, typer.Option(help="Settings file (YAML); ANTAL_* variables win over it.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Directory of canonical Parquet extracts.")
    ] = None,
    installation: Annotated[Path | None, typer.Option(help="Installation config (YAML).")] = None,
    store: StoreOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
) -> None:
    """Run the HTTP API (uvicorn) over the extracts, with the one store."""
    from antal.api.app import create_app
    from antal.api.settings import load_settings
    from antal.api.tls import server_tls

    with failing(prefix="cannot start: "):
        settings = load_settings(
            config, data=data, installation=installation, store=store, host=host, port=port,
            tls_cert=tls_cert, tls_key=tls_key,
        )  # fmt: skip
        tls = server_tls(settings.tls_cert, settings.tls_key)
        application = create_app(settings)
    scheme = "https" if tls else "http"
    err.print(
        f"antal: data release {application.state.antal.installation.release} "
        f"on {scheme}://{settings.host}:{settings.port} (OpenAPI: /openapi.json, docs: /docs)"
    )
    run_server(application, settings.host, settings.port, settings.forwarded_allow_ips, **tls)
