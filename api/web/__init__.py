"""The web workbench (`antal serve` at /web): server-rendered pages (Jinja2) with a small
ES module per page that calls the JSON API, and every asset served by antal itself from
api/web/static/ (vendored at pinned versions, see static/vendor/README.md): no CDN,
no request leaves the server's origin. `/docs` serves Swagger UI from the same vendored
files, under the same Content-Security-Policy. The pages are not API routes: they are
left out of the OpenAPI schema.

Design (docs/web.md says why): the page holds no state the server does not already
have; it signs in with the API's bearer token (kept in sessionStorage, sent as
`Authorization`), so every number on it comes from the same routes as the CLI's and the
notebook client's, through the same privacy layer.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from antal.api.web.strings import LANGUAGES, strings_for

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = ["CSP", "STATIC", "install_hub_web", "install_web", "keywords"]

_HERE = Path(__file__).resolve().parent
STATIC = _HERE / "static"

# The workbench's policy: its own scripts, styles and data only, nothing from elsewhere.
# 'unsafe-eval': Vega compiles its expressions with Function(); 'unsafe-inline' styles:
# CodeMirror and Vega set element styles. No inline script is allowed.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"}  # fmt: skip


@cache
def keywords() -> list[str]:
    """The cohort language's reserved words, read from its grammar (the literals in quotes
    and the keyword terminals), so the editor highlights exactly what the parser reserves."""
    grammar = files("antal.engine.language").joinpath("cohort.lark").read_text(encoding="utf-8")
    words = set(re.findall(r'"([a-z]+)"', grammar))
    words |= {"rollup", "with"}  # the ROLLUP terminal, `with rollup`
    return sorted(words)


@cache
def _env() -> Environment:
    # imported on the first page, not when the server (or the CLI) starts
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(
        loader=FileSystemLoader(str(_HERE / "templates")),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


Lang = Annotated[str, Query(pattern="^(sv|en)$")]


def _script_json(data: object) -> str:
    """JSON for a <script type="application/json"> element: no `<`, `>` or `&` in it, so
    no text (a string of the table, say) can close the element."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page(template: str, lang: str, **extra: object) -> HTMLResponse:
    t = strings_for(lang)
    data = {"lang": lang, "strings": t, "keywords": keywords(), **extra}
    html = _env().get_template(template).render(
        lang=lang, t=t, languages=LANGUAGES, page_data=_script_json(data),
        **extra,
    )  # fmt: skip
    return HTMLResponse(html, headers=_HEADERS)


def install_web(app: FastAPI) -> None:
    """The workbench's page, its static files and the local Swagger UI at /docs (the app
    is made with `docs_url=None`, so nothing points at a CDN)."""
    _install(app, "workbench.html.j2")


def install_hub_web(app: FastAPI) -> None:
    """A federated hub's page (/web: the per-node status table of its queries, filled in
    as nodes answer), its static files and the local Swagger UI at /docs."""
    _install(app, "hub.html.j2")


def _install(app: FastAPI, template: str) -> None:
    app.mount("/web/static", StaticFiles(directory=str(STATIC)), name="web-static")

    @app.get("/", include_in_schema=False)
    def _root() -> RedirectResponse:
        return RedirectResponse("/web")

    @app.get("/web", include_in_schema=False)
    def _page_route(request: Request, lang: Lang = "en") -> HTMLResponse:
        return _page(template, lang)

    @app.get("/docs", include_in_schema=False)
    def _docs() -> HTMLResponse:
        return _swagger(app)


def _swagger(app: FastAPI) -> HTMLResponse:
    """Swagger UI under the workbench's policy: its start is a file (static/docs.js), its
    options the page's JSON; no inline script (FastAPI's own page has one)."""
    config = {
        "url": app.openapi_url or "/openapi.json",
        "layout": "BaseLayout",
        "deepLinking": True,
        "showExtensions": True,
        "showCommonExtensions": True,
        # no "validator" badge: it would send the schema to validator.swagger.io
        "validatorUrl": None,
    }
    page = _env().get_template("docs.html.j2")
    html = page.render(title=f"{app.title} - API", config=_script_json(config))
    return HTMLResponse(html, headers=_HEADERS)
