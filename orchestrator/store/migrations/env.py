"""Alembic environment: migrations run on the connection the Store hands over."""
from alembic import context

from orchestrator.store.db import lock_for_migrations
from orchestrator.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` command line: open the configured URL
    from orchestrator.store.db import Store

    store = Store(context.config.get_main_option("sqlalchemy.url"), migrate=False)
    connection = store.engine.connect()

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    lock_for_migrations(connection)  # PostgreSQL: one process migrates at a time
    context.run_migrations()
