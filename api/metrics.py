"""`GET /metrics` of the service and the hub, in Prometheus' text exposition format
(version 0.0.4), written here: a few counters and one histogram need no client library.

    app.add_middleware(MetricsMiddleware, metrics=metrics)   # the outermost: sees every answer
    metrics.error(code)                                      # antal.api.routes.deps.error_response

What is counted: requests by method, route *template* (`/v1/hub/queries/{qid}`, never a
query id; a path no route matches is `other`) and status; their durations by route; the
error codes answered (`budget_exceeded`, `register_not_approved`, ...: the refusals). The
hub adds, read from its store at each scrape, its queries, its tasks by state and its
nodes by reachability. Nothing per person, per project or per user, and no cohort text.

Who may read it (`metrics_allowed`): a client on loopback (a Prometheus or node exporter
on the machine), or one sending the `metrics_token` setting as a bearer token; anyone
else is answered 403. Request counts are not personal data, but which routes a region's
researchers use, and how often, is not for the internet.
"""

from __future__ import annotations

import bisect
import contextvars
import hmac
import ipaddress
import threading
import time
from collections import Counter
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONTENT_TYPE",
    "METRICS_REFUSED",
    "Metrics",
    "MetricsMiddleware",
    "family",
    "metrics_allowed",
    "render",
    "sample",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_REFUSED = "/metrics answers clients on loopback, or the bearer of the metrics_token setting"
# seconds: a check answers in milliseconds, a count in seconds, a long-poll in a minute
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

# the Metrics of the app answering the current request: error_response counts its code
_current: contextvars.ContextVar[Metrics | None] = contextvars.ContextVar(
    "antal_metrics", default=None
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def sample(name: str, value: float, **labels: str) -> str:
    """One line `name{label="value",...} value` of the text format."""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    number = str(int(value)) if float(value).is_integer() else repr(float(value))
    return f"{name}{{{inner}}} {number}" if inner else f"{name} {number}"


def family(name: str, kind: str, help_: str, samples: Iterable[str]) -> list[str]:
    """A metric family: its `# HELP` and `# TYPE` lines, then its samples."""
    return [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", *samples]


class Metrics:
    """One process's request counters and duration histogram (thread-safe: sync routes
    run in a thread pool)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # antal (the service) or antal_hub
        self.started = time.time()
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str, str]] = Counter()
        self._errors: Counter[str] = Counter()
        self._buckets: dict[str, list[int]] = {}
        self._sums: Counter[str] = Counter()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, str(status))] += 1
            counts = self._buckets.setdefault(route, [0] * (len(BUCKETS) + 1))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self._sums[route] += seconds

    def error(self, code: str) -> None:
        with self._lock:
            self._errors[code] += 1

    @staticmethod
    def count_error(code: str) -> None:
        """Count an error answered to the current request (none outside a request)."""
        current = _current.get()
        if current is not None:
            current.error(code)

    def lines(self) -> list[str]:
        p = self.prefix
        with self._lock:
            requests = sorted(self._requests.items())
            errors = sorted(self._errors.items())
            buckets = {r: list(c) for r, c in sorted(self._buckets.items())}
            sums = dict(self._sums)
        out = family(f"{p}_http_requests_total", "counter",
                     "HTTP requests answered, by method, route template and status",
                     (sample(f"{p}_http_requests_total", n, method=m, route=r, status=s)
                      for (m, r, s), n in requests))  # fmt: skip
        out += family(f"{p}_http_errors_total", "counter",
                      "error answers by their code (refusals among them: budget_exceeded, "
                      "register_not_approved, ...)",
                      (sample(f"{p}_http_errors_total", n, code=c) for c, n in errors))  # fmt: skip
        hist = []
        for route, counts in buckets.items():
            running = 0
            for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                running += n
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                hist.append(sample(f"{p}_http_request_duration_seconds_bucket", running,
                                   route=route, le=le))  # fmt: skip
            hist.append(sample(f"{p}_http_request_duration_seconds_sum", sums[route], route=route))
            hist.append(sample(f"{p}_http_request_duration_seconds_count", running, route=route))
        out += family(f"{p}_http_request_duration_seconds", "histogram",
                      "seconds from a request's arrival to its answer's start, by route", hist)  # fmt: skip
        out += family(f"{p}_process_start_time_seconds", "gauge",
                      "when this process started (Unix time)",
                      [sample(f"{p}_process_start_time_seconds", round(self.started))])  # fmt: skip
        return out


def render(lines: Iterable[str]) -> Response:
    return Response("\n".join(lines) + "\n", media_type=CONTENT_TYPE)


def metrics_allowed(request: Request, token: str | None) -> bool:
    """A loopback client, or the bearer of the metrics token (compared in constant time)."""
    host = request.client.host if request.client else ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    sent = request.headers.get("authorization", "")
    scheme, _, credential = sent.partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(credential.strip().encode(), str(token).encode())
    )


class MetricsMiddleware:
    """Pure ASGI: times each HTTP request to its answer's start and counts it by the route
    template that answered (so a long-poll counts when it answers, not when it ends)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # an app that fails before answering
        seen = False

        async def sending(message: Message) -> None:
            nonlocal status, seen
            if message["type"] == "http.response.start" and not seen:
                seen = True
                status = int(message["status"])
                self._observe(scope, status, time.perf_counter() - start)
            await send(message)

        token = _current.set(self.metrics)
        try:
            await self.app(scope, receive, sending)
        finally:
            _current.reset(token)
            if not seen:
                self._observe(scope, status, time.perf_counter() - start)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "other"  # never the raw path: ids
        self.metrics.observe(scope.get("method", ""), template, status, seconds)
