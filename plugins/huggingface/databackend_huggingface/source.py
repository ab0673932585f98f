"""Opening the ``datasets`` dataset behind a config, and its fingerprint.

``dataset_name`` is resolved in this order:

1. a local folder written by ``save_to_disk`` (it holds ``state.json`` and ``dataset_info.json``,
   or ``dataset_dict.json``): ``datasets.load_from_disk``, then ``split``;
2. another local folder: ``datasets.load_dataset(folder, split=...)`` (parquet, arrow, JSON
   lines or CSV files; splits are inferred from file names such as ``train-00000.parquet``);
3. a local file: the builder for its extension with ``data_files={split: file}``;
4. anything else: a hub dataset, ``load_dataset(name, split=..., revision=...)``.

The fingerprint identifies the rows: for local data it hashes the data files' names, sizes and
modification times (the same in normal and streaming mode); for hub datasets it is the
fingerprint ``datasets`` computes (normal mode) or ``name@revision/split`` (streaming: pin a
``revision`` so that a changed hub dataset is noticed).
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any

import attrs

from databackend_huggingface.config import HFSettings
from databackend_huggingface.errors import DatasetLoadError

__all__ = ["DATA_EXTENSIONS", "OpenedDataset", "open_dataset"]

log = logging.getLogger(__name__)

#: Local data file extensions and the ``datasets`` builder that reads them.
DATA_EXTENSIONS = {".parquet": "parquet", ".arrow": "arrow", ".jsonl": "json", ".json": "json",
                   ".csv": "csv"}
_SAVED_MARKERS = (("state.json", "dataset_info.json"), ("dataset_dict.json",))


@attrs.define
class OpenedDataset:
    """A loaded dataset with what the backends need to know about it.

    ``kind`` is ``saved``, ``folder``, ``file`` or ``hub``; ``root`` is the local folder that
    relative image paths are resolved against (None for hub datasets).
    """

    dataset: Any
    kind: str
    fingerprint: str
    streaming: bool
    root: str | None

    @property
    def column_names(self) -> list[str] | None:
        """Top-level columns (None when a streaming dataset does not declare its features)."""
        names = getattr(self.dataset, "column_names", None)
        return list(names) if names is not None else None

    @property
    def features(self) -> Any:
        """The ``datasets.Features`` (None when unknown)."""
        return getattr(self.dataset, "features", None)


def _is_saved(path: str) -> bool:
    return os.path.isdir(path) and any(
        all(os.path.isfile(os.path.join(path, m)) for m in markers) for markers in _SAVED_MARKERS)


def local_fingerprint(path: str, split: str) -> str:
    """Hash of every file's relative name, size and mtime under ``path`` (or of the file)."""
    digest = hashlib.sha256(f"{split}\0".encode())
    if os.path.isfile(path):
        st = os.stat(path)
        digest.update(f"{os.path.basename(path)}|{st.st_size}|{st.st_mtime_ns}".encode())
        return digest.hexdigest()[:16]
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            full = os.path.join(folder, name)
            st = os.stat(full)
            rel = os.path.relpath(full, path)
            digest.update(f"{rel}|{st.st_size}|{st.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:16]


def _pick_split(loaded: Any, split: str, dataset_id: str, name: str) -> Any:
    """A split of a ``DatasetDict`` (a plain ``Dataset`` is returned as is)."""
    if not hasattr(loaded, "keys"):
        return loaded
    if split not in loaded:
        raise DatasetLoadError(f"dataset {dataset_id!r}: huggingface dataset {name!r} has no "
                               f"split {split!r}; splits: {', '.join(sorted(loaded.keys()))}")
    return loaded[split]


def _load_saved(path: str, s: HFSettings, dataset_id: str, streaming: bool) -> Any:
    import datasets

    ds = _pick_split(datasets.load_from_disk(path), s.split, dataset_id, s.dataset_name)
    return ds.to_iterable_dataset() if streaming else ds


def _load(s: HFSettings, streaming: bool, **kw: Any) -> Any:
    import datasets

    extra: dict[str, Any] = {"cache_dir": s.cache_dir, "streaming": streaming}
    if s.num_proc and not streaming:
        extra["num_proc"] = s.num_proc
    return datasets.load_dataset(split=s.split, **kw, **extra)


def _open(s: HFSettings, dataset_id: str, streaming: bool) -> tuple[Any, str, str | None]:
    path = os.path.abspath(os.path.expanduser(s.dataset_name))
    if _is_saved(path):
        return _load_saved(path, s, dataset_id, streaming), "saved", path
    if os.path.isdir(path):
        return _load(s, streaming, path=path), "folder", path
    if os.path.isfile(path):
        ext = os.path.splitext(path)[1].lower()
        if ext not in DATA_EXTENSIONS:
            raise DatasetLoadError(f"dataset {dataset_id!r}: `dataset_name` {s.dataset_name!r} "
                                   f"is a {ext or 'extension-less'} file; use one of "
                                   f"{', '.join(sorted(DATA_EXTENSIONS))}")
        ds = _load(s, streaming, path=DATA_EXTENSIONS[ext], data_files={s.split: path})
        return ds, "file", os.path.dirname(path)
    return _load(s, streaming, path=s.dataset_name, revision=s.revision), "hub", None


def open_dataset(s: HFSettings, dataset_id: str, *, streaming: bool | None = None
                 ) -> OpenedDataset:
    """Load the dataset of ``s`` (see the module docstring); errors name the dataset id."""
    stream = s.streaming if streaming is None else streaming
    try:
        ds, kind, root = _open(s, dataset_id, stream)
    except DatasetLoadError:
        raise
    except Exception as exc:  # datasets raises many types (FileNotFoundError, ValueError, ...)
        where = "" if os.path.exists(os.path.expanduser(s.dataset_name)) else \
            " (not a local path, so it was looked up on the hub)"
        raise DatasetLoadError(f"dataset {dataset_id!r}: cannot load huggingface dataset "
                               f"{s.dataset_name!r}{where}, split {s.split!r}: "
                               f"{type(exc).__name__}: {exc}") from exc
    if kind == "hub":
        fp = getattr(ds, "_fingerprint", None) or hashlib.sha256(
            f"{s.dataset_name}@{s.revision or ''}/{s.split}".encode()).hexdigest()[:16]
    else:
        fp = local_fingerprint(os.path.abspath(os.path.expanduser(s.dataset_name)), s.split)
    log.info("dataset %r: opened huggingface %s %r split %r (%s, fingerprint %s)", dataset_id,
             kind, s.dataset_name, s.split, "streaming" if stream else "random access", fp)
    return OpenedDataset(dataset=ds, kind=kind, fingerprint=str(fp), streaming=stream, root=root)
