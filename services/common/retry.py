"""The one retry policy of the transactional stages: its defaults are stated here and nowhere else.

`CommonSettings.retry_policy()` builds it from env (`CLIPSTREAM_RETRY_*`); `ProcessorConfig` carries it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8  # tries of a message failing transiently before it is dead-lettered with its history
    backoff_initial_s: float = 0.5  # first wait after a transient failure; each further wait doubles it
    backoff_max_s: float = 30.0  # longest wait between two tries
    commit_attempts: int = 3  # tries of a Kafka transaction commit that fails retriably

    def backoff_s(self, failures: int) -> float:
        """The wait after the `failures`-th failure in a row (1: the first)."""
        return min(self.backoff_initial_s * 2 ** max(failures - 1, 0), self.backoff_max_s)
