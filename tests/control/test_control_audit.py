"""The audit log is a hash chain: any edited or deleted entry is found and named."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from claw402.control import audit


def fill(engine, n: int = 5) -> None:
    for i in range(1, n + 1):
        audit.record(
            engine,
            "alice",
            "tenant.deployed",
            tenant_id="tnt_1",
            subject=f"tenant:t{i}",
            details={"i": i, "price": 1000 * i},
        )


def unlock(engine) -> None:
    """What an attacker with database rights does first: switch the append-only guard off."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        else:
            conn.execute(sa.text("DROP TRIGGER audit_log_no_update"))
            conn.execute(sa.text("DROP TRIGGER audit_log_no_delete"))


def tamper(engine, statement: str) -> list[str]:
    unlock(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(statement)
    report = audit.verify(engine)
    assert not report.ok
    return report.problems


def test_an_intact_log_verifies(engine):
    fill(engine)
    report = audit.verify(engine)
    assert report.ok and report.entries == 5 and report.head_seq == 5
    entries = audit.entries(engine, limit=2)
    assert [e.seq for e in entries] == [4, 5] and entries[1].prev_hash == entries[0].hash
    assert entries[1].details == {"i": 5, "price": 5000}


def test_the_database_refuses_edits_outright(engine):
    fill(engine, 2)
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(statement))


def test_an_edited_entry_is_named(engine):
    fill(engine)
    problems = tamper(
        engine, """UPDATE audit_log SET details = '{"i":2,"price":1}' WHERE seq = 2"""
    )
    assert problems == ["entry 2 edited (its contents no longer match its hash)"]


def test_an_edited_and_rehashed_entry_is_named(engine):
    fill(engine)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM audit_log WHERE seq = 3")).mappings().one()
    forged = audit.entry_hash(
        3,
        row["ts"],
        "mallory",
        row["action"],
        row["tenant_id"],
        row["subject"],
        row["details"],
        row["prev_hash"],
    )
    problems = tamper(
        engine, f"UPDATE audit_log SET actor = 'mallory', hash = '{forged}' WHERE seq = 3"
    )
    assert problems == ["entry 3 edited or replaced (entry 4 commits to a different previous hash)"]


def test_a_deleted_entry_is_named(engine):
    fill(engine)
    assert tamper(engine, "DELETE FROM audit_log WHERE seq = 3") == [
        "entry 3 deleted (sequence jumps to 4)"
    ]


def test_a_deleted_tail_is_named(engine):
    fill(engine)
    assert tamper(engine, "DELETE FROM audit_log WHERE seq >= 4") == [
        "entries 4-5 deleted (the log ends at 3, its head says 5)"
    ]


def test_concurrent_appends_keep_one_chain(engine):
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        start.wait()
        try:
            for j in range(5):
                audit.record(engine, f"w{i}", "key.created", details={"j": j})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = audit.verify(engine)
    assert report.ok and report.entries == 40
