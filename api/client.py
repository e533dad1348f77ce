"""A small Python client of the antal HTTP API, for notebooks.

    from antal.api.client import Client

    with Client("http://127.0.0.1:8000", token) as c:
        c.me()
        c.search("hba1c")                      # a DataFrame of registers, variables, codes
        c.validate(text).raise_for_errors()    # CohortInvalidError: "2:9: unknown register ..."
        c.quote("t2d", text)                   # what counting it would cost (nothing charged)
        res = c.count("t2d", text)             # text, a JSON IR dict, or an engine.builder.Cohort
        res                                    # about 1 240 (1 170–1 310), with the attrition
        res.attrition, res.breakdown           # pandas DataFrames; count is nullable Int64
        res.breakdown["count"].sum()           # the cells shown, added up
        c.budget("t2d")
        c.publish_catalog_entry(Path("ndr.yaml"))  # a holder: the entry's next version
        c.catalog_versions("ndr"), c.holder_overview()

Every count is released by the server through differential privacy and charged to the
project's budget; asking the same question again returns the stored answer for free.
Every error answer of the server raises a `ClientError` (or a subclass) carrying the
server's error code, message, details and the HTTP status. These are the remote side of
antal's own errors (antal.catalog.errors.AntalError and below), named apart so that no
name means two things: the server's `cohort_invalid` answer is `CohortInvalidError`
here, the engine's `CohortError` there.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd

from antal.api.frames import (
    COUNT_COLUMNS,
    attrition_frame,
    breakdown_frame,
    count_columns,
    table_frames,
)
from antal.api.tls import client_verify, untrusted
from antal.catalog.vocabulary import Dialect

if TYPE_CHECKING:  # the engine is imported only when a builder object is counted
    from typing import TypeAlias

    from antal.api.federation.client import HubResult
    from antal.engine import builder as _builder
    from antal.engine import ir as _ir

    CohortInput: TypeAlias = str | Path | Mapping[str, Any] | _builder.Cohort | _ir.Cohort

__all__ = [
    "HUB_RETRY_SECONDS",
    "AuthError",
    "Budget",
    "BudgetExceededError",
    "Client",
    "ClientError",
    "CohortInvalidError",
    "ConnectionFailedError",
    "CountResult",
    "ForbiddenError",
    "InvalidRequestError",
    "NotFoundError",
    "Quote",
    "RateLimitedError",
    "Validation",
]

_USER_AGENT = "antal-client/0.1.0"
_log = logging.getLogger("antal.client")
_HUB_SERVE = "antal hub serve"  # what the hint on an unreachable hub names
HUB_RETRY_SECONDS = 120.0  # how long a hub that cannot be reached is retried (a restart)
_HUB_MAX_BACKOFF = 5.0


# ---- errors -----------------------------------------------------------------------------------


class ClientError(Exception):
    """An error answer of the server (or no answer at all). Not an `AntalError`: it is
    raised in the notebook, for an answer of a server that may be another version.

    `code` is the server's stable machine-readable kind (e.g. ``cohort_invalid``,
    ``budget_exceeded``), `message` its human message, `details` its structured details
    (or None) and `status` the HTTP status (None when the server could not be reached).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "error",
        details: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details
        self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class ConnectionFailedError(ClientError):
    """The server could not be reached (not running, wrong URL, timeout). `query_id`: the
    hub query that was accepted before the hub became unreachable (ask for it later with
    `Client.hub_result`), else None."""

    query_id: str | None = None


class AuthError(ClientError):
    """401: no, unknown or revoked bearer token."""


class ForbiddenError(ClientError):
    """403: not allowed (role, or a register the project is not approved for)."""


class BudgetExceededError(ForbiddenError):
    """403 ``budget_exceeded``: the project's ε budget cannot pay for this count.

    `left` is the ε the project has left and `needed` what the count would cost.
    """

    @property
    def left(self) -> float | None:
        return (self.details or {}).get("left")

    @property
    def needed(self) -> float | None:
        return (self.details or {}).get("needed")


class NotFoundError(ClientError):
    """404: no such register, project (of yours) or stored query."""


class InvalidRequestError(ClientError):
    """400 or 422 other than an invalid cohort (e.g. ``breakdown_too_fine``, ``ir_invalid``)."""


class RateLimitedError(ClientError):
    """429: too many requests or counts; `retry_after` is the seconds to wait."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class CohortInvalidError(ClientError):
    """The cohort does not parse or does not check (it never reached the data).

    `diagnostics` is a list of dicts with ``line``, ``column``, ``message``, ``hint`` and
    ``code``; ``str(e)`` reads like ``2:9: unknown register 'nrd' - did you mean 'ndr'?``.
    """

    def __init__(
        self,
        diagnostics: list[dict[str, Any]],
        *,
        source: str | None = None,
        code: str = "cohort_invalid",
        status: int | None = 400,
    ) -> None:
        self.diagnostics = diagnostics
        self.source = source
        super().__init__(
            _diagnostics_text(diagnostics) or "the cohort is not valid",
            code=code,
            details={"diagnostics": diagnostics},
            status=status,
        )

    def format(self) -> str:
        """Each diagnostic with its source line and a caret (when the text is known)."""
        return _diagnostics_text(self.diagnostics, self.source, sep="\n")


def _diagnostic_line(d: Mapping[str, Any]) -> str:
    text = f"{d.get('line')}:{d.get('column')}: {d.get('message')}"
    return text + (f" - {d['hint']}" if d.get("hint") else "")


def _diagnostics_text(
    diags: list[dict[str, Any]], source: str | None = None, sep: str = "; "
) -> str:
    out = []
    lines = source.splitlines() if source is not None else []
    for d in diags:
        text = _diagnostic_line(d)
        line, col = d.get("line") or 0, d.get("column") or 0
        if source is not None and 0 < line <= len(lines):
            text += f"\n  {lines[line - 1]}\n  {' ' * max(0, col - 1)}^"
        out.append(text)
    return sep.join(out)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:  # an HTTP date: not sent by antal
        return None


def _raise_for(r: httpx.Response, source: str | None = None) -> None:
    """Turn a non-2xx answer into the matching typed exception."""
    if r.is_success:
        return
    try:
        err = r.json()["error"]
        code, message, details = str(err["code"]), str(err["message"]), err.get("details")
    except (ValueError, KeyError, TypeError):  # not antal's error shape (a proxy, say)
        code, message, details = "http_error", f"HTTP {r.status_code}: {r.text[:200]}", None
    kw: dict[str, Any] = {"code": code, "details": details, "status": r.status_code}
    s = r.status_code
    if code == "cohort_invalid":
        raise CohortInvalidError(
            list((details or {}).get("diagnostics", [])), source=source, code=code, status=s
        )
    if s == 401:
        raise AuthError(message, **kw)
    if s == 403:
        raise (BudgetExceededError if code == "budget_exceeded" else ForbiddenError)(message, **kw)
    if s == 404:
        raise NotFoundError(message, **kw)
    if s == 429:
        raise RateLimitedError(
            message, retry_after=_retry_after(r.headers.get("retry-after")), **kw
        )
    if s in (400, 422):
        raise InvalidRequestError(message, **kw)
    raise ClientError(message, **kw)


def _entry_id(body: bytes, media: str) -> str:
    """The `id` of an entry's text, to name it in the request (the server reads it again)."""
    import json as _json

    import yaml

    try:
        data = _json.loads(body) if media == "application/json" else yaml.safe_load(body)
    except (ValueError, yaml.YAMLError) as e:
        raise InvalidRequestError(f"the entry cannot be read: {e}", code="entry_invalid") from e
    rid = data.get("id") if isinstance(data, dict) else None
    if not isinstance(rid, str) or not rid:
        raise InvalidRequestError("the entry has no `id`", code="entry_invalid")
    return rid


# ---- formatting ---------------------------------------------------------------------------------


def _n(x: Any) -> str:
    """1240 -> '1 240' (Swedish thousands); '<10' stays as it is."""
    return f"{x:,}".replace(",", " ") if isinstance(x, int) else str(x)


def _released(x: Mapping[str, Any]) -> str:
    """'about 1 240 (1 170–1 310)', or '<10' for a suppressed count (either JSON form)."""
    c = count_columns(x)
    if c["suppressed"] or c["lower"] is None or c["upper"] is None:
        return str(c["display"])
    return f"about {_n(c['count'])} ({_n(int(c['lower']))}–{_n(int(c['upper']))})"


def _plan_fields(
    target: int,
    sites: Sequence[str],
    *,
    start: dt.date | str | None = None,
    site_starts: Mapping[str, dt.date | str] | None = None,
    capture: float = 1.0,
    consent: float = 1.0,
    screen_fail: float = 0.0,
    by: dt.date | str | None = None,
) -> dict[str, Any]:
    """An enrolment plan's fields as the plan route and a report's `plan` take them."""

    def day(d: dt.date | str | None) -> str | None:
        return d.isoformat() if isinstance(d, dt.date) else d

    return {"target": target, "sites": list(sites), "start": day(start),
            "site_starts": {k: day(v) for k, v in (site_starts or {}).items()},
            "capture": capture, "consent": consent, "screen_fail": screen_fail,
            "by": day(by)}  # fmt: skip


def _eps(x: float) -> str:
    return f"{x:g}"


# ---- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Validation:
    """What `Client.validate` answers: no data read, nothing charged."""

    ok: bool
    diagnostics: list[dict[str, Any]]
    query_hash: str | None = None
    steps: list[str] = field(default_factory=list)
    registers: list[str] = field(default_factory=list)
    source: str | None = field(default=None, repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.ok

    def raise_for_errors(self) -> Validation:
        """Raise `CohortInvalidError` if the cohort does not check; else return self."""
        if not self.ok:
            raise CohortInvalidError(self.diagnostics, source=self.source, status=None)
        return self

    def __repr__(self) -> str:
        if self.ok:
            return (
                f"Validation: ok ({len(self.steps)} steps: {', '.join(self.steps)}; "
                f"registers {', '.join(self.registers) or '-'}; query {(self.query_hash or '')[:16]})"
            )
        n = len(self.diagnostics)
        body = _diagnostics_text(self.diagnostics, self.source, sep="\n")
        return f"Validation: {n} problem{'s' if n != 1 else ''}\n{body}"


@dataclass(frozen=True)
class Budget:
    """A project's ε budget: `total`, `spent` and `left`, and the ε one release costs."""

    project: str
    total: float
    spent: float
    left: float
    epsilon_per_query: float

    def __repr__(self) -> str:
        return (
            f"Budget(project {self.project!r}: ε {_eps(self.spent)} of {_eps(self.total)} spent, "
            f"{_eps(self.left)} left; ε {_eps(self.epsilon_per_query)} per release)"
        )


@dataclass(frozen=True)
class Quote:
    """What `Client.quote` answers: what counting a cohort would cost the project now
    (`epsilon`: 0 when its answer is stored) and the budget left after. Nothing was read,
    charged or released."""

    project: str
    epsilon: float
    stored_answer: bool
    budget_left: float
    budget_left_after: float
    affordable: bool
    query_hash: str
    answer_key: str
    asks_left: int | None = None  # more asks of this shape the budget allows after this one

    def __repr__(self) -> str:
        cost = "nothing (stored answer)" if self.stored_answer else f"ε {_eps(self.epsilon)}"
        text = (
            f"Quote(project {self.project!r}: would cost {cost}; budget left ε "
            f"{_eps(self.budget_left)}, after ε {_eps(self.budget_left_after)}"
        )
        if self.asks_left is not None:
            text += f", enough for {self.asks_left} more such asks"
        return text + ("" if self.affordable else "; the budget is too small: refused") + ")"


@dataclass(frozen=True)
class CountResult:
    """A released count: the attrition, the breakdown and what it cost.

    Counts are noisy (differential privacy) with a 95% interval `lower`–`upper`; a count
    below the installation's threshold is suppressed: its `count` is None (<NA> in a
    DataFrame) and its `display` a string like ``"<10"``.
    """

    raw: dict[str, Any] = field(repr=False)

    @property
    def count(self) -> int | None:
        """The final count (an int, or None when suppressed: see `display`)."""
        return count_columns(self.raw)["count"]

    @property
    def suppressed(self) -> bool:
        """The final count is below the threshold."""
        return bool(count_columns(self.raw)["suppressed"])

    @property
    def display(self) -> str:
        """The final count as shown: ``"1240"``, or ``"<10"``."""
        return str(count_columns(self.raw)["display"])

    @property
    def interval(self) -> tuple[int, int] | None:
        """The final count's 95% interval, or None when suppressed."""
        c = count_columns(self.raw)
        return None if c["lower"] is None else (int(c["lower"]), int(c["upper"]))

    @property
    def attrition(self) -> pd.DataFrame:
        """One row per step: step, label, count, suppressed, lower, upper, display.

        `count`, `lower` and `upper` are nullable integers (pandas ``Int64``: <NA> when
        suppressed), so arithmetic works; `display` is the text (``"1240"``, ``"<10"``).
        """
        return attrition_frame(self.raw)

    def attrition_frame(self) -> pd.DataFrame:
        """The same as `attrition` (the name the engine's and use cases' results use)."""
        return self.attrition

    @property
    def dims(self) -> list[str]:
        """The breakdown's dimensions (e.g. ``["region", "sex"]``)."""
        return list(self.raw.get("dims") or [])

    @property
    def breakdown(self) -> pd.DataFrame:
        """One row per cell of the final cohort: the dimensions, then count, suppressed,
        lower, upper, display; ``res.breakdown["count"].sum()`` adds up the cells shown.

        A dimension's None is "unknown" (e.g. no hospital code).
        """
        return breakdown_frame(self.raw)

    def breakdown_frame(self) -> pd.DataFrame:
        """The same as `breakdown`."""
        return self.breakdown

    @property
    def tables(self) -> list[pd.DataFrame]:
        """Every released table (several `report by`, and the levels of a roll-up), in
        order; one table: ``[self.breakdown]``. ``table_dims`` gives each one's dimensions."""
        return table_frames(self.raw)

    @property
    def table_dims(self) -> list[list[str]]:
        if "tables" not in self.raw:
            return [self.dims] if self.dims else []
        return [list(t["dims"]) for t in self.raw["tables"]]

    @property
    def breakdown_note(self) -> str | None:
        return self.raw.get("breakdown_note")

    @property
    def epsilon_charged(self) -> float:
        """ε charged by this request (0 for a stored answer)."""
        return float(self.raw["epsilon_charged"])

    @property
    def budget_left(self) -> float:
        return float(self.raw["budget_left"])

    @property
    def stored_answer(self) -> bool:
        """True when the same question was asked before: the stored answer, free."""
        return bool(self.raw["stored_answer"])

    @property
    def receipt(self) -> dict[str, Any]:
        """The receipt signed by the installation: project, purpose, query_hash,
        data_release, answer_key, privacy parameters, epsilon, released_sha256, time,
        audit_seq, key_id, signature. Save it (``json.dump(res.raw, f)``) and check it
        with ``antal receipt verify FILE --url URL``."""
        return dict(self.raw["receipt"])

    @property
    def threshold(self) -> int | None:
        t = self.receipt.get("privacy", {}).get("threshold")
        return int(t) if t is not None else None

    def plot(self) -> Any:
        """The attrition funnel and each breakdown as an Altair chart (shown by a notebook)."""
        from antal.api.charts import plot

        return plot(self.raw)

    def _summary(self) -> list[str]:
        cost = (
            "stored answer, nothing charged"
            if self.stored_answer
            else f"ε charged {_eps(self.epsilon_charged)}"
        )
        r = self.receipt
        lines = [f"{cost}; budget left ε {_eps(self.budget_left)}"]
        if self.dims:
            cells = self.raw["breakdown"]
            hidden = sum(1 for c in cells if count_columns(c)["suppressed"])
            text = f"breakdown by {', '.join(self.dims)}: {len(cells)} cells"
            if hidden:
                text += f", {hidden} below the threshold (shown as <{self.threshold})"
            lines.append(text + " - see .breakdown")
        if self.breakdown_note:
            lines.append(self.breakdown_note)
        lines.append(
            f"receipt: query {str(r.get('query_hash', ''))[:16]}, data release {r.get('data_release')}"
        )
        return lines

    def __repr__(self) -> str:
        head = f"CountResult: {_released(self.raw)}"
        steps = self.raw["attrition"]
        width = max((len(s["label"]) for s in steps), default=5)
        body = [f"  {i:>2}  {s['label']:<{width}}  {_released(s)}" for i, s in enumerate(steps)]
        return "\n".join([head, *body, *("  " + x for x in self._summary())])

    def _repr_html_(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><td>{i}</td><td style='text-align:left'>{e(s['label'])}</td>"
            f"<td>{e(_released(s))}</td></tr>"
            for i, s in enumerate(self.raw["attrition"])
        )
        head = e(_released(self.raw))
        if self.interval:
            head += " (95% interval)"
        notes = "".join(f"<li>{e(x)}</li>" for x in self._summary())
        return (
            f"<div><p><b>Released count: {head}</b></p>"
            "<table><thead><tr><th>step</th><th style='text-align:left'>label</th>"
            f"<th>count (95% interval)</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<ul>{notes}</ul></div>"
        )


# ---- the client ---------------------------------------------------------------------------------


class Client:
    """A client of one antal server, for one user (a bearer token).

    `url` and `token` default to the environment variables ``ANTAL_URL`` and
    ``ANTAL_TOKEN``. `timeout` is seconds per request (counts on large extracts can take a
    while). With ``retry=True`` a request answered 429 (rate limited) is retried once
    after waiting the server's Retry-After (at most `max_retry_wait` seconds).
    `transport` is for tests (e.g. ``httpx.MockTransport``). An https server's certificate
    is verified against the system's authorities, and `ca_cert` (default: the environment
    variable ``ANTAL_CA_CERT``): a PEM file of an internal CA or a self-signed certificate.

    Use as a context manager, or call `close()`, to release the connection pool.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        retry: bool = False,
        max_retry_wait: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        ca_cert: str | Path | None = None,
    ) -> None:
        url = url or os.environ.get("ANTAL_URL")
        ca_cert = ca_cert or os.environ.get("ANTAL_CA_CERT")
        token = token or os.environ.get("ANTAL_TOKEN")
        if not url:
            raise ValueError("give the server's url (or set ANTAL_URL), e.g. http://127.0.0.1:8000")
        if not token:
            raise ValueError(
                "give a bearer token (or set ANTAL_TOKEN); an administrator issues one with "
                "`antal admin create-user ID` or `antal admin create-token ID`"
            )
        self.url = url.rstrip("/")
        self.retry = retry
        self.max_retry_wait = max_retry_wait
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": _USER_AGENT},
            timeout=timeout,
            transport=transport,
            verify=client_verify(None if ca_cert is None else Path(ca_cert)),
        )

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # -- lifecycle --

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- transport --

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        source: str | None = None,
        text: bool = False,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        serve: str = "antal serve",
    ) -> Any:
        for attempt in (0, 1):
            try:
                r = self._http.request(
                    method, path, json=json, params=params, content=content, headers=headers
                )
            except httpx.TimeoutException as e:
                raise ConnectionFailedError(
                    f"no answer from {self.url} in time ({e}); a larger `timeout` may help",
                    code="timeout",
                ) from e
            except httpx.TransportError as e:
                if (bad := untrusted(e)) is not None:  # waiting will not mend it: no retry
                    raise ConnectionFailedError(
                        f"the TLS certificate of {self.url} is not trusted ({bad.verify_message}): "
                        "give its certificate authority as ca_cert (ANTAL_CA_CERT, --ca-cert)",
                        code="tls_untrusted",
                    ) from e
                raise ConnectionFailedError(
                    f"cannot reach antal at {self.url}: {e} (is `{serve}` running?)",
                    code="unreachable",
                ) from e
            if r.status_code == 429 and self.retry and attempt == 0:
                wait = _retry_after(r.headers.get("retry-after"))
                if wait is not None and wait <= self.max_retry_wait:
                    time.sleep(wait)
                    continue
            _raise_for(r, source)
            return r.text if text else r.json()
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _cohort_body(cohort: CohortInput) -> tuple[dict[str, Any], str | None]:
        """The request body for a cohort, and its source text when it has one."""
        if isinstance(cohort, Path):
            cohort = cohort.read_text(encoding="utf-8")
        if isinstance(cohort, str):
            return {"cohort": cohort}, cohort
        if isinstance(cohort, Mapping):
            return {"ir": dict(cohort)}, None
        from antal.engine import builder, ir

        if isinstance(cohort, builder.Cohort):
            return {"ir": ir.to_json(cohort.ir)}, None
        if isinstance(cohort, ir.Cohort):
            return {"ir": ir.to_json(cohort)}, None
        raise TypeError(
            "a cohort is its text (str), a pathlib.Path to a .cohort file, its JSON IR (dict), "
            f"or an engine.builder.Cohort; got {type(cohort).__name__}"
        )

    # -- who am I --

    def me(self) -> dict[str, Any]:
        """The user of the token: id, name, role, registers (a holder's) and projects."""
        return self._request("GET", "/v1/me")

    def health(self) -> dict[str, Any]:
        """The server's /healthz answer (status and data release); needs no token."""
        return self._request("GET", "/healthz")

    # -- catalog --

    def search(self, q: str) -> pd.DataFrame:
        """Search registers, variables and codes: kind, register_id, name, description, code_system."""
        cols = ["kind", "register_id", "name", "description", "code_system"]
        hits = self._request("GET", "/v1/catalog/search", params={"q": q})
        for h in hits:  # a register hit is its own register (the server leaves it empty)
            if h.get("kind") == "register" and not h.get("register_id"):
                h["register_id"] = h.get("name")
        return pd.DataFrame(
            {c: pd.Series([h.get(c) for h in hits], dtype=object) for c in cols}, columns=cols
        )

    def registers(self) -> pd.DataFrame:
        """The registers of the catalog, one row each."""
        rows = [
            {
                "id": r["id"],
                "title": (r.get("title") or {}).get("en"),
                "title_sv": (r.get("title") or {}).get("sv"),
                "holder": r.get("holder"),
                "kind": r.get("kind"),
                "from_year": (r.get("coverage") or {}).get("from_year"),
                "to_year": (r.get("coverage") or {}).get("to_year"),
                "events": r.get("events", []),
            }
            for r in self._request("GET", "/v1/catalog/registers")
        ]
        cols = ["id", "title", "title_sv", "holder", "kind", "from_year", "to_year", "events"]
        df = pd.DataFrame(rows, columns=cols)
        for col in ("from_year", "to_year"):
            df[col] = df[col].astype("Int64")
        return df

    def register(self, register_id: str) -> dict[str, Any]:
        """One register's full catalog entry (variables, code systems, access conditions)."""
        return self._request("GET", f"/v1/catalog/registers/{register_id}")

    def catalog_export(self, fmt: str = "turtle", register: str | None = None) -> str:
        """The catalog (or one register) as HealthDCAT-AP: Turtle or JSON-LD text."""
        params: dict[str, Any] = {"format": fmt}
        if register is not None:
            params["register"] = register
        return self._request("GET", "/v1/catalog/export", params=params, text=True)

    def availability(self, register_id: str) -> dict[str, Any]:
        """A register's released availability counts (persons per code and year)."""
        return self._request("GET", f"/v1/catalog/registers/{register_id}/availability")

    def release_availability(self, register_id: str) -> dict[str, Any]:
        """Release a register's availability for this data release (its holder or an admin)."""
        return self._request("POST", f"/v1/catalog/registers/{register_id}/availability")

    def register_data(self, register_id: str) -> dict[str, Any] | None:
        """What the server's catalog says of a register's data: its data release and
        extraction date, the period its extract covers, how far it is final (the lag)."""
        for r in self._request("GET", "/v1/catalog/registers"):
            if r.get("id") == register_id:
                return r.get("data")
        raise NotFoundError(f"unknown register '{register_id}'", code="not_found", status=404)

    def publish_catalog_entry(
        self, entry: str | Path | Mapping[str, Any], register_id: str | None = None
    ) -> dict[str, Any]:
        """Publish a register's catalog entry (a holder's own register, or as an admin): a
        path to a .yaml/.yml/.json file, YAML text, or a dict. The server reads it safely,
        checks it against its data and answers the new version: `version`, `published_by`,
        `published`, `summary` and `changes` (the structural diff from the version before).
        An entry that does not validate raises `InvalidRequestError` whose `details` name
        the field, line and column; another holder's register raises `ForbiddenError`."""
        if isinstance(entry, Path):
            media = "application/json" if entry.suffix == ".json" else "application/yaml"
            body = entry.read_bytes()
        elif isinstance(entry, str):
            media, body = "application/yaml", entry.encode()
        elif isinstance(entry, Mapping):
            import json as _json

            media, body = "application/json", _json.dumps(dict(entry)).encode()
        else:
            raise TypeError(f"an entry is a Path, YAML text or a dict, not {type(entry).__name__}")
        rid = register_id or _entry_id(body, media)
        return self._request(
            "PUT", f"/v1/catalog/registers/{rid}", content=body,
            headers={"Content-Type": media},
        )  # fmt: skip

    def catalog_versions(self, register_id: str) -> pd.DataFrame:
        """The published versions of a register's entry, oldest first: version,
        published_by, published, summary (what changed)."""
        cols = ["version", "published_by", "published", "summary"]
        rows = self._request("GET", f"/v1/catalog/registers/{register_id}/versions")
        return pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)

    def catalog_version(self, register_id: str, version: int) -> dict[str, Any]:
        """One published version: who, when, what changed, and `entry` as it was then."""
        return self._request("GET", f"/v1/catalog/registers/{register_id}/versions/{version}")

    def holder_overview(self, register_id: str | None = None) -> list[dict[str, Any]]:
        """For each of your registers (a holder's own): the projects approved for it and
        their purposes, the ε they spent on queries reading it and the audit entries
        touching it, never an answer."""
        if register_id is not None:
            return [self._request("GET", f"/v1/holder/registers/{register_id}")]
        return self._request("GET", "/v1/holder/registers")

    # -- cohorts --

    def validate(self, cohort: CohortInput) -> Validation:
        """Parse and check a cohort against the catalog: no data read, nothing charged.

        A cohort that does not check is *not* an exception here: look at `.ok` and
        `.diagnostics`, or call `.raise_for_errors()`.
        """
        body, source = self._cohort_body(cohort)
        out = self._request("POST", "/v1/cohorts/validate", json=body, source=source)
        return Validation(
            ok=bool(out["ok"]),
            diagnostics=list(out.get("diagnostics", [])),
            query_hash=out.get("query_hash"),
            steps=list(out.get("steps", [])),
            registers=list(out.get("registers", [])),
            source=source,
        )

    def compile(self, cohort: CohortInput, dialect: Dialect = "duckdb") -> str:
        """The one SQL statement a cohort compiles to (no data read, nothing charged)."""
        body, source = self._cohort_body(cohort)
        out = self._request(
            "POST", "/v1/cohorts/compile", json={**body, "dialect": dialect}, source=source
        )
        return str(out["sql"])

    def quote(self, project: str, cohort: CohortInput) -> Quote:
        """What counting a cohort would cost the project now: 0 when the project asked the
        same question before (its stored answer), else its ε; and the budget left after.
        No data is read and nothing is charged or released (rate-limited like validate)."""
        body, source = self._cohort_body(cohort)
        q = self._request("POST", f"/v1/projects/{project}/quote", json=body, source=source)
        return Quote(
            project=q["project"],
            epsilon=float(q["epsilon"]),
            stored_answer=bool(q["stored_answer"]),
            budget_left=float(q["budget_left"]),
            budget_left_after=float(q["budget_left_after"]),
            affordable=bool(q["affordable"]),
            query_hash=q["query_hash"],
            answer_key=q["answer_key"],
            asks_left=q.get("asks_left"),
        )

    def public_key(self) -> dict[str, Any]:
        """The installation's receipt public key: algorithm, key_id, public_key (base64 of
        its raw bytes) and pem."""
        return self._request("GET", "/v1/receipts/public-key")

    def count(self, project: str, cohort: CohortInput) -> CountResult:
        """Count a cohort for a project: released with noise, charged to its ε budget.

        `cohort` is cohort-language text, a `pathlib.Path` to a .cohort file, the JSON IR
        (a dict), or an `engine.builder.Cohort`. The same question asked again (even
        spelled differently) returns the stored answer and costs nothing.
        """
        body, source = self._cohort_body(cohort)
        return CountResult(
            self._request("POST", f"/v1/projects/{project}/count", json=body, source=source)
        )

    def forecast(
        self, project: str, cohort: CohortInput, months: int = 18, by: str | None = None
    ) -> dict[str, Any]:
        """Recruitment rate and forecast (docs/forecast.md): the persons newly eligible per
        month, released as one query charged like a count with tables, and the forecast of
        the next `months` months (per `by` group too: hospital, region, sjukvardsregion)."""
        body, source = self._cohort_body(cohort)
        body = {**body, "months": months, "by": by}
        return self._request("POST", f"/v1/projects/{project}/forecast", json=body, source=source)

    def plan(
        self,
        project: str,
        cohort: CohortInput,
        target: int,
        sites: Sequence[str],
        *,
        start: dt.date | str | None = None,
        site_starts: Mapping[str, dt.date | str] | None = None,
        capture: float = 1.0,
        consent: float = 1.0,
        screen_fail: float = 0.0,
        by: dt.date | str | None = None,
    ) -> dict[str, Any]:
        """An enrolment plan (docs/sponsor.md) at `sites` (hospital names or codes): the
        cohort, which asks `report by hospital`, counted like `count` (free when its answer
        is stored), and from its released site table the expected enrolment per site and
        month, the time to reach `target` (median, 90% interval) and the chance of reaching
        it `by` a date. The plan itself costs nothing."""
        body, source = self._cohort_body(cohort)
        body = {**body, **_plan_fields(target, sites, start=start, site_starts=site_starts,
                                       capture=capture, consent=consent,
                                       screen_fail=screen_fail, by=by)}  # fmt: skip
        return self._request("POST", f"/v1/projects/{project}/plan", json=body, source=source)

    def report(
        self,
        project: str,
        cohort: CohortInput,
        forecast_months: int | None = None,
        plan: Mapping[str, Any] | None = None,
    ) -> str:
        """The feasibility report of a cohort for a project: one self-contained HTML page
        (no script, no network needed to view it) to save and send, e.g.
        ``Path("report.html").write_text(c.report("t2d", text), encoding="utf-8")``.

        Released and charged like `count`: free when the project asked the same cohort
        before. With `forecast_months`, the report also shows the forecast of that many
        months, computed by the server from the cohort's released monthly series (one
        more release, as `forecast`). With `plan` (the arguments of `plan` after the
        cohort, e.g. ``{"target": 150, "sites": ["01001", "12001"], "capture": 0.3}``),
        it also shows the enrolment plan computed from the cohort's released site table
        (no further charge). Every number in it is one the server released or computed
        from released numbers.
        """
        body, source = self._cohort_body(cohort)
        if forecast_months is not None:
            body["forecast_months"] = forecast_months
        if plan is not None:
            body["plan"] = _plan_fields(**plan)
        return str(
            self._request(
                "POST", f"/v1/projects/{project}/report", json=body, source=source, text=True
            )
        )

    # -- projects --

    def budget(self, project: str) -> Budget:
        """The project's ε budget: total, spent, left."""
        b = self._request("GET", f"/v1/projects/{project}/budget")
        return Budget(
            project=b["project"],
            total=float(b["total"]),
            spent=float(b["spent"]),
            left=float(b["left"]),
            epsilon_per_query=float(b["epsilon_per_query"]),
        )

    def queries(self, project: str) -> pd.DataFrame:
        """The project's earlier queries with their stored answers, one row each.

        Columns: answer_key, first_asked (in this project), title, count (the final
        released count: nullable Int64), suppressed, lower, upper, display,
        epsilon_of_answer (what the answer cost when it was first released, perhaps by
        another project: stored answers are shared by projects of the same purpose), dims,
        query (the canonical IR), answer (as released) and receipt (the project's signed
        receipt, None for an answer stored before receipts).
        """
        rows = []
        for q in self._request("GET", f"/v1/projects/{project}/queries"):
            a = q.get("answer") or {}
            steps = a.get("attrition") or []
            last = count_columns(steps[-1]) if steps else dict.fromkeys(COUNT_COLUMNS)
            rows.append(
                {
                    "answer_key": q["answer_key"],
                    "first_asked": q["first_asked"],
                    "title": (q.get("query") or {}).get("title"),
                    **last,
                    "epsilon_of_answer": a.get("epsilon"),
                    "dims": a.get("dims", []),
                    "query": q.get("query"),
                    "answer": a,
                    "receipt": q.get("receipt"),
                }
            )
        cols = ["answer_key", "first_asked", "title", *COUNT_COLUMNS, "epsilon_of_answer",
                "dims", "query", "answer", "receipt"]  # fmt: skip
        df = pd.DataFrame(rows, columns=cols)
        for col in ("count", "lower", "upper"):
            df[col] = df[col].astype("Int64")
        df["suppressed"] = df["suppressed"].astype(bool)
        return df

    def query(self, project: str, answer_key: str) -> dict[str, Any]:
        """One earlier query of the project and its stored answer (by receipt answer_key)."""
        return self._request("GET", f"/v1/projects/{project}/queries/{answer_key}")

    # -- a hub of a federated network (docs/federation.md) --

    def hub_submit(
        self,
        project: str,
        cohort: str | Path,
        *,
        nodes: list[str] | None = None,
        deadline_seconds: float | None = None,
        wait: float = 0,
        retry_seconds: float = HUB_RETRY_SECONDS,
        say: Callable[[str], None] | None = None,
    ) -> HubResult:
        """Submit a cohort to a hub (this client's url is the hub's): every node answers
        it under its own privacy rules. The hub accepts it at once with the query's id;
        then this waits up to `wait` seconds for the answers by asking for the query
        (`hub_result`), so a hub restarted meanwhile loses no id: it is asked again for up
        to `retry_seconds` (each retry told to `say`, default a logged warning), and if it
        stays away the `ConnectionFailedError` carries the `query_id`. A submission is
        retried only while its connection is refused (the hub cannot have taken it). The
        result may be partial (`.complete`, `.missing`). `.nodes` and `.total` are
        DataFrames."""
        from antal.api.federation.client import HubResult

        text = cohort.read_text(encoding="utf-8") if isinstance(cohort, Path) else cohort
        body: dict[str, Any] = {"project": project, "cohort": text, "wait": 0}
        if nodes is not None:
            body["nodes"] = list(nodes)
        if deadline_seconds is not None:
            body["deadline_seconds"] = deadline_seconds
        res = HubResult(self._hub_retrying(
            lambda: self._request("POST", "/v1/hub/queries", json=body, source=text,
                                  serve=_HUB_SERVE),
            retry_seconds, say, refused_only=True,
        ))  # fmt: skip
        if wait > 0 and not res.complete:
            return self.hub_result(res.id, wait=wait, retry_seconds=retry_seconds, say=say)
        return res

    def hub_result(
        self,
        query_id: str,
        *,
        wait: float = 0,
        retry_seconds: float = HUB_RETRY_SECONDS,
        say: Callable[[str], None] | None = None,
    ) -> HubResult:
        """A hub query's state; `wait` seconds for it to complete (late answers count). A
        hub that cannot be reached (restarting) is asked again for up to `retry_seconds`."""
        from antal.api.federation.client import HubResult

        end = time.monotonic() + wait

        def ask() -> Any:
            left = max(0.0, end - time.monotonic())
            return self._request("GET", f"/v1/hub/queries/{query_id}", params={"wait": left},
                                 serve=_HUB_SERVE)  # fmt: skip

        try:
            return HubResult(self._hub_retrying(ask, retry_seconds, say))
        except ConnectionFailedError as e:
            e.query_id = query_id
            e.message = (f"{e.message}; query {query_id} was accepted and is kept by the hub: "
                         f"ask for it again (Client.hub_result, `antal hub status {query_id}`)")  # fmt: skip
            e.args = (e.message,)
            raise

    def _hub_retrying(
        self,
        call: Callable[[], Any],
        retry_seconds: float,
        say: Callable[[str], None] | None,
        *,
        refused_only: bool = False,
    ) -> Any:
        """`call()`, again with backoff while the hub cannot be reached (a restart), for at
        most `retry_seconds` after the first failure. `refused_only`: retry only when the
        connection was never made (a request that may have reached the hub is not sent
        twice); otherwise a proxy's 502, 503 or 504 in front of a restarting hub too."""
        give_up: float | None = None
        backoff = 0.5
        while True:
            try:
                return call()
            except ClientError as e:
                cause = e.__cause__
                if isinstance(e, ConnectionFailedError):
                    again = e.code != "tls_untrusted" and (
                        not refused_only
                        or isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout)
                    )
                else:
                    again = not refused_only and e.status in (502, 503, 504)
                give_up = give_up if give_up is not None else time.monotonic() + retry_seconds
                if not again or time.monotonic() + backoff > give_up:
                    raise
                why = type(cause).__name__ if cause is not None else f"HTTP {e.status}"
                (say or _log.warning)(
                    f"the hub at {self.url} cannot be reached ({why}); retrying in {backoff:g} s"
                )
                time.sleep(backoff)
                backoff = min(_HUB_MAX_BACKOFF, backoff * 2)

    def hub_nodes(self) -> pd.DataFrame:
        """The hub's nodes: name, the registers each holds, when it was last seen, and its
        status (`reachable`, or `unreachable`: not heard from within the hub's heartbeat)."""
        rows = self._request("GET", "/v1/hub/nodes", serve=_HUB_SERVE)
        return pd.DataFrame(rows, columns=["name", "holds", "last_seen", "status"])
