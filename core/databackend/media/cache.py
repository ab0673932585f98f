"""The media latent cache: a :class:`~databackend.caches.latents.LatentCache` for clips.

It keeps the image cache's storage, naming, verification, repair, precompute pipeline and
counters, and changes four things:

* **key**: the image key's parts plus the sample's window (``start, length, stride``) and
  :data:`MEDIA_PIPELINE_VERSION`, so another window is another entry;
* **load**: only the window's frames are decoded (``metadata.load_frames``: a seek, not a full
  decode), each frame gets the sample's spatial geometry through the shared
  :func:`~databackend.geometry.apply_geometry`, and the clip becomes ``[3, F, H, W]`` in
  ``[-1, 1]``;
* **encode**: the :class:`~databackend.media.encoders.VideoEncoder` maps ``[B, 3, F, H, W]``
  to ``[B, C, F', h, w]``; stored entries are ``[C, F', h, w]``;
* **first_frame** (``is_i2v``): a second cache of the window's first frame encoded as a
  one-frame clip (``[C, 1, h, w]``), the reference's i2v first-frame conditioning latents,
  stored under ``i2v_first_frame/`` beside the clip latents.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from databackend.caches import keys
from databackend.caches.imaging import to_pixels
from databackend.caches.latents import LatentCache
from databackend.errors import CacheError
from databackend.geometry import GEOMETRY_VERSION, apply_geometry

if TYPE_CHECKING:
    import torch

    from databackend.geometry import SampleGeometry
    from databackend.media.windows import Window

__all__ = ["FIRST_FRAME_PREFIX", "MEDIA_PIPELINE_VERSION", "MediaLatentCache", "clip_pixels",
           "media_latent_key"]

#: Bumped when frame decoding, the per-frame geometry or the clip layout change.
MEDIA_PIPELINE_VERSION = 1
FIRST_FRAME_PREFIX = "i2v_first_frame"


def media_latent_key(identity: str, sample_key: str, geometry: SampleGeometry,
                     window: Window) -> str:
    """The 64-hex-digit key of one sample's media latent."""
    doc = ["media-latent", keys.KEY_VERSION, GEOMETRY_VERSION, keys.IMAGE_PIPELINE_VERSION,
           MEDIA_PIPELINE_VERSION, identity, sample_key, keys.geometry_doc(geometry),
           [window.start, window.length, window.stride]]
    return hashlib.sha256(json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
                          .encode()).hexdigest()


def clip_pixels(frames: Any, geometry: SampleGeometry) -> torch.Tensor:
    """Frames ``[F, H, W, 3]`` (uint8) resized and cropped to the bucket, as ``[3, F, h, w]``
    in ``[-1, 1]``: the image pipeline, frame by frame."""
    import torch
    from PIL import Image

    out = []
    for frame in frames:
        image = apply_geometry(Image.fromarray(frame), geometry)
        if image.size != geometry.target_size:
            raise ValueError(f"frame is {image.size} after geometry, expected "
                             f"{geometry.target_size}")
        out.append(to_pixels(image))
    return torch.stack(out, dim=1)


def _clip_problem(latents: Any, target: tuple[int, int], frames: int | None) -> str | None:
    shape: tuple[int, ...] = tuple(getattr(latents, "shape", ()))
    if len(shape) != 4:
        return f"no 4-d `latents` tensor [C, F', h, w] (got {shape})"
    _, f, h, w = shape
    if not h or not w or target[1] % h or target[0] % w or target[0] // w != target[1] // h:
        return f"latents {shape} do not fit target size {target}"
    if frames is not None and f != frames:
        return f"latents {shape} have {f} frames, expected {frames}"
    return None


class SelfDecoding:
    """Mixin for latent caches that decode their own inputs (``_load(i)``) and call their
    encoder themselves (``_encode(batch, inputs)``), through the shared fill pipeline."""

    workers: int | None
    #: Clips and windows are large: two batches loaded ahead (images: four).
    prefetch_batches = 2

    def _load(self, i: int) -> torch.Tensor:
        raise NotImplementedError

    def _encode(self, batch: list[int], inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    def _open_loader(self, count: int | None) -> Any:
        from databackend.caches.loaders import FunctionLoader, core_count

        return FunctionLoader(self._load, 1 if count is None else
                              min(4, self.workers or core_count()))

    def _encode_batch(self, runner: Any, batch: list[int], inputs: list[Any]
                      ) -> list[torch.Tensor]:
        return self._encode(batch, inputs)


class MediaLatentCache(SelfDecoding, LatentCache):
    """Latents of a media dataset (see the module docstring); ``source`` is a
    :class:`~databackend.media.backend.MediaMetadataBackend`."""

    kind = "media-latent"

    def __init__(self, *args: Any, first_frame: bool = False, **kwargs: Any) -> None:
        """The :class:`LatentCache` arguments; ``first_frame``: the i2v first-frame cache."""
        if first_frame:
            kwargs["prefix"] = keys.join(kwargs.get("prefix", ""), FIRST_FRAME_PREFIX)
            kwargs["name"] = f"{kwargs.get('name', 'latents')}:{FIRST_FRAME_PREFIX}"
        super().__init__(*args, **kwargs)
        self.first_frame = first_frame

    def window(self, i: int) -> Window:
        """The window sample ``i``'s entry holds (its first frame for the first-frame cache)."""
        from databackend.media.windows import Window

        w: Window = self.source.index.window(i)
        return Window(w.start, 1, 1) if self.first_frame else w

    def _compute_location(self, i: int) -> tuple[Any, str, str, str]:
        geometry = self._geometry(i)
        key = media_latent_key(self.identity, self.source.sample_key(i), geometry,
                               self.window(i))
        name = str(self.source.index.paths[i])
        path = keys.latent_path(name, key, hash_filenames=self.hash_filenames)
        return geometry, key, keys.join(self.prefix, path), name

    def _problem(self, latents: Any, geometry: SampleGeometry) -> str | None:
        return _clip_problem(latents, geometry.target_size, 1 if self.first_frame else None)

    def _load(self, i: int) -> torch.Tensor:
        from databackend.caches.loaders import oversized

        refused = oversized(self.source, i, getattr(self, "max_pixels", None))
        if refused:  # max_image_pixels bounds each decoded frame, as for images
            raise ValueError(refused)
        source: Any = self.source
        return clip_pixels(source.load_frames(i, self.window(i)), self._geometry(i))

    def _encode(self, batch: list[int], pixels: list[torch.Tensor]) -> list[torch.Tensor]:
        """One encoder call over same-shape clips; checks and splits the output."""
        import torch

        if self.encoder is None:
            raise CacheError(f"media latent cache {self.describe()}: no video encoder was given")
        out = self.encoder(torch.stack(pixels))
        if not isinstance(out, torch.Tensor) or out.ndim != 5 or out.shape[0] != len(batch):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise TypeError(f"video encoder {self.identity!r} must return [B, C, F', h, w] "
                            f"with B={len(batch)}; got {shape}")
        problem = self._problem(out[0], self._geometry(batch[0]))
        if problem:
            raise TypeError(f"video encoder {self.identity!r}: {problem}")
        self.stats.encoded += len(batch)
        return list(out.detach().cpu())

    def _item(self, i: int, latents: torch.Tensor) -> tuple[str, dict[str, Any], dict[str, Any]]:
        path, tensors, meta = super()._item(i, latents)
        w, info = self.window(i), self.source.index.info(i)
        meta.update(window=[w.start, w.length, w.stride], fps=info.fps, frames=info.frames,
                    first_frame=self.first_frame)
        return path, tensors, meta

    def _batch_shape(self, i: int) -> tuple[int, ...]:
        """Clips batch together when their target size and window length agree."""
        return (*self._geometry(i).target_size, self.window(i).length)
