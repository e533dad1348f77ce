"""Service configuration: a YAML file (`antal serve --config FILE` or ANTAL_CONFIG) and
environment variables (ANTAL_*, which win over the file); command-line options win over both."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs
import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from antal.engine.limits import ENGINE_MEMORY, QUERY_SECONDS

__all__ = ["Settings", "load_settings"]


def _default_store() -> str:
    return str(Path(platformdirs.user_data_dir("antal")) / "server.sqlite")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANTAL_", extra="forbid")

    data: Path | None = Field(None, description="directory of canonical Parquet extracts")
    installation: Path | None = Field(None, description="installation config (YAML)")
    store: str = Field(
        default_factory=_default_store, description="SQLite path or postgresql:// URL"
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
