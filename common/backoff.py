"""Capped exponential backoff with jitter, as a pure value object."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    initial_s: float
    maximum_s: float
    jitter: float = 0.2  # +-20 %, so restarted replicas do not retry in lockstep
    attempts: int = 0

    def next_delay(self, rand: random.Random | None = None) -> float:
        """The delay before the next attempt; each failure doubles it up to the cap."""
        base = min(self.maximum_s, self.initial_s * (2 ** self.attempts))
        self.attempts += 1
        spread = (rand or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1 + spread))

    def reset(self) -> None:
        self.attempts = 0
