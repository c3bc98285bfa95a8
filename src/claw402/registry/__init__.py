"""The registry: tenants, plans, hosts, prices and dataset versions (SQLAlchemy Core + Alembic)."""
