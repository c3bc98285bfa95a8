"""Registry changes to every replica within a second, over Redis pub/sub: a deploy, removal,
plan change or quarantine publishes (`announce`) after its transaction commits, and each
gateway's listener (`RegistryListener`) makes its directory re-read the registry at once.
While subscribed, a gateway checks the registry's generation only as a slow safety net;
while Redis is unreachable it falls back to checking it on every request (what it does
without Redis), so no change is ever missed, only seen later.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

REDIS_URL_ENV = "CLAW402_REDIS_URL"
PREFIX_ENV = "CLAW402_REDIS_PREFIX"  # keys and channels, so deployments can share one Redis


def prefix() -> str:
    return os.environ.get(PREFIX_ENV, "claw402:")


def channel(key_prefix: str) -> str:
    return f"{key_prefix}registry"


def announce(subject: str) -> bool:
    """Tell every gateway the registry changed (best effort: they still poll without it)."""
    url = os.environ.get(REDIS_URL_ENV)
    if not url:
        return False
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            client.publish(channel(prefix()), subject)
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False
    return True


class RegistryListener:
    """A daemon thread subscribed to the registry channel. `on_change()` runs on every
    message and on every (re)subscription (messages may have been missed meanwhile);
    `on_state(subscribed)` when the subscription comes or goes."""

    def __init__(
        self,
        url: str,
        key_prefix: str,
        on_change: Callable[[], None],
        on_state: Callable[[bool], None],
    ) -> None:
        self._url, self._channel = url, channel(key_prefix)
        self._on_change, self._on_state = on_change, on_state
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="claw402-registry-listener",
                                        daemon=True)  # fmt: skip

    def start(self) -> RegistryListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        import redis

        client = redis.Redis.from_url(self._url, socket_timeout=1, socket_connect_timeout=0.5)
        while not self._stop.is_set():
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._channel)
                self._on_state(True)
                self._on_change()
                while not self._stop.is_set():
                    if pubsub.get_message(timeout=0.2) is not None:
                        self._on_change()
            except (redis.RedisError, OSError):
                self._on_state(False)
                self._stop.wait(0.2)
            finally:
                try:
                    pubsub.close()
                except (redis.RedisError, OSError):
                    time.sleep(0)
        client.close()
