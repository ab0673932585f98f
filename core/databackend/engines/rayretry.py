"""Count what Ray re-ran: every unit of work registers its start with one counter actor.

Ray retries a task whose worker died (``max_retries``) and restarts a dead actor and re-sends
its pending calls (Ray Data: ``max_restarts=-1, max_task_retries=-1``), but it exposes no
count of those retries to the job. So each unit of work (a probe chunk, a fill batch in one
stage) calls :meth:`AttemptCounter.start` with a key that names it before doing anything, and
a key started ``n`` times was re-run ``n - 1`` times. What this counts: units re-run after a
failure (a retried task re-runs every unit of its block, each counted). What it cannot see:
an attempt that died before registering (it did no work).
"""

from __future__ import annotations

from typing import Any

__all__ = ["AttemptCounter", "new_counter", "retries", "started"]


class AttemptCounter:
    """Runs as a Ray actor (no CPU): how often each unit of work was started."""

    def __init__(self) -> None:
        """No unit started yet."""
        self.starts: dict[str, int] = {}

    def start(self, key: str) -> int:
        """Record one start of ``key``; which attempt this is (1 = the first)."""
        self.starts[key] = n = self.starts.get(key, 0) + 1
        return n

    def retries(self, prefix: str = "") -> int:
        """Re-runs of the units whose key starts with ``prefix``."""
        return sum(n - 1 for k, n in self.starts.items() if k.startswith(prefix))


def new_counter() -> Any:
    """A fresh counter actor (0 CPUs, never restarted: its counts live in its memory)."""
    import ray

    return ray.remote(AttemptCounter).options(num_cpus=0, max_restarts=0).remote()


def started(counter: Any, key: str) -> int:
    """Register a start of ``key`` with ``counter`` and wait until it is recorded."""
    import ray

    return int(ray.get(counter.start.remote(key)))


def retries(counter: Any, prefix: str = "") -> int:
    """How many units with keys under ``prefix`` Ray re-ran."""
    import ray

    return int(ray.get(counter.retries.remote(prefix)))
