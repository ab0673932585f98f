"""Where the latent fill gets its pixels: worker processes (every core) or threads.

:class:`ProcessLoader` decodes in a process pool (:func:`databackend.caches.decode.decode`);
local files are opened by path in the worker, other storage is read by I/O threads in this
process and the bytes sent along. :class:`ThreadLoader` runs the same decode (or a source's
own ``load_image``) in threads: for small fills, where starting processes costs more than it
saves, and for sources that decode in their own way.

Both return ``Future``\\ s of ``[H, W, 3]`` uint8 NumPy arrays.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from databackend.caches.decode import DecodeJob, decode, watch_parent
from databackend.geometry import apply_geometry

if TYPE_CHECKING:
    from databackend.caches.imaging import SampleSource

__all__ = ["FunctionLoader", "ProcessLoader", "ThreadLoader", "core_count", "job_for", "make_loader",
           "oversized"]


#: Imported once by the forkserver, so each decoder process starts with them: a pool start
#: after the first took 0.20-0.23 s to its first result without, 0.08-0.10 s with (2 cores).
_DECODER_PRELOAD = ("numpy", "PIL.Image", "PIL.ImageOps", "PIL.JpegImagePlugin",
                    "PIL.PngImagePlugin")


def core_count() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def raw_image(source: SampleSource, i: int) -> tuple[str | None, Any] | None:
    """``(local path, storage)`` of sample ``i`` when the source decodes plain files (it has a
    ``raw_image`` method that answers), else None (use ``load_image``)."""
    getter = getattr(source, "raw_image", None)
    return getter(i) if getter is not None else None  # type: ignore[no-any-return]


def job_for(source: SampleSource, i: int, *, draft: bool) -> DecodeJob | None:
    """The :class:`DecodeJob` of sample ``i`` (without data for non-local files), or None when
    the source must decode it itself."""
    raw = raw_image(source, i)
    if raw is None:
        return None
    local, _ = raw
    g = source.index.geometry(i)
    return DecodeJob(name=str(source.index.paths[i]), original=g.original_size,
                     downsample=g.downsample_size, intermediary=g.intermediary_size,
                     box=g.crop_box, draft=draft, path=local)


def _via_source(source: SampleSource, i: int) -> Any:
    import numpy as np

    image = apply_geometry(source.load_image(i), source.index.geometry(i))
    return np.asarray(image.convert("RGB") if image.mode != "RGB" else image, dtype=np.uint8)


def _with_data(source: SampleSource, i: int, job: DecodeJob) -> DecodeJob:
    """``job`` with the file's bytes attached when it is not a local file."""
    if job.path is not None:
        return job
    raw = raw_image(source, i)
    storage = raw[1] if raw else None
    if storage is None:
        raise ValueError(f"{job.name}: no storage to read it from")
    return DecodeJob(name=job.name, original=job.original, downsample=job.downsample,
                     intermediary=job.intermediary, box=job.box, draft=job.draft,
                     data=storage.read(job.name))


def oversized(source: SampleSource, i: int, max_pixels: int | None) -> str | None:
    """Why sample ``i`` is refused before decoding (more pixels than ``max_pixels``, the
    factory option ``max_image_pixels``), or None: this bounds the fill's memory."""
    width, height = source.index.geometry(i).original_size
    if max_pixels is None or width * height <= max_pixels:
        return None
    return (f"image is {width}x{height} = {width * height / 1e6:.1f} MP, above "
            f"max_image_pixels ({max_pixels / 1e6:.1f} MP); not decoded")


class ThreadLoader:
    """Decode in ``workers`` threads of this process."""

    def __init__(self, source: SampleSource, workers: int, *, draft: bool,
                 max_pixels: int | None = None) -> None:
        """Decode samples of ``source``; ``draft`` allows JPEG draft mode; larger images than
        ``max_pixels`` are refused."""
        self.source, self.draft, self.workers = source, draft, max(1, workers)
        self.max_pixels = max_pixels
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="databackend-vae-load")

    def load(self, i: int) -> Any:
        """Decode sample ``i`` in the calling thread."""
        refused = oversized(self.source, i, self.max_pixels)
        if refused:
            raise ValueError(refused)
        job = job_for(self.source, i, draft=self.draft)
        if job is None:
            return _via_source(self.source, i)
        return decode(_with_data(self.source, i, job))

    def submit(self, i: int) -> Future[Any]:
        """Start decoding sample ``i``."""
        return self._pool.submit(self.load, i)

    def close(self) -> None:
        """Stop the threads (pending work is cancelled)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class ProcessLoader:
    """Decode in ``workers`` processes; non-local files are read by threads here first."""

    def __init__(self, source: SampleSource, workers: int, *, draft: bool,
                 max_pixels: int | None = None) -> None:
        """Start the worker processes (``forkserver`` on Linux, preloading only the decode
        module, NumPy and Pillow, never torch or the caller's ``__main__``; ``spawn``
        elsewhere)."""
        self.source, self.draft, self.workers = source, draft, max(1, workers)
        self.max_pixels = max_pixels
        context = multiprocessing.get_context("forkserver" if sys.platform.startswith("linux")
                                              else "spawn")
        if context.get_start_method() == "forkserver":  # not the trainer's __main__: only ours
            context.set_forkserver_preload([decode.__module__, *_DECODER_PRELOAD])
        self._procs = ProcessPoolExecutor(self.workers, mp_context=context,
                                          initializer=watch_parent, initargs=(os.getpid(),))
        self._io = ThreadPoolExecutor(max(4, self.workers), thread_name_prefix="databackend-read")
        self._fallback: ThreadLoader | None = None

    def _read_then_decode(self, i: int, job: DecodeJob) -> Any:
        return self._procs.submit(decode, _with_data(self.source, i, job)).result()

    def submit(self, i: int) -> Future[Any]:
        """Start decoding sample ``i``."""
        refused = oversized(self.source, i, self.max_pixels)
        if refused:
            failed: Future[Any] = Future()
            failed.set_exception(ValueError(refused))
            return failed
        job = job_for(self.source, i, draft=self.draft)
        if job is None:
            if self._fallback is None:
                self._fallback = ThreadLoader(self.source, 2, draft=self.draft,
                                              max_pixels=self.max_pixels)
            return self._fallback.submit(i)
        if job.path is not None:
            return self._procs.submit(decode, job)
        return self._io.submit(self._read_then_decode, i, job)

    def close(self) -> None:
        """Stop the reader threads and the worker processes."""
        self._io.shutdown(wait=True, cancel_futures=True)
        self._procs.shutdown(wait=True, cancel_futures=True)
        if self._fallback is not None:
            self._fallback.close()


class FunctionLoader:
    """Load with ``fn(i)`` in ``workers`` threads: caches that decode their own way (video
    windows, audio clips) feed the same fill pipeline through it."""

    def __init__(self, fn: Callable[[int], Any], workers: int = 2) -> None:
        """Call ``fn`` for each sample, ``workers`` at a time."""
        self.fn, self.workers = fn, max(1, workers)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="databackend-media-load")

    def load(self, i: int) -> Any:
        """Load sample ``i`` in the calling thread."""
        return self.fn(i)

    def submit(self, i: int) -> Future[Any]:
        """Start loading sample ``i``."""
        return self._pool.submit(self.fn, i)

    def close(self) -> None:
        """Stop the threads (pending work is cancelled)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_loader(source: SampleSource, count: int, *, workers: int | None, draft: bool,
                max_pixels: int | None = None) -> ProcessLoader | ThreadLoader:
    """A loader for ``count`` samples: ``workers`` processes (None: one per core when there
    are at least 4 images per core to decode, else threads; 0: threads)."""
    cores = core_count()
    if workers == 0 or (workers is None and count < 4 * cores):
        return ThreadLoader(source, min(8, cores * 2), draft=draft, max_pixels=max_pixels)
    return ProcessLoader(source, workers or cores, draft=draft, max_pixels=max_pixels)
