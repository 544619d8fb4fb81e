"""Typed settings from the environment / .env (built in main(), never at import)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr | None = None
    telegram_api_base: str | None = None  # self-hosted / local Bot API server
    database_url: str = "sqlite:///data/yichuang.db"
    catalog_dir: Path | None = None  # None: the packaged sample catalog
    log_level: str = "INFO"
    log_format: str = "plain"  # "json": one JSON object per line (bot/logsetup.py)
    redis_url: str | None = None
    # Key of the case-lookup factor hashes (models/privacy.py). Unset: data/factor.key, created on
    # first start; back it up apart from the database (docs/operations.md).
    factor_secret: SecretStr | None = None
    factor_key_file: Path = Path("data/factor.key")

    webhook_url: str | None = None  # set: webhook mode instead of long polling
    webhook_secret: SecretStr | None = None
    webhook_path: str = "/telegram/webhook"
    web_host: str = "127.0.0.1"  # where the webhook (and API) server listens
    web_port: int = 8080
    web_workers: int = Field(default=1, ge=1, le=64)  # webhook mode: processes serving web_port
    # Connections Telegram may open to the webhook at once (setWebhook; Telegram's own default is
    # 40). Each carries one update at a time until answered, so this caps updates in progress: the
    # most Telegram allows, for the rush after an announcement.
    webhook_max_connections: int = Field(default=100, ge=1, le=100)

    api_host: str = "127.0.0.1"
    api_port: int = 8081
    api_token: SecretStr | None = None

    notice_rate: float = 25.0  # notices per second, whole bot
    notice_chat_interval: float = 1.0  # seconds between two notices to the same chat
    notice_ttl_hours: int = 72
    throttle_rate: float = 0.5  # minimum seconds between two messages of one user
