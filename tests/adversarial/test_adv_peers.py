"""A rank whose peers never arrive logs who it waits for and fails with a clear error after
the configured timeout, instead of waiting silently for an hour."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from advhelpers import dataset, image_folder, snapshot

from databackend.errors import StorageError
from databackend.runtime.distributed import PeerTimeoutError, wait_for


@pytest.mark.timeout(60)
@pytest.mark.parametrize("timeout_s", [0.2, 0.5])
def test_wait_for_logs_and_times_out(caplog: pytest.LogCaptureFixture,
                                     timeout_s: float) -> None:
    caplog.set_level(logging.WARNING, "databackend.runtime.distributed")
    with pytest.raises(PeerTimeoutError) as info:
        wait_for(lambda: False, "rank 3's results", timeout_s=timeout_s, poll_s=0.01,
                 log_every_s=0.05)
    assert "rank 3's results" in str(info.value) and "peer_timeout_s" in str(info.value)
    waits = [r.getMessage() for r in caplog.records if "still waiting" in r.getMessage()]
    assert waits and all("rank 3's results" in w for w in waits)


def test_wait_for_returns_when_ready() -> None:
    calls = iter([False, False, True])
    wait_for(lambda: next(calls), "nobody", timeout_s=5, poll_s=0.01)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rank", [1, 2])
def test_scan_rank_without_peers_fails_clearly(tmp_path: Path, make_context: object,
                                               rank: int) -> None:
    """A rank > 0 of a 3-rank scan whose rank 0 never comes: a StorageError naming the
    dataset, the rank and what it waited for, after ``peer_timeout_s``."""
    from databackend.build import build_metadata, build_storage
    from databackend.config.loader import load_config

    root = image_folder(tmp_path / "data", 3)
    before = snapshot(root)
    context = make_context(peer_timeout_s=0.5)  # type: ignore[operator]
    plan = load_config([dataset(root)], context.registry, context.options)
    meta = build_metadata(plan.datasets[0], build_storage(plan.datasets[0], context), context)
    meta.rank_poll_s = 0.02
    with pytest.raises(StorageError) as info:
        meta.scan(progress=False, rank=rank, world_size=3)
    text = str(info.value)
    assert "'ds'" in text and f"rank {rank}" in text and "rank 0" in text, text
    assert "0.5s" in text and "peer_timeout_s" in text
    assert snapshot(root) == before


def test_peer_timeout_is_validated() -> None:
    from databackend.errors import ConfigError
    from databackend.options import FactoryOptions

    for bad in ("0", "-1", "inf"):
        with pytest.raises(ConfigError, match="peer_timeout_s"):
            FactoryOptions.from_mapping({"peer_timeout_s": bad})
