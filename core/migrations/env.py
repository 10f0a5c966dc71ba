"""Alembic environment: migrates the database of the URL the caller put in the config."""

from alembic import context
from sqlalchemy.engine import Connection

import core.vault  # noqa: F401
import dashboard.auth.models  # noqa: F401
import jobs.archive_models
import jobs.catalog.certificate_models
import jobs.catalog.identity.models
import jobs.models
import jobs.type_settings  # noqa: F401
import scheduler.models  # noqa: F401
import workers.models  # noqa: F401
from core.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: Connection) -> None:
    # render_as_batch lets later migrations alter SQLite tables (copy-and-move).
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
