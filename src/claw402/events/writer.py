"""Lifecycle events written by a child process, so the gateway's GIL stays with its requests.

In-process, the sink's writer thread takes the GIL back from the event loop around every
statement it runs, which under load costs the challenge path a good part of its rate
(measured in bench/bench_paid_call.py; numbers in docs/architecture.md). `ChildWriter` hands
each batch to `python -m claw402.events.writer` through a pipe instead: one `marshal.dumps`
and one write per batch in the gateway; decoding and the database work in the child. The
batch is the sink's trails of compact tuples (`claw402.events.compact.compact`), which
marshal carries far faster than nested records, and the child builds each row straight from
them (`EventStore.write_compact_trails`).

Pipe protocol: frames of a 4-byte little-endian length and marshal bytes (parent and child
are the same interpreter, and only the parent writes the pipe). The first frame is
`{"url": database URL}` (not in argv, where `ps` would show a password); each next one is a
list of trails, each a list of one request's compact events. At end of input, the child
writes what it has read and exits: events already in the pipe survive the gateway's own
crash. Should the child die, the writer logs it once and writes in-process from then on; a
batch marshal refuses (a detail of a type it does not know) is written in-process too.
"""

from __future__ import annotations

import logging
import marshal
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

from claw402.events.compact import Trail
from claw402.events.sink import write_patiently
from claw402.events.store import EventStore
from claw402.gc_tuning import tune_gc
from claw402.registry.db import make_engine

log = logging.getLogger("claw402.events")

_CHUNK = 500  # trails (rows) per transaction in the child


class ChildWriter:
    """A `Writer` for `EventSink` that writes through a child process; `close` drains it."""

    def __init__(self, store: EventStore) -> None:
        self._fallback = store.write_compact_trails
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=subprocess.PIPE, close_fds=True
            )
        except OSError as exc:
            log.error("cannot start the event writer (%s); writing events in-process", exc)
            return
        url = store.engine.url.render_as_string(hide_password=False)
        self._send(marshal.dumps({"url": url}))

    def __call__(self, batch: Sequence[Trail]) -> None:
        try:
            payload = marshal.dumps(list(batch))
        except ValueError:  # a detail marshal does not know: this batch goes in-process
            payload = None
        if payload is None or not self._send(payload):
            self._fallback(batch)

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        try:
            proc.stdin.close()
            proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            log.error("the event writer did not finish within %s s; stopping it", timeout)
            proc.kill()
            proc.wait()

    def _send(self, payload: bytes) -> bool:
        with self._lock:
            proc = self._proc
            if proc is None or proc.stdin is None:
                return False
            try:
                proc.stdin.write(len(payload).to_bytes(4, "little") + payload)
                proc.stdin.flush()
                return True
            except (OSError, ValueError):  # the child is gone: write in-process from now on
                log.error("the event writer exited (%s); writing events in-process", proc.poll())
                self._proc = None
                return False


def _frames(stream: IO[bytes]) -> Any:
    while len(head := stream.read(4)) == 4:
        body = stream.read(int.from_bytes(head, "little"))
        yield marshal.loads(body)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C: the gateway says when
    frames = _frames(sys.stdin.buffer)
    first = next(frames, None)
    if not isinstance(first, dict) or "url" not in first:
        sys.exit("event_writer: expected the database URL first")
    store = EventStore(make_engine(first["url"]))
    tune_gc()  # each frame unpacks thousands of tuples: no full rescans of start-up's objects
    try:
        for batch in frames:
            for start in range(0, len(batch), _CHUNK):
                write_patiently(store.write_compact_trails, batch[start : start + _CHUNK])
    finally:
        store.engine.dispose()


if __name__ == "__main__":
    main()
