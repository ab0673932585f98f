"""The quarantine store: delay, counts, atomic coalesced writes, sharing between processes."""

from __future__ import annotations

import json
import time
from pathlib import Path

from databackend_csv import Quarantine
from databackend_csv import quarantine as quarantine_mod


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_delay_and_counts(tmp_path: Path) -> None:
    """Entries block for ``delay`` seconds; counts are by reason over blocked entries."""
    clock = Clock()
    q = Quarantine(str(tmp_path / "q.json"), 60.0, clock=clock)
    q.add("aa/1.jpg", "not_found", "HTTP 404", "http://h/1.jpg")
    q.add("bb/2.jpg", "timeout", "slow")
    clock.now += 30
    q.add("cc/3.jpg", "not_found", "HTTP 410")
    assert q.counts() == {"not_found": 2, "timeout": 1}
    clock.now += 31
    assert q.blocked("aa/1.jpg") is None and q.blocked("cc/3.jpg") is not None
    assert q.counts() == {"not_found": 1} and len(q) == 3
    q.clear("aa/1.jpg")
    assert q.get("aa/1.jpg") is None and len(q) == 2


def test_persisted_atomically(tmp_path: Path) -> None:
    """flush() writes a readable JSON file and no temporary files remain."""
    path = tmp_path / "q.json"
    q = Quarantine(str(path), 60.0)
    q.add("aa/1.jpg", "not_image", "text/html", "http://h/1.jpg")
    q.flush()
    data = json.loads(path.read_text())
    assert data["entries"]["aa/1.jpg"]["reason"] == "not_image"
    assert [p.name for p in tmp_path.iterdir()] == ["q.json"]
    again = Quarantine(str(path), 60.0)
    assert again.blocked("aa/1.jpg") is not None


def test_writes_are_coalesced(tmp_path: Path, monkeypatch: object) -> None:
    """Many failures in a burst: one write now, one more after FLUSH_SECONDS."""
    path = tmp_path / "q.json"
    writes: list[int] = []
    real = quarantine_mod._dump

    def counting(p: str, entries: dict[str, object]) -> None:
        writes.append(len(entries))
        real(p, entries)  # type: ignore[arg-type]

    quarantine_mod._dump = counting  # type: ignore[assignment]
    old = quarantine_mod.FLUSH_SECONDS
    quarantine_mod.FLUSH_SECONDS = 0.2
    try:
        q = Quarantine(str(path), 60.0)
        for k in range(50):
            q.add(f"{k:02d}/x.jpg", "timeout", "slow")
        assert writes == [1]
        deadline = time.monotonic() + 5
        while len(writes) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writes == [1, 50]
    finally:
        quarantine_mod._dump = real
        quarantine_mod.FLUSH_SECONDS = old


def test_two_processes_merge(tmp_path: Path) -> None:
    """Two stores over one file keep each other's entries and removals."""
    path = str(tmp_path / "q.json")
    a, b = Quarantine(path, 60.0), Quarantine(path, 60.0)
    a.add("aa/1.jpg", "not_found", "404")
    a.flush()
    b.add("bb/2.jpg", "timeout", "slow")
    b.flush()
    assert set(json.loads(Path(path).read_text())["entries"]) == {"aa/1.jpg", "bb/2.jpg"}
    b.clear("aa/1.jpg")
    b.flush()
    a.add("cc/3.jpg", "not_found", "404")
    a.flush()
    assert set(json.loads(Path(path).read_text())["entries"]) == {"bb/2.jpg", "cc/3.jpg"}


def test_damaged_file_is_empty(tmp_path: Path) -> None:
    """A truncated file is ignored (with a warning), never an error."""
    path = tmp_path / "q.json"
    path.write_text('{"entries": {"aa/1.jpg": {"reas')
    q = Quarantine(str(path), 60.0)
    assert len(q) == 0
    q.add("aa/1.jpg", "timeout", "slow")
    q.flush()
    assert len(Quarantine(str(path), 60.0)) == 1


def test_unwritable_folder_does_not_raise(tmp_path: Path) -> None:
    """A failed write is logged; the in-memory quarantine still works."""
    q = Quarantine(str(tmp_path / "missing-dir" / "q.json"), 60.0)
    q.add("aa/1.jpg", "timeout", "slow")
    q.flush()
    assert q.blocked("aa/1.jpg") is not None
