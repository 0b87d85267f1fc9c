"""All of supportbot's settings, in one place.

Values come from (highest first): CLI flags (passed as overrides), `SUPPORTBOT_*`
environment variables, a `.env` file in the working directory, then the defaults below.
Nothing else in the code base reads `os.environ` for configuration.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SUPPORTBOT_", env_file=".env", extra="ignore", validate_default=True
    )

    environment: Literal["development", "production", "test"] = "development"
    home: Path = Field(Path("var"), description="data directory: SQLite file, model cache, logs")
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file under home"
    )
    sqlite_busy_timeout_ms: int = Field(5000, ge=0)

    # Model references: a packaged short name (see bot.model_refs), a local directory or
    # a Hugging Face hub id.
    sentiment_model: str = "sentiment-en"
    sentiment_model_zh: str | None = Field(
        "sentiment-zh", description="model for Chinese texts; empty: use sentiment_model for all"
    )
    chat_model: str = "smollm2-135m"
    embedding_model: str = "minilm-l6"

    model_cache: Path | None = Field(None, description="converted packaged models; default: <home>/models")
    api_keys_file: Path | None = None

    max_texts_per_request: int = Field(256, ge=1)
    max_text_chars: int = Field(5000, ge=1)
    inference_batch_size: int = Field(32, ge=1)
    threads: int | None = Field(None, ge=1, description="torch threads; default: all cores")
    ui: bool = True

    @field_validator("sentiment_model_zh", mode="before")
    @classmethod
    def _empty_is_none(cls, v):
        return None if v in ("", "none", "None") else v

    @property
    def model_cache_dir(self) -> Path:
        return self.model_cache or self.home / "models"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'supportbot.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_with(**overrides) -> Settings:
    """Settings from the environment with CLI flags on top (None means: not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**given)
