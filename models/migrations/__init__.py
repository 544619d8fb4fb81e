"""Alembic, configured in code (no alembic.ini to find), so an installed package can migrate itself.

`yichuang db upgrade` and `models.db.prepare_database()` both end in `upgrade head` here, on
SQLite and PostgreSQL alike. New tables: add the module to models/tables.py, then
`yichuang db revision -m "…"` against a database at head writes the next revision to review.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

HERE = Path(__file__).resolve().parent


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser interpolation
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade_connection(connection: Connection, revision: str = "head") -> None:
    """Upgrade through an open connection (used from an async engine via run_sync)."""
    command.upgrade(alembic_config(connection=connection), revision)


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def make_revision(url: str, message: str, rev_id: str | None = None) -> None:
    command.revision(alembic_config(url), message=message, autogenerate=True, rev_id=rev_id)
