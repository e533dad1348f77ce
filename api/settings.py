"""One settings model for the command line and the server.

Every command (`antal count`, `antal data check`, `antal audit verify`, `antal admin ...`,
`antal serve`) reads the same settings, in increasing precedence: a YAML file (`antal serve
--config FILE`, or the file named by ANTAL_CONFIG), ANTAL_* environment variables, and
command-line options. So one store (`store`, ANTAL_STORE) is the default of all of them,
and the backend, threads, memory limit and time budget reach the database whichever face
runs the count. The privacy parameters are the installation's (its file's typed `privacy:`
section, `antal.privacy.PrivacyParams`), not a setting: they belong to the data holder.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import platformdirs
import yaml
from pydantic import AfterValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from antal.catalog.vocabulary import BackendName
from antal.engine.limits import ENGINE_MEMORY, QUERY_SECONDS

__all__ = [
    "AUDIT_ANCHOR_FILE",
    "FORWARDED_HELP",
    "METRICS_TOKEN_HELP",
    "SIGNING_KEY_FILE",
    "STORE_FILE",
    "TLS_CERT_HELP",
    "TLS_KEY_HELP",
    "Settings",
    "TrustedProxies",
    "default_audit_anchor",
    "default_signing_key",
    "default_store",
    "load_settings",
]

STORE_FILE = "store.sqlite"  # the one default store, in the user data directory
SIGNING_KEY_FILE = "signing-key.pem"  # the installation's receipt key, beside a SQLite store
AUDIT_ANCHOR_FILE = "audit-anchor.jsonl"  # the audit log's signed heads, beside it too


def default_store() -> str:
    """The store every command uses when neither `--store` nor ANTAL_STORE says otherwise."""
    return str(Path(platformdirs.user_data_dir("antal")) / STORE_FILE)


def default_signing_key(store: str) -> Path:
    """The receipt signing key when `signing_key` is not set: a file beside a SQLite store
    (`store.sqlite` → `store.sqlite.signing-key.pem`), or for a PostgreSQL store
    `signing-key.pem` in the user data directory. Either is made (mode 0600) on first use."""
    return _beside(store, SIGNING_KEY_FILE)


def default_audit_anchor(store: str) -> Path:
    """The audit anchor when `audit_anchor` is not set: beside a SQLite store
    (`store.sqlite` → `store.sqlite.audit-anchor.jsonl`), or for a PostgreSQL store a file
    in the user data directory named after the database (its host, port and name, never
    its password): each store's log has its own anchor, as each store has its own heads."""
    if store.startswith(("postgresql://", "postgres://")):
        u = urlsplit(store)
        where = f"{u.hostname or ''}:{u.port or ''}{u.path}"
        tag = hashlib.sha256(where.encode()).hexdigest()[:12]
        return _beside(store, AUDIT_ANCHOR_FILE.replace(".jsonl", f"-{tag}.jsonl"))
    return _beside(store, AUDIT_ANCHOR_FILE)


def _beside(store: str, name: str) -> Path:
    if store.startswith(("postgresql://", "postgres://")):
        return Path(platformdirs.user_data_dir("antal")) / name
    path = Path(store.removeprefix("sqlite:///"))
    return path.with_name(f"{path.name}.{name}")


def _trusted_proxies(value: str | None) -> str | None:
    """`forwarded_allow_ips`: addresses or networks (CIDR) separated by commas, or `*`;
    each one checked here, since uvicorn takes anything else as a literal that matches
    nothing (a typo would silently leave the proxy untrusted, or trust what it meant not)."""
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    for item in items:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item) if "/" in item else ipaddress.ip_address(item)
        except ValueError:
            raise ValueError(
                f"{item!r} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/24, *)"
            ) from None
    return ",".join(items) or None


# The proxies whose X-Forwarded-For names the client (uvicorn's `forwarded_allow_ips`).
# None: nobody's; the client is the socket's peer. uvicorn's own default believes the
# header from 127.0.0.1, so a process on the machine chose the address it was throttled by.
TrustedProxies = Annotated[str | None, AfterValidator(_trusted_proxies)]
FORWARDED_HELP = (
    "proxies whose X-Forwarded-For names the client: addresses or CIDR networks, comma-"
    "separated, or * (any peer: only if the port is reachable through the proxy alone); "
    "default none: the client address is the socket's"
)

TLS_CERT_HELP = (
    "TLS certificate (PEM, the chain after it) the server answers https with; with tls_key. "
    "Default none: plain http (on loopback, or behind a reverse proxy that terminates TLS)"
)
TLS_KEY_HELP = "the TLS certificate's private key (PEM, unencrypted, mode 0600)"
METRICS_TOKEN_HELP = (
    "a bearer token that may read GET /metrics from beyond loopback (a Prometheus on "
    "another machine); default none: /metrics answers loopback clients only"
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANTAL_", extra="forbid")

    data: Path | None = Field(None, description="directory of canonical Parquet extracts")
    installation: Path | None = Field(None, description="installation config (YAML)")
    store: str = Field(
        default_factory=default_store, description="SQLite path or postgresql:// URL"
    )
    signing_key: Path | None = Field(
        None,
        description="the installation's receipt signing key (Ed25519, PEM, mode 0600; made on "
        "first use); default: beside a SQLite store, or in the user data directory",
    )
    audit_anchor: Path | None = Field(
        None,
        description="append-only file (JSON lines, mode 0600) of the audit log's signed "
        "heads, outside the store; default: beside a SQLite store, or in the user data directory",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    requests_per_minute: int = Field(240, ge=1, description="per user, all routes")
    counts_per_minute: int = Field(30, ge=1, description="per user, fresh and stored counts")
    checks_per_minute: int = Field(
        120, ge=1, description="per user: validate, compile and catalog search (no charge)"
    )
    auth_failures_per_minute: int = Field(
        20, ge=1, description="per client address: failed authentications before 429"
    )
    auth_failures_global_per_minute: int = Field(
        100, ge=1, description="all client addresses together: failed authentications before 429"
    )
    forwarded_allow_ips: TrustedProxies = Field(None, description=FORWARDED_HELP)
    tls_cert: Path | None = Field(None, description=TLS_CERT_HELP)
    tls_key: Path | None = Field(None, description=TLS_KEY_HELP)
    metrics_token: str | None = Field(None, min_length=16, description=METRICS_TOKEN_HELP)
    backend: BackendName | None = Field(
        None,
        description="the engine counts run on; default: by where the extracts are (duckdb "
        "for Parquet and DuckDB files, postgres for a PostgreSQL schema); spark reads Parquet",
    )
    threads: int | None = Field(None, ge=1, description="DuckDB threads (default: all cores)")
    memory_limit: str = Field(
        ENGINE_MEMORY,
        pattern=r"^[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB memory limit, e.g. 4GB",
    )
    query_seconds: float = Field(
        QUERY_SECONDS, gt=0, le=3600, description="time budget of one count on the database"
    )


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the file (if any), then the environment, then `overrides` (not None)."""
    path = config or os.environ.get("ANTAL_CONFIG")
    from_file: dict[str, Any] = {}
    if path:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
        from_file = loaded
    # init values outrank the environment in pydantic-settings: pass only the file's
    # values that no ANTAL_* variable sets, so that the environment wins over the file
    kept = {k: v for k, v in from_file.items() if f"ANTAL_{k.upper()}" not in os.environ}
    return Settings(**kept, **{k: v for k, v in overrides.items() if v is not None})
