"""The cache entry format: round trips, verification, and never a wrong tensor."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
import torch

from databackend.caches import keys
from databackend.caches.format import FormatError, pack, read_blobs, unpack, unpack_meta
from databackend.geometry import SampleGeometry
from databackend.storage.localdir import LocalDirectory


def _tensors() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {"prompt_embeds": torch.randn(77, 16, generator=gen).half(),
            "pooled": torch.randn(32, generator=gen).bfloat16(),
            "attention_mask": torch.ones(77, dtype=torch.int64),
            "flags": torch.tensor([True, False]), "scalar": torch.tensor(1.5),
            "empty": torch.zeros(0, 3)}


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_keeps_dtype_shape_values_and_meta(compress: bool) -> None:
    tensors = _tensors()
    data = pack(tensors, {"key": "k", "size": [3, 4]}, compress=compress)
    out, meta = unpack(data)
    assert meta == {"key": "k", "size": [3, 4]}
    assert unpack_meta(data) == meta
    assert list(out) == list(tensors)
    for name, t in tensors.items():
        assert out[name].dtype == t.dtype and out[name].shape == t.shape
        assert torch.equal(out[name], t)


def test_compression_shrinks_compressible_payloads() -> None:
    zeros = {"latents": torch.zeros(4, 64, 64, dtype=torch.float16)}
    assert len(pack(zeros, compress=True)) < len(pack(zeros)) // 10


def test_writable_buffer_gives_views_bytes_give_copies() -> None:
    data = pack({"x": torch.arange(8, dtype=torch.float32)})
    buf = bytearray(data)
    view, _ = unpack(buf)
    view["x"][0] = 42.0  # writes into buf: no copy was made
    assert bytes(buf) != data
    copy, _ = unpack(data)
    copy["x"][0] = 7.0  # an immutable source is copied, never mutated
    assert unpack(data)[0]["x"][0] == 0.0


def test_payload_is_aligned() -> None:
    data = pack({"a": torch.ones(3, dtype=torch.int8), "b": torch.ones(5)})
    header_len = struct.unpack_from("<I", data, 8)[0]
    assert (32 + header_len) % 64 == 0


@pytest.mark.parametrize("compress", [False, True])
def test_any_single_byte_flip_is_detected(compress: bool) -> None:
    data = pack(_tensors(), {"key": "k"}, compress=compress)
    rng = random.Random(1)
    for pos in sorted({*range(32), *rng.sample(range(len(data)), 300)}):
        bad = bytearray(data)
        bad[pos] ^= 1 << rng.randrange(8)
        with pytest.raises(FormatError):
            unpack(bytes(bad))


def test_every_bit_of_a_small_entry_is_covered() -> None:
    data = pack({"x": torch.arange(40, dtype=torch.int16)}, {"key": "k"}, compress=True)
    assert (len(data) - 32) % 8  # a compressed payload with a tail that is not a whole word
    for pos in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[pos] ^= 1 << bit
            with pytest.raises(FormatError):
                unpack(bytes(bad))


def test_swapped_or_moved_words_are_detected() -> None:
    data = pack({"x": torch.arange(64, dtype=torch.int64)})
    start = len(data) - 64 * 8
    words = [data[start + 8 * k:start + 8 * k + 8] for k in range(64)]
    swapped = data[:start] + b"".join([words[5], *words[1:5], words[0], *words[6:]])
    with pytest.raises(FormatError, match="payload checksum"):
        unpack(swapped)
    rotated = data[:start] + b"".join(words[1:] + words[:1])
    with pytest.raises(FormatError, match="payload checksum"):
        unpack(rotated)


@pytest.mark.parametrize("cut", [0, 3, 23, 31, 32, 100, -1])
def test_truncation_and_trailing_bytes_are_detected(cut: int) -> None:
    data = pack(_tensors())
    with pytest.raises(FormatError, match=r"truncated|length"):
        unpack(data[:cut])
    with pytest.raises(FormatError, match="length"):
        unpack(data + b"\0")


def test_wrong_magic_and_version() -> None:
    data = bytearray(pack(_tensors()))
    with pytest.raises(FormatError, match="magic"):
        unpack(b"PK\x03\x04" + bytes(data[4:]))
    data[4] = 9
    with pytest.raises(FormatError, match="version"):
        unpack(bytes(data))


def test_random_garbage_never_raises_anything_else() -> None:
    rng = random.Random(2)
    for n in range(300):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
        if n % 3 == 0:  # a valid-looking prefix with a garbage body
            blob = b"DBTC\x01\x00\x00\x00" + blob
        with pytest.raises(FormatError):
            unpack(blob)


def test_unsupported_dtype_is_refused() -> None:
    with pytest.raises(TypeError, match="dtype"):
        pack({"c": torch.zeros(2, dtype=torch.complex64)})


def test_read_blobs_local_and_generic_agree(tmp_path: Path) -> None:
    storage = LocalDirectory(root=str(tmp_path))
    storage.write("x/a.dbt", b"abc")
    paths = ["x/a.dbt", "x/missing.dbt"]
    local = read_blobs(storage, paths)
    assert isinstance(local[0], memoryview) and not local[0].readonly
    assert bytes(local[0]) == b"abc"
    assert isinstance(local[1], FileNotFoundError)

    class Remote(LocalDirectory):
        def local_path(self, path: str) -> str | None:
            return None

    remote = read_blobs(Remote(root=str(tmp_path)), paths)
    assert remote[0] == b"abc" and isinstance(remote[1], FileNotFoundError)


def test_keys_cover_encoder_sample_and_geometry() -> None:
    g = SampleGeometry((100, 80), (80, 64), (64, 64), (0, 8), 1.0)
    base = keys.latent_key("vae", "a.jpg|10|1.0", g)
    assert len(base) == 64
    assert keys.latent_key("vae2", "a.jpg|10|1.0", g) != base
    assert keys.latent_key("vae", "a.jpg|11|1.0", g) != base
    moved = SampleGeometry((100, 80), (80, 64), (64, 64), (0, 0), 1.0)
    assert keys.latent_key("vae", "a.jpg|10|1.0", moved) != base
    assert keys.text_key("t", "a cat") != keys.text_key("t", "a cat ")
    assert keys.text_key("t", "a cat") != keys.text_key("u", "a cat")


def test_file_names() -> None:
    k = "ab" + "0" * 62
    assert keys.latent_path("cats/x.jpg", k) == f"cats/{k}.dbt"
    assert keys.latent_path("x.jpg", k, hash_filenames=False) == "x.jpg.dbt"
    assert keys.latent_path("c/x.png", k, hash_filenames=False) != keys.latent_path(
        "c/x.jpg", k, hash_filenames=False)
    assert keys.text_path(k) == f"ab/{k}.dbt"
    assert keys.join("p/q", "a.dbt") == "p/q/a.dbt" and keys.join("", "a.dbt") == "a.dbt"
