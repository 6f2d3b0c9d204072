"""Transient store errors are retried with backoff until a deadline; then they become one clear error."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from store.errors import StoreUnavailable, StoreUnreachable

T = TypeVar("T")
FIRST_WAIT_S = 0.05
LONGEST_WAIT_S = 2.0


def retrying(operation: Callable[[], T], deadline: float, what: str) -> T:
    """Run `operation`; while it raises StoreUnavailable, wait (exponential, jittered) and run it again,
    for at most `deadline` seconds in all. Then raise StoreUnreachable naming the store and the cause."""
    give_up = time.monotonic() + deadline
    wait = FIRST_WAIT_S
    while True:
        try:
            return operation()
        except StoreUnavailable as error:
            left = give_up - time.monotonic()
            if left <= 0:
                raise StoreUnreachable(f"{what}: unreachable for {deadline:.0f}s ({error})") from None
            time.sleep(min(wait * (0.5 + random.random()), left))
            wait = min(wait * 2, LONGEST_WAIT_S)
