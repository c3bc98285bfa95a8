"""Engine creation and migrations: SQLite in the home by default, PostgreSQL by URL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, ProgrammingError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")

# The newest revision in migrations/versions. `migrate` compares the database with it instead
# of asking alembic (importing alembic costs ~0.2 s, every CLI command pays it); add a migration
# and bump this: tests/registry/test_db.py checks it against alembic's own answer.
HEAD_REVISION = "0016"


def _driver_url(url: str) -> str:
    """Use psycopg 3 for a plain `postgresql://` URL."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_conn: Any, *, busy_ms: int) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cur.close()


def make_engine(url: str) -> Engine:
    url = _driver_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            _sqlite_pragmas(dbapi_conn, busy_ms=30_000)

        return engine
    return create_engine(url, pool_pre_ping=True)


def immediate_sqlite_engine(engine: Engine) -> Engine | None:
    """For a SQLite file, a second engine on it whose transactions take the write lock at
    `BEGIN IMMEDIATE` and never wait for it: a busy database raises `OperationalError` at
    once, before anything is written, so a caller that must not block (an event loop) can
    hand the work to a thread on `engine` instead. None for any other database.

    It checkpoints the WAL as every connection does (past 1,000 pages): without that the WAL
    grows and every read and commit slows down with it.
    """
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if "mode=memory" in str(url.query.get("mode", "")) or url.database.startswith("file:"):
        return None
    immediate = create_engine(url, connect_args={"timeout": 0}, pool_size=1, max_overflow=0)

    @event.listens_for(immediate, "connect")
    def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # the driver's own deferred BEGIN off: ours below
        _sqlite_pragmas(dbapi_conn, busy_ms=0)

    @event.listens_for(immediate, "begin")
    def _begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return immediate


def bounded_engine(engine: Engine, wait: float) -> Engine:
    """A second engine on `engine`'s database whose statements wait at most `wait` seconds for
    a lock another transaction holds, then raise (SQLite's busy timeout, PostgreSQL's
    `lock_timeout`): for work that must fail fast instead of queueing behind a stuck writer.
    The registry's own engine waits 30 s on SQLite and for ever on PostgreSQL. `engine` itself
    for an in-memory SQLite database (nothing else can hold its locks)."""
    url = engine.url
    ms = max(1, round(wait * 1000))
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            return engine
        bounded = create_engine(url, connect_args={"timeout": wait})

        @event.listens_for(bounded, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            _sqlite_pragmas(dbapi_conn, busy_ms=ms)

        return bounded
    bounded = create_engine(url, pool_pre_ping=True)

    @event.listens_for(bounded, "connect")
    def _lock_timeout(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute(f"SET lock_timeout = {ms}")  # a session setting: kept by the pool
        cur.close()
        dbapi_conn.commit()  # else the pool's reset rolls the SET back

    return bounded


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def current_revisions(engine: Engine) -> list[str]:
    """The revisions stamped in the database; none when it was never migrated."""
    with engine.connect() as conn:
        try:
            return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        except (OperationalError, ProgrammingError):  # no alembic_version table yet
            return []


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op (one query) when it is there already."""
    if current_revisions(engine) == [HEAD_REVISION]:
        return
    from alembic import command

    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
