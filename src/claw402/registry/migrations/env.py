"""Alembic environment: runs on the connection `registry.db.migrate` hands over."""

from alembic import context

from claw402.registry.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
