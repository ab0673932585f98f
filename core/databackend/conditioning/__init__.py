"""Conditioning, paired and eval datasets (docs/conditioning.md).

Modules: :mod:`~databackend.conditioning.config` (links, settings inheritance, rules),
:mod:`~databackend.conditioning.expand` (generator blocks), :mod:`~databackend.conditioning.generator`
(the generator interface), :mod:`~databackend.conditioning.generate` (running generators),
:mod:`~databackend.conditioning.pairing` (pairing by relative path), :mod:`~databackend.conditioning.aligned`
(conditioning samples in the source's geometry), :mod:`~databackend.conditioning.source` (batch
fields) and :mod:`~databackend.conditioning.build` (the factory's glue).
"""
