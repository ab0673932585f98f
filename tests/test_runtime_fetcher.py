"""BatchFetcher: prefetch order, error propagation with traceback, prompt close, metrics."""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

import pytest

from databackend.metrics import FetchStats
from databackend.runtime.fetcher import BatchFetcher
from databackend.runtime.loop import DataRuntime, RuntimeDataset
from databackend.runtime.strategies import Uniform
from databackend.runtime.synthetic import SyntheticSource


def counter(limit: int | None = None, delay: float = 0.0) -> Any:
    state = {"n": 0}

    def produce() -> tuple[int, dict[str, Any]] | None:
        if limit is not None and state["n"] >= limit:
            return None
        time.sleep(delay)
        state["n"] += 1
        return state["n"], {"n": state["n"]}
    return produce


def exploding_producer() -> tuple[int, dict[str, Any]] | None:
    raise KeyError("latent missing for sample 7")


@pytest.mark.parametrize("queue_size", [0, 1, 4])
def test_items_arrive_in_order_then_stop(queue_size: int) -> None:
    with BatchFetcher(counter(limit=20), queue_size=queue_size) as fetcher:
        assert list(fetcher) == list(range(1, 21))
        assert fetcher.state_dict() == {"n": 20}
        with pytest.raises(StopIteration):
            next(fetcher)


def test_state_follows_the_consumer_not_the_thread() -> None:
    with BatchFetcher(counter(), queue_size=8) as fetcher:
        assert next(fetcher) == 1
        time.sleep(0.2)  # the thread fills the queue meanwhile
        assert fetcher.depth >= 1
        assert fetcher.state_dict() == {"n": 1}


def test_exception_in_fetch_thread_reaches_consumer_with_traceback() -> None:
    fetcher = BatchFetcher(exploding_producer, queue_size=2)
    with pytest.raises(KeyError, match="sample 7") as info:
        next(fetcher)
    frames = "".join(traceback.format_tb(info.value.__traceback__))
    assert "exploding_producer" in frames  # raised in the thread, frame preserved
    assert "_run" in frames
    with pytest.raises(StopIteration):
        next(fetcher)
    fetcher.close()


def test_close_is_prompt_while_producer_waits_on_a_full_queue() -> None:
    fetcher = BatchFetcher(counter(), queue_size=2)
    next(fetcher)
    time.sleep(0.1)
    start = time.perf_counter()
    fetcher.close()
    assert time.perf_counter() - start < 1.0
    assert fetcher._thread is not None and not fetcher._thread.is_alive()


def test_close_wakes_a_blocked_consumer() -> None:
    fetcher = BatchFetcher(counter(delay=5.0), queue_size=2)
    result: list[object] = []

    def consume() -> None:
        result.append(list(fetcher))

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.1)
    start = time.perf_counter()
    fetcher.close()
    t.join(2.0)
    assert not t.is_alive() and result == [[]]
    assert time.perf_counter() - start < 1.0  # the acceptance bound, even mid-batch


def test_wait_and_depth_are_recorded() -> None:
    stats = FetchStats(warmup=2)
    with BatchFetcher(counter(limit=10), queue_size=4, stats=stats) as fetcher:
        time.sleep(0.2)
        list(fetcher)
    assert stats.batches == 10
    assert stats.produced == 10
    assert stats.mean_depth > 0
    d = stats.to_dict()
    assert set(d) >= {"mean_wait_ms", "steady_mean_wait_ms", "mean_queue_depth"}


def test_fetcher_over_runtime_resumes_from_consumer_state() -> None:
    def runtime() -> DataRuntime:
        src = SyntheticSource("a", {(512, 512): 40, (576, 512): 16})
        return DataRuntime([RuntimeDataset(id="a", source=src, batch_size=4)], Uniform(),
                           seed=3, max_epochs=3)

    expected = [b.indices for b in runtime()]
    fetcher = BatchFetcher(runtime().produce, queue_size=6)
    head = [next(fetcher).indices for _ in range(9)]
    time.sleep(0.1)
    state = fetcher.state_dict()
    fetcher.close()
    resumed = runtime()
    assert state is not None
    resumed.load_state_dict(state)
    assert head + [b.indices for b in resumed] == expected


def test_negative_queue_size_is_rejected() -> None:
    with pytest.raises(ValueError):
        BatchFetcher(counter(), queue_size=-1)
