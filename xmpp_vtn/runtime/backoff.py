"""Capped, jittered exponential backoff for reconnects and retries."""
from __future__ import annotations

import random
from typing import Callable


class Backoff:
    """Delays of ``initial * factor**n``, capped at ``cap``, each scaled by a random factor in
    ``[1 - jitter, 1]`` so that many clients cut off together do not come back together.

    >>> delays = Backoff(initial=1, factor=2, cap=5, jitter=0)
    >>> [delays.next() for _ in range(5)]
    [1, 2, 4, 5, 5]
    """

    def __init__(self, initial: float = 0.5, factor: float = 2.0, cap: float = 30.0, jitter: float = 0.5,
                 random_fraction: Callable[[], float] = random.random):
        if initial <= 0 or factor < 1 or cap < initial or not 0 <= jitter <= 1:
            raise ValueError("Backoff needs 0 < initial <= cap, factor >= 1 and 0 <= jitter <= 1")
        self.initial, self.factor, self.cap, self.jitter = initial, factor, cap, jitter
        self._random = random_fraction
        self.attempts = 0

    def next(self) -> float:
        """The delay before the next attempt; each call counts one attempt."""
        ceiling = min(self.cap, self.initial * self.factor ** self.attempts)
        self.attempts += 1
        return ceiling * (1 - self.jitter * self._random()) if self.jitter else ceiling

    def reset(self) -> None:
        """Start again from ``initial`` (after a success)."""
        self.attempts = 0
