"""The hub's settings: its store, address and the timing of its queue.

Read like the service's (antal.api.settings): a YAML file (`antal hub serve --config`),
then ANTAL_HUB_* environment variables, then command-line options."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs
import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from antal.api.settings import (
    FORWARDED_HELP,
    METRICS_TOKEN_HELP,
    TLS_CERT_HELP,
    TLS_KEY_HELP,
    TrustedProxies,
)
from antal.engine.limits import (
    HUB_DEADLINE_SECONDS,
    HUB_MAX_WAIT_SECONDS,
    HUB_MIN_NODES_SHOWN,
)

__all__ = ["HUB_STORE_FILE", "HubSettings", "default_hub_store", "load_hub_settings"]

HUB_STORE_FILE = "hub.sqlite"


def default_hub_store() -> str:
    return str(Path(platformdirs.user_data_dir("antal")) / HUB_STORE_FILE)


class HubSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANTAL_HUB_", extra="forbid")

    store: str = Field(
        default_factory=default_hub_store,
        description="the hub's store: SQLite path or postgresql:// URL (not a node's store)",
    )
    host: str = "127.0.0.1"
    port: int = 8100
    deadline_seconds: float = Field(
        HUB_DEADLINE_SECONDS, gt=0, le=7 * 86400,
        description="default time a query waits for its nodes before it is answered partially",
    )  # fmt: skip
    max_wait_seconds: float = Field(
        HUB_MAX_WAIT_SECONDS, gt=0, le=600, description="the longest one long-poll request waits"
    )
    heartbeat_seconds: float = Field(
        60.0, ge=2, le=3600,
        description="a node not heard from for this long (a poll for work, an acknowledgement "
        "while it counts, an answer) is shown `unreachable`; a node's long-poll is held at "
        "most half of it",
    )  # fmt: skip
    min_nodes_shown: int = Field(
        HUB_MIN_NODES_SHOWN, ge=1,
        description="per-node counts are shown only when at least this many nodes report "
        "a count above their threshold (otherwise the total only)",
    )  # fmt: skip
    requests_per_minute: int = Field(600, ge=1, description="per researcher, all routes")
    auth_failures_per_minute: int = Field(20, ge=1, description="per client address")
    auth_failures_global_per_minute: int = Field(
        100, ge=1, description="all client addresses together"
    )
    forwarded_allow_ips: TrustedProxies = Field(None, description=FORWARDED_HELP)
    tls_cert: Path | None = Field(None, description=TLS_CERT_HELP)
    tls_key: Path | None = Field(None, description=TLS_KEY_HELP)
    metrics_token: str | None = Field(None, min_length=16, description=METRICS_TOKEN_HELP)


def load_hub_settings(config: Path | None = None, **overrides: Any) -> HubSettings:
    """Settings from the file (if any), then ANTAL_HUB_* variables, then `overrides`."""
    from_file: dict[str, Any] = {}
    if config:
        loaded = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config}: expected a mapping of settings")
        from_file = loaded
    kept = {k: v for k, v in from_file.items() if f"ANTAL_HUB_{k.upper()}" not in os.environ}
    return HubSettings(**kept, **{k: v for k, v in overrides.items() if v is not None})
