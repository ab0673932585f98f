"""Rank and world size: given explicitly, or read from an initialised ``torch.distributed``.

Nothing here communicates per step: the runtime's choices are pure functions of the seed and the
step, so ranks only need the collective calls the trainer already makes. :func:`barrier` is used
once per startup stage (after a scan or a cache build split across ranks) and is a no-op when
``torch.distributed`` is not initialised.

Nothing waits silently or forever: :func:`barrier` and :func:`wait_for` log who they are
waiting for every ``log_every_s`` (30 s) and raise :class:`PeerTimeoutError` after
``timeout_s`` (the factory option ``peer_timeout_s``, default :data:`DEFAULT_PEER_TIMEOUT_S`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from databackend.errors import DatabackendError

__all__ = ["DEFAULT_PEER_TIMEOUT_S", "LOG_EVERY_S", "PeerTimeoutError", "barrier",
           "broadcast_token", "gather_union", "resolve_rank", "wait_for"]

log = logging.getLogger(__name__)

#: Seconds a rank waits for its peers before it fails (factory option ``peer_timeout_s``).
DEFAULT_PEER_TIMEOUT_S = 1800.0
#: A waiting rank logs who it waits for at least this often.
LOG_EVERY_S = 30.0


class PeerTimeoutError(DatabackendError):
    """Other ranks did not arrive within the peer timeout."""


def wait_for(ready: Callable[[], bool], who: str, *, timeout_s: float,
             poll_s: float = 0.5, log_every_s: float = LOG_EVERY_S) -> None:
    """Poll ``ready()`` until it is true; log ``who`` is awaited every ``log_every_s`` and raise
    :class:`PeerTimeoutError` naming ``who`` after ``timeout_s``."""
    start = time.monotonic()
    next_log = start + log_every_s
    while not ready():
        now = time.monotonic()
        if now - start > timeout_s:
            raise PeerTimeoutError(f"gave up waiting for {who} after {timeout_s:g}s (factory "
                                   "option peer_timeout_s); is every rank running, and do all "
                                   "ranks see the same files and cache folders?")
        if now >= next_log:
            log.warning("still waiting for %s after %.0fs (timeout %gs)", who, now - start,
                        timeout_s)
            next_log = now + log_every_s
        time.sleep(min(poll_s, max(0.0, timeout_s - (now - start)) + 0.01))


def _dist_initialised() -> bool:
    import torch.distributed as dist

    return bool(dist.is_available() and dist.is_initialized())


def resolve_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)``: the given values, else torch.distributed's, else ``(0, 1)``."""
    if rank is None or world_size is None:
        if _dist_initialised():
            import torch.distributed as dist

            rank = dist.get_rank() if rank is None else rank
            world_size = dist.get_world_size() if world_size is None else world_size
        rank = 0 if rank is None else rank
        world_size = 1 if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not valid for world size {world_size}")
    return rank, world_size


def barrier(world_size: int, *, timeout_s: float = DEFAULT_PEER_TIMEOUT_S,
            stage: str = "startup") -> None:
    """Wait for every rank when ``torch.distributed`` is initialised and ``world_size > 1``;
    logs while waiting and raises :class:`PeerTimeoutError` after ``timeout_s``."""
    if world_size > 1 and _dist_initialised():
        import torch.distributed as dist

        work = dist.barrier(async_op=True)
        rank = dist.get_rank()
        others = ", ".join(str(r) for r in range(world_size) if r != rank)
        wait_for(work.is_completed, f"rank(s) {others} at the {stage} barrier (this is rank "
                 f"{rank} of {world_size})", timeout_s=timeout_s, poll_s=0.05)


def gather_union(items: list[str], world_size: int, *,
                 timeout_s: float = DEFAULT_PEER_TIMEOUT_S) -> list[str]:
    """The sorted union of every rank's ``items`` (this rank's alone without a process group);
    a timed :func:`barrier` first, so a missing peer is reported instead of hanging."""
    if world_size > 1 and _dist_initialised():
        import torch.distributed as dist

        barrier(world_size, timeout_s=timeout_s, stage="gather")
        parts: list[list[str] | None] = [None] * world_size
        dist.all_gather_object(parts, items)
        return sorted({item for part in parts for item in part or ()})
    return sorted(set(items))


def broadcast_token(world_size: int) -> str | None:
    """A random token made by rank 0 and given to every rank (a collective call: every rank
    must make it); None without an initialised ``torch.distributed`` or with one rank."""
    if world_size > 1 and _dist_initialised():
        import uuid

        import torch.distributed as dist

        box: list[str | None] = [uuid.uuid4().hex if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return None
