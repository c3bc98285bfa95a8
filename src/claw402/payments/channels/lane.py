"""`VoucherLane`: a voucher on a known, fresh EOA channel, accepted without the SDK's round trips.

The SDK's server scheme makes three durable writes per voucher (its reservation in verify,
its commit in settle, then our booking) and verifies the signature through eth_account. For
the common case (a voucher continuing a channel this gateway already stores, whose mirrored
on-chain state is fresh, signed by an EOA) the lane does the same checks itself and writes
once:

- requests for one channel are serialized in this process by an asyncio lock, in place of
  the SDK's durable reservation;
- the channel is read from a per-process copy (kept after each of our commits; re-read from
  the database whenever the voucher does not continue it, so another process's commits are
  seen before anything is refused);
- the checks are the SDK's local verification: the config as stored (bound to the channel id
  when it was created), the receiver's terms, the cumulative amount (previous + price), the
  deposit (not above the balance, above what was claimed) and the EIP-712 signature,
  recovered with coincurve (low-s only, as the escrow's ECDSA requires);
- after the query succeeded, the commit is one compare-and-swap on the row version plus the
  voucher's `channel_charges` row in one transaction (`GroupCommit`, shared with concurrent
  vouchers: the group's rows go in one UPDATE and one INSERT). If the row moved (another
  gateway process, a claim), it is re-read and the checks rerun: the version is what makes
  two processes never accept the same cumulative amount twice;
- on SQLite, where that commit runs on the event loop, the ledger transactions of those rows
  are posted `POST_AFTER` later, many at once and off the request path
  (`ledger.vouchers.post_vouchers`; the books' readers and claims post whatever is still
  waiting first), so a request commits 6 pages instead of 15. On PostgreSQL the commit runs
  in a thread and costs a WAL flush, not pages: there the vouchers are posted in it.

Anything the lane does not accept (an unknown or stale channel, a wrong amount, a bad
signature, a smart-wallet payer, a busy channel) goes through the SDK path, which refuses
with the SDK's reasons and corrective 402s, or verifies at the facilitator.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import coincurve
from sqlalchemy import Connection
from x402.mechanisms.evm.batch_settlement.server.storage import Channel
from x402.mechanisms.evm.batch_settlement.utils import (
    get_batch_settlement_eip712_domain,
    normalize_channel_id,
)
from x402.mechanisms.evm.utils import get_evm_chain_id
from x402.schemas import PaymentRequirements

from claw402.ledger.vouchers import Voucher, book_vouchers, post_vouchers, record_vouchers
from claw402.payments.channels.commits import GroupCommit, Regroup
from claw402.payments.channels.digest import keccak256, voucher_digest
from claw402.payments.channels.digest import voucher_separator as separator_of
from claw402.payments.channels.storage import SqlChannelStorage

__all__ = ["POST_AFTER", "Ticket", "VoucherLane", "voucher_signer_of"]

log = logging.getLogger("claw402.channels")
POST_AFTER = 0.02  # seconds from a voucher's commit to its posting (with the others due)
_POSTS_AT_ONCE = 500  # per posting transaction: the loop and the write lock are held briefly

_HALF_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2
_MAX_KNOWN = 100_000
_RETRIES = 3
_MAX_RECOVERED = 1_024
_RECOVERED: dict[tuple[bytes, str, int, str], bytes] = {}

# What to book for a voucher taking the channel from `before` to `after`: the voucher and
# whether it was paid to the tenant's own wallet (direct), or None to book nothing.
Book = Callable[[Channel, Channel], tuple[Voucher, bool] | None]


@dataclass(slots=True)
class Ticket:
    """A voucher the lane accepts, if the row is still at `version` when it commits."""

    key: str
    version: int
    before: Channel
    after: Channel


@dataclass(slots=True)
class _Write:
    ticket: Ticket
    book: Book


def voucher_separator(chain_id: int) -> bytes:
    """The escrow's EIP-712 domain separator on one chain (eth_account computes it once)."""
    return separator_of(get_batch_settlement_eip712_domain(chain_id))


def voucher_signer_of(separator: bytes, channel_id: str, amount: int, signature: str) -> bytes:
    """The 20-byte address that signed this voucher, or b"" if the signature is not a
    canonical 65-byte low-s ECDSA signature. Remembered for a while: the limits step
    recovers the same voucher's signer just before the lane does."""
    key = (separator, channel_id.lower(), amount, signature)
    found = _RECOVERED.get(key)
    if found is None:
        found = _recover(separator, channel_id, amount, signature)
        if len(_RECOVERED) >= _MAX_RECOVERED:
            _RECOVERED.clear()
        _RECOVERED[key] = found
    return found


def _recover(separator: bytes, channel_id: str, amount: int, signature: str) -> bytes:
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
        channel = bytes.fromhex(channel_id.removeprefix("0x"))
    except (ValueError, AttributeError):
        return b""
    if len(raw) != 65 or raw[64] not in (27, 28) or len(channel) != 32:
        return b""
    s = int.from_bytes(raw[32:64], "big")
    if not 0 < s <= _HALF_N or not 0 <= amount < 2**128:
        return b""
    digest = voucher_digest(separator, channel, amount)
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            raw[:64] + bytes([raw[64] - 27]), digest, hasher=None
        )
    except Exception:  # r out of range, no point on the curve: not a signature
        return b""
    return keccak256(public.format(compressed=False)[1:])[-20:]


def _post_recorded(conn: Connection, asks: Sequence[None]) -> list[bool]:
    """The posting group's work: True for each ask once nothing is left to post."""
    done = len(post_vouchers(conn, most=_POSTS_AT_ONCE)) < _POSTS_AT_ONCE
    return [done] * len(asks)


def _charging(ticket: Ticket, charge: int) -> Ticket:
    """The ticket charging `charge` instead of the offered amount (the voucher's maximum)."""
    after = ticket.after.copy()
    after.charged_cumulative_amount = str(int(ticket.before.charged_cumulative_amount) + charge)
    return Ticket(ticket.key, ticket.version, ticket.before, after)


def _address(value: Any) -> bytes:
    text = str(value)
    if len(text) != 42 or not text.startswith("0x"):
        raise ValueError(text)
    return bytes.fromhex(text[2:])


class VoucherLane:
    """One receiver's fast voucher path; one per event loop (its locks are asyncio's)."""

    def __init__(self, storage: SqlChannelStorage, network: str, ttl_ms: int) -> None:
        self.storage = storage
        self.ttl_ms = ttl_ms
        self.separator = voucher_separator(get_evm_chain_id(network))
        self.commits: GroupCommit[_Write] = GroupCommit(storage.engine, self._apply)
        self.posting: GroupCommit[None] = GroupCommit(storage.engine, _post_recorded)
        self.post_later = storage.engine.dialect.name == "sqlite"
        self._post_due: asyncio.TimerHandle | None = None
        self._post_loop: asyncio.AbstractEventLoop | None = None
        self._posts: set[asyncio.Task[None]] = set()
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._known: dict[str, tuple[Channel, int]] = {}

    @asynccontextmanager
    async def serialized(self, channel_id: str) -> AsyncIterator[None]:
        """One request of this channel at a time in this process (every payload kind)."""
        key = channel_id.lower()
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            yield

    def forget(self, channel_id: str) -> None:
        """Drop the copy (the SDK path wrote the row)."""
        self._known.pop(channel_id.lower(), None)

    async def admit(self, raw: dict[str, Any], requirements: PaymentRequirements) -> Ticket | None:
        """A ticket if the lane accepts this voucher, else None (the SDK path decides)."""
        try:
            key = normalize_channel_id(str(raw["voucher"]["channelId"]))
        except (KeyError, TypeError, ValueError):
            return None
        known = self._known.get(key)
        if known is not None:
            ticket = self._check(key, raw, requirements, *known)
            if ticket is not None:
                return ticket
        return await self._reread(key, raw, requirements)

    async def commit(
        self,
        ticket: Ticket,
        raw: dict[str, Any],
        requirements: PaymentRequirements,
        book: Book,
        charge: int | None = None,
    ) -> Ticket | None:
        """Store the voucher and book it in one transaction, charging `charge` (default: the
        offered amount; less for a tenant priced by rows): the ticket that committed, or
        None if the channel moved so that the voucher no longer continues it (nothing
        written). A booking failure raises, and nothing is written either."""
        current: Ticket | None = ticket
        if charge is not None:
            current = _charging(ticket, charge)
        for _ in range(_RETRIES):
            if current is None:
                return None
            attempt = current
            try:
                won = await self.commits.commit(_Write(attempt, book))
            except BaseException:
                self.forget(attempt.key)
                raise
            if won:
                self._remember(attempt.key, attempt.after, attempt.version + 1)
                if self.post_later:
                    self._post_soon()
                return attempt
            current = await self._reread(attempt.key, raw, requirements)  # it moved
            if current is not None and charge is not None:
                current = _charging(current, charge)
        return None

    async def post(self) -> None:
        """Post the recorded vouchers now (also what the timer after a commit does)."""
        if self._post_due is not None:
            self._post_due.cancel()
            self._post_due = None
        try:
            while not await self.posting.commit(None):  # False: more are waiting
                pass
        except Exception as exc:  # the books' readers and the next timer post them
            log.warning("posting channel vouchers failed: %s", exc)

    def close(self) -> None:
        """Stop the commit threads (vouchers not posted yet are posted by the next reader)."""
        if self._post_due is not None:
            self._post_due.cancel()
        self.commits.close()
        self.posting.close()

    # -- internals ---------------------------------------------------------------------------

    def _post_soon(self) -> None:
        loop = asyncio.get_running_loop()
        if self._post_due is None or self._post_loop is not loop:  # (a loop that ended)
            self._post_loop = loop
            self._post_due = loop.call_later(POST_AFTER, self._start_posting)

    def _start_posting(self) -> None:
        self._post_due = None
        task = asyncio.get_running_loop().create_task(self.post())
        self._posts.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(self._posts.discard)

    async def _reread(
        self, key: str, raw: dict[str, Any], requirements: PaymentRequirements
    ) -> Ticket | None:
        found = await anyio.to_thread.run_sync(self.storage.read, key)
        if found is None:
            self._known.pop(key, None)
            return None
        self._remember(key, *found)
        return self._check(key, raw, requirements, *found)

    def _apply(self, conn: Connection, writes: Sequence[_Write]) -> list[bool]:
        """A group's vouchers stored (one compare-and-swap statement) and recorded for the
        books (one INSERT; and posted, unless they are posted later), in the group commit's
        transaction."""
        stored = [(w.ticket.after, w.ticket.version) for w in writes]
        if not self.storage.store_vouchers(conn, stored):
            if len(writes) == 1:
                return [False]  # it moved: nothing written
            raise Regroup("a channel of the group moved")  # find which, each alone
        bookings = [w.book(w.ticket.before, w.ticket.after) for w in writes]
        (record_vouchers if self.post_later else book_vouchers)(
            conn, [b for b in bookings if b is not None]
        )
        return [True] * len(writes)

    def _remember(self, key: str, channel: Channel, version: int) -> None:
        if len(self._known) >= _MAX_KNOWN:
            self._known.clear()
        self._known[key] = (channel, version)

    def _check(
        self,
        key: str,
        raw: dict[str, Any],
        requirements: PaymentRequirements,
        channel: Channel,
        version: int,
    ) -> Ticket | None:
        now = int(time.time() * 1000)
        pending = channel.pending_request
        if pending is not None and pending.expires_at > now:
            return None  # the SDK path holds it (a deposit, a refund)
        synced = channel.onchain_synced_at
        if synced is None or now - synced > self.ttl_ms:
            return None
        config = raw.get("channelConfig")
        stored = channel.channel_config
        if not isinstance(config, dict) or config != stored.to_dict():
            return None
        extra = requirements.extra or {}
        try:
            terms_match = (
                _address(stored.receiver) == _address(requirements.pay_to)
                and _address(stored.receiver_authorizer)
                == _address(extra.get("receiverAuthorizer"))
                and _address(stored.token) == _address(requirements.asset)
                and stored.withdraw_delay == int(extra.get("withdrawDelay", -1))
            )
            authorizer = _address(stored.payer_authorizer)
            voucher = raw["voucher"]
            amount = int(str(voucher["maxClaimableAmount"]))
            charged = int(channel.charged_cumulative_amount) + int(requirements.amount)
        except (KeyError, TypeError, ValueError):
            return None
        if not terms_match or authorizer == bytes(20) or amount != charged:
            return None
        if amount > int(channel.balance) or amount <= int(channel.total_claimed):
            return None
        signature = voucher.get("signature")
        if not isinstance(signature, str):
            return None
        if voucher_signer_of(self.separator, key, amount, signature) != authorizer:
            return None
        after = channel.copy()
        after.charged_cumulative_amount = str(charged)
        after.signed_max_claimable = str(amount)
        after.signature = signature
        after.last_request_timestamp = now
        after.pending_request = None
        return Ticket(key, version, channel, after)
