"""Service configuration: a YAML file (`antal serve --config FILE` or ANTAL_CONFIG) and
environment variables (ANTAL_*, which win over the file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

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
    threads: int | None = Field(None, description="DuckDB threads (default: all cores)")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        cfg = os.environ.get("ANTAL_CONFIG")
        if cfg:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=cfg))
        return tuple(sources)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    if config is not None:
        os.environ["ANTAL_CONFIG"] = str(config)
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
