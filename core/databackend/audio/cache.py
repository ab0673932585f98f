"""The audio latent cache: the media latent cache (:mod:`databackend.media.cache`) for audio.

Like the media latent cache of video, it keeps the image cache's storage, naming,
verification, repair, precompute pipeline (loader threads ahead of the encoder, a background
writer) and counters, and changes what is specific to audio:

* **key**: the encoder identity, the sample identity, the bucket and the window (start,
  length) of the index, and :data:`AUDIO_PIPELINE_VERSION`; another window is another entry;
* **load**: the window is decoded, mixed to the encoder's channels, resampled to its rate and
  zero-padded to the bucket's length (:func:`databackend.audio.decode.decode_window`):
  ``[channels, round(bucket seconds * rate)]`` float32;
* **encode**: an :class:`~databackend.audio.encoders.AudioEncoder` maps ``[B, channels, N]``
  to ``[B, D, T]``; entries are ``[D, T]``;
* :meth:`AudioLatentCache.valid` says how many of a clip's samples are audio (not padding),
  from the index alone, so batches carry each clip's true latent length.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from databackend.audio.decode import decode_window
from databackend.caches import keys
from databackend.errors import CacheError
from databackend.media.cache import MediaLatentCache
from databackend.media.probe import ProbeSource, probe_local, probe_ranged

if TYPE_CHECKING:
    import torch

    from databackend.geometry import SampleGeometry

__all__ = ["AUDIO_PIPELINE_VERSION", "AudioLatentCache"]

#: Bumped when decoding, channel mixing, resampling or padding change.
AUDIO_PIPELINE_VERSION = 1


class AudioLatentCache(MediaLatentCache):
    """Latents of an audio dataset (see the module docstring); ``source`` is its
    :class:`~databackend.media.backend.MediaMetadataBackend`. The audio kind's
    ``cache_class`` (:class:`~databackend.audio.spec.AudioSpec`)."""

    kind = "audio-latent"

    def _compute_location(self, i: int) -> tuple[Any, str, str, str]:
        index = self.source.index
        w = index.window(i)
        doc = ["audio-latent", keys.KEY_VERSION, AUDIO_PIPELINE_VERSION, self.identity,
               self.source.sample_key(i), list(index.bucket_of(i)), [w.start, w.length]]
        key = hashlib.sha256(json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
                             .encode()).hexdigest()
        name = str(index.paths[i])
        path = keys.latent_path(name, key, hash_filenames=self.hash_filenames)
        return self._geometry(i), key, keys.join(self.prefix, path), name

    def _rate_channels(self) -> tuple[int, int]:
        if self.encoder is None:
            raise CacheError(f"audio latent cache {self.describe()}: no audio encoder was given")
        enc: Any = self.encoder
        return int(enc.sample_rate), int(enc.channels)

    def total(self, i: int, rate: int) -> int:
        """Samples of clip ``i``'s encoder input at ``rate``: its bucket's length."""
        return round(int(self.source.index.bucket_of(i)[0]) * rate / 1000)

    def valid(self, i: int, rate: int) -> int:
        """Samples of clip ``i``'s encoder input at ``rate`` that are audio, not padding."""
        index = self.source.index
        native = int(index.info(i).sample_rate)
        if native <= 0:  # a silent clip (``allow_zero_audio``): its silence is the audio
            return self.total(i, rate)
        return min(self.total(i, rate), round(int(index.window(i).length) * rate / native))

    def _source(self, i: int) -> ProbeSource:
        meta: Any = self.source
        index, storage = meta.index, meta.storage
        path = str(index.paths[i])
        local = storage.local_path(path)
        if local is not None:
            return probe_local(local, path)
        return probe_ranged(lambda at, n: storage.read_range(path, at, n), path,
                            int(index.file_size[i]), block=1 << 20)

    def _load(self, i: int) -> torch.Tensor:
        import torch

        rate, channels = self._rate_channels()
        index = self.source.index
        if int(index.info(i).channels) == 0:  # a video without audio, ``allow_zero_audio``
            return torch.zeros((channels, self.total(i, rate)), dtype=torch.float32)
        audio, _ = decode_window(self._source(i), index.window(i),
                                 native_rate=index.info(i).sample_rate, target_rate=rate,
                                 channels=channels, target_samples=self.total(i, rate))
        return torch.from_numpy(audio)

    def _problem(self, latents: Any, geometry: SampleGeometry) -> str | None:
        shape = tuple(getattr(latents, "shape", ()))
        return None if len(shape) == 2 and all(shape) else \
            f"no 2-d `latents` tensor [D, T] (got {shape})"

    def _batch_shape(self, i: int) -> tuple[int, ...]:
        """Clips encode together when their buckets (so their input lengths) agree."""
        return self.source.index.bucket_of(i)  # type: ignore[no-any-return]

    def _encode(self, batch: list[int], pixels: list[torch.Tensor]) -> list[torch.Tensor]:
        """One encoder call over same-length clips; checks and splits the output."""
        import torch

        self._rate_channels()
        assert self.encoder is not None
        out = self.encoder(torch.stack(pixels))
        if not isinstance(out, torch.Tensor) or out.ndim != 3 or out.shape[0] != len(batch):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise TypeError(f"audio encoder {self.identity!r} must return [B, D, T] with "
                            f"B={len(batch)}; got {shape}")
        self.stats.encoded += len(batch)
        return list(out.detach().cpu())

    def _item(self, i: int, latents: torch.Tensor) -> tuple[str, dict[str, Any], dict[str, Any]]:
        path, tensors, meta = super()._item(i, latents)
        w, info = self.source.index.window(i), self.source.index.info(i)
        meta.update(window=[w.start, w.length], sample_rate=info.sample_rate,
                    bucket_ms=int(self.source.index.bucket_of(i)[0]))
        return path, tensors, meta
