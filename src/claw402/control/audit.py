"""The audit log: append-only entries, each committing to the previous entry's hash.

`hash = sha256(canonical JSON of [seq, ts, actor, action, tenant_id, subject, details,
prev_hash])`. Sequence numbers are dense, and `audit_head` records the newest (seq, hash),
so `verify` names an edited entry (its hash no longer matches), a deleted one (a gap, or a
next entry whose `prev_hash` points at nothing), and a deleted tail (head ahead of the
last row). Someone who can rewrite every row *and* the head can forge a consistent log:
publish `verify`'s head hash elsewhere to anchor it. Appends are serialised on the head row,
inside the caller's transaction, so an action and its audit entry commit together.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from claw402.control.schema import audit_head, audit_log

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    ts: str
    actor: str
    action: str
    tenant_id: str | None
    subject: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "actor": self.actor,
            "action": self.action,
            "tenantId": self.tenant_id,
            "subject": self.subject,
            "details": self.details,
            "prevHash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class AuditReport:
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    problems: list[str] = field(default_factory=list)


def canonical(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    seq: int,
    ts: str,
    actor: str,
    action: str,
    tenant_id: str | None,
    subject: str | None,
    details: str,
    prev_hash: str,
) -> str:
    body = [seq, ts, actor, action, tenant_id, subject, details, prev_hash]
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def append(
    conn: Connection,
    actor: str,
    action: str,
    *,
    tenant_id: str | None = None,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an entry in the caller's transaction (so it commits or rolls back with the action)."""
    h = audit_head.c
    conn.execute(update(audit_head).where(h.id == 1).values(seq=h.seq))  # lock the head first
    head = conn.execute(select(h.seq, h.hash).where(h.id == 1)).one()
    seq, prev = int(head.seq) + 1, head.hash
    ts = datetime.now(UTC).isoformat(timespec="microseconds")
    text = canonical(details or {})
    digest = entry_hash(seq, ts, actor, action, tenant_id, subject, text, prev)
    conn.execute(
        insert(audit_log).values(
            seq=seq,
            ts=ts,
            actor=actor,
            action=action,
            tenant_id=tenant_id,
            subject=subject,
            details=text,
            prev_hash=prev,
            hash=digest,
        )
    )
    conn.execute(update(audit_head).where(h.id == 1).values(seq=seq, hash=digest))
    return AuditEntry(seq, ts, actor, action, tenant_id, subject, details or {}, prev, digest)


def record(engine: Engine, actor: str, action: str, **fields: Any) -> AuditEntry:
    """`append` in a transaction of its own."""
    with engine.begin() as conn:
        return append(conn, actor, action, **fields)


def entries(engine: Engine, *, limit: int = 50, tenant_id: str | None = None) -> list[AuditEntry]:
    """The newest `limit` entries, oldest first."""
    query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    if tenant_id is not None:
        query = query.where(audit_log.c.tenant_id == tenant_id)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [_entry(r) for r in reversed(rows)]


def _entry(row: Any) -> AuditEntry:
    try:
        details = json.loads(row["details"])
    except ValueError:
        details = {"unparseable": row["details"]}
    return AuditEntry(
        seq=int(row["seq"]),
        ts=row["ts"],
        actor=row["actor"],
        action=row["action"],
        tenant_id=row["tenant_id"],
        subject=row["subject"],
        details=details,
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def verify(engine: Engine) -> AuditReport:
    """Walk the whole chain; every problem names the entry it concerns."""
    problems: list[str] = []
    with engine.connect() as conn:
        head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
        rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).mappings()
        expected_seq, prev, count = 1, GENESIS, 0
        for row in rows:
            count += 1
            seq = int(row["seq"])
            if seq != expected_seq:
                missing = (
                    f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}-{seq - 1}"
                )
                problems.append(f"entry {missing} deleted (sequence jumps to {seq})")
            elif row["prev_hash"] != prev:
                problems.append(
                    f"entry {seq - 1} edited or replaced "
                    f"(entry {seq} commits to a different previous hash)"
                )
            recomputed = entry_hash(
                seq,
                row["ts"],
                row["actor"],
                row["action"],
                row["tenant_id"],
                row["subject"],
                row["details"],
                row["prev_hash"],
            )
            if recomputed != row["hash"]:
                problems.append(f"entry {seq} edited (its contents no longer match its hash)")
            expected_seq, prev = seq + 1, row["hash"]
    last_seq = expected_seq - 1
    if int(head.seq) > last_seq:
        problems.append(
            f"entries {last_seq + 1}-{head.seq} deleted (the log ends at {last_seq}, "
            f"its head says {head.seq})"
        )
    elif int(head.seq) == last_seq and head.hash != prev:
        problems.append(f"entry {last_seq} edited (it no longer matches the head hash)")
    elif int(head.seq) < last_seq:
        problems.append(f"entries after {head.seq} were not appended through the log")
    return AuditReport(not problems, count, int(head.seq), head.hash, problems)
