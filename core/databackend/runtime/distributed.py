"""Rank and world size: given explicitly, or read from an initialised ``torch.distributed``.

Nothing here communicates per step: the runtime's choices are pure functions of the seed and the
step, so ranks only need the collective calls the trainer already makes. :func:`barrier` is used
once per startup stage (after a scan or a cache build split across ranks) and is a no-op when
``torch.distributed`` is not initialised.
"""

from __future__ import annotations

__all__ = ["barrier", "broadcast_token", "gather_union", "resolve_rank"]


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


def barrier(world_size: int) -> None:
    """Wait for every rank when ``torch.distributed`` is initialised and ``world_size > 1``."""
    if world_size > 1 and _dist_initialised():
        import torch.distributed as dist

        dist.barrier()


def gather_union(items: list[str], world_size: int) -> list[str]:
    """The sorted union of every rank's ``items`` (this rank's alone without a process group)."""
    if world_size > 1 and _dist_initialised():
        import torch.distributed as dist

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
