"""The hooks databackend calls, grouped by stage. Plugins implement them with ``@hookimpl``.

Five families, each used by the built-in plugins exactly as a third party would use it:

* **config parsing** -- :func:`databackend_register_backends` contributes storage backend classes;
  each class names its config ``type`` (``name``) and the attrs class of its own keys (``Config``).
* **builders** -- :func:`databackend_make_backend` turns a dataset's storage config into a live
  :class:`~databackend.storage.StorageBackend` (first non-None result wins).
* **metadata** -- :func:`databackend_make_metadata_backend` creates the object that scans a dataset
  and holds its bucketed index (first non-None result wins).
* **sampling** -- :func:`databackend_register_strategies` contributes named strategies that choose
  which dataset the next batch comes from.
* **conditioning** -- :func:`databackend_register_conditioning_generators` contributes generators
  that make conditioning datasets from a source dataset (``conditioning`` blocks).

A plugin may accept any subset of a hook's arguments (pluggy passes only those it names).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from databackend.conditioning.generator import ConditioningGenerator
    from databackend.config.models import ImageBackendConfig
    from databackend.context import BuildContext
    from databackend.metadata.backend import MetadataBackend
    from databackend.runtime.strategies import SamplingStrategy
    from databackend.storage.base import StorageBackend

NAME = "databackend"
hookspec = pluggy.HookspecMarker(NAME)

__all__ = [
    "databackend_make_backend",
    "databackend_make_metadata_backend",
    "databackend_register_backends",
    "databackend_register_conditioning_generators",
    "databackend_register_strategies",
    "hookspec",
]

# ---------------------------------------------------------------------------------------------
# Config parsing
# ---------------------------------------------------------------------------------------------


@hookspec
def databackend_register_backends() -> Sequence[type[StorageBackend]]:
    """Contribute storage backend classes, which define the config ``type`` values.

    Each class sets ``name`` (the value of ``"type"`` in the dataset JSON) and ``Config`` (an
    attrs class whose fields are the backend's own config keys, e.g. ``aws_bucket_name``). The
    config loader routes those keys to ``Config`` and the shared keys to the core classes. Two
    plugins registering the same ``name`` is an error naming both.

    :return: backend classes.
    """
    raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def databackend_make_backend(
    backend_type: str, config: Any, dataset_id: str, root: str | None, context: BuildContext
) -> StorageBackend | None:
    """Construct the storage backend for one dataset or cache.

    The built-in implementation (``trylast``) instantiates the registered class for
    ``backend_type``; a plugin may return its own object instead (for instance to share a
    connection pool between datasets). Stops at first non-None result.

    :param backend_type: the config ``type``.
    :param config: the instance of that backend's ``Config`` class.
    :param dataset_id: the id of the dataset or cache the backend serves.
    :param root: a root folder/prefix that overrides the backend's data root (caches), or None.
    :param context: factory-wide options and the plugin registry.
    :return: a storage backend, or None to let the next implementation decide.
    """


# ---------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def databackend_make_metadata_backend(
    dataset: ImageBackendConfig, storage: StorageBackend, context: BuildContext
) -> MetadataBackend | None:
    """Create the metadata backend that scans ``dataset`` and holds its bucketed index.

    The built-in implementation (``trylast``) returns the discovery backend (header-only scans,
    incremental rescans, a persisted index). Stops at first non-None result.

    :param dataset: the validated dataset config.
    :param storage: the dataset's storage backend.
    :param context: factory-wide options and the plugin registry.
    :return: a metadata backend, or None to let the next implementation decide.
    """


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------


@hookspec
def databackend_register_strategies() -> Sequence[type[SamplingStrategy]]:
    """Contribute sampling strategies that pick the dataset of each step.

    Each class sets ``name`` (selectable as the factory's ``sampling`` option or a config's
    ``sampling_strategy``) and implements ``weights(datasets, epoch, step)``. Duplicate names are
    an error naming both plugins.

    :return: strategy classes.
    """
    raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Conditioning
# ---------------------------------------------------------------------------------------------


@hookspec
def databackend_register_conditioning_generators() -> Sequence[type[ConditioningGenerator]]:
    """Contribute conditioning generators, selected by ``conditioning`` blocks in the config.

    Each class subclasses :class:`~databackend.conditioning.generator.ConditioningGenerator` and
    sets ``name`` (the block's ``type``), optional ``aliases``, ``defaults`` (every parameter),
    ``version`` and ``extension``; it implements ``generate(image, rng) -> image`` (a pure
    function of the image and the seeded ``rng``) and may override ``check()`` (parameter
    problems) and ``unavailable()`` (why it cannot run here, e.g. a model that is not
    installed: reported by ``validate``). Duplicate names are an error naming both plugins.
    The built-ins (``superresolution``, ``jpeg_artifacts``, ``random_masks``, ``canny``) are
    registered through this hook too.

    :return: generator classes.
    """
    raise NotImplementedError
