"""Audio datasets: the ``audio`` block, probing, duration buckets, audio latent caches, batches.

See ``docs/audio.md``. Submodules import lazily (``soundfile`` and ``av`` only when a file is
probed or decoded), so validating a config never imports an audio library.
"""
