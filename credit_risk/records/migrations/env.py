"""Alembic environment: the migrations run on the connection the caller gives
(`config.attributes["connection"]`, inside its transaction and advisory lock), or, for the
`alembic` command line, on `sqlalchemy.url`. Tables go to the connection's search_path."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # `alembic -c ... upgrade head` by hand
    url = config.get_main_option("sqlalchemy.url")
    assert url, "set sqlalchemy.url"
    engine = create_engine(url)
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
else:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
