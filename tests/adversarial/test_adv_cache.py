"""Cache entries that rot, a full disk, and a huge image in the cache fill: ``cache --verify``
finds and repairs bad entries, a failed write names the file and a rerun completes, and an
image above ``max_image_pixels`` is a counted, named failure instead of a memory spike."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from advhelpers import cli, dataset, image_folder, snapshot, write_config
from imagefiles import write_image


def _setup(tmp_path: Path, n: int = 4) -> tuple[Path, Path, Path]:
    root = image_folder(tmp_path / "data", n)
    vae = tmp_path / "vae"
    config = write_config(tmp_path / "c.json", [
        dataset(root, image_embeds="vae"),
        {"id": "vae", "type": "local", "dataset_type": "image_embeds", "cache_dir": str(vae)}])
    return root, vae, config


@pytest.mark.timeout(300)
def test_verify_finds_and_repairs_bad_entries(tmp_path: Path) -> None:
    root, vae, config = _setup(tmp_path)
    out_dir = f"output_dir={tmp_path / 'out'}"
    code, out = cli("cache", str(config), "--option", out_dir, "--no-progress")
    assert code == 0 and "existence only" in out, out
    before = snapshot(root)
    entries = sorted(vae.rglob("*.dbt"))
    assert len(entries) == 4
    data = bytearray(entries[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    entries[0].write_bytes(bytes(data))  # a flipped bit
    entries[1].write_bytes(entries[1].read_bytes()[:40])  # truncated
    entries[2].write_bytes(b"")  # empty
    code, out = cli("cache", str(config), "--option", out_dir, "--no-progress")
    assert code == 0 and "OK: 0 encoded" in out, out  # a plain rerun only checks existence
    code, out = cli("cache", str(config), "--option", out_dir, "--no-progress", "--verify")
    assert code == 0, out
    assert "latents ds: 4 checked, 1 intact, 0 missing, 3 bad, 3 repaired" in out, out
    assert "3 bad, 3 repaired" in out.splitlines()[-1]
    code, out = cli("cache", str(config), "--option", out_dir, "--no-progress", "--verify")
    assert code == 0 and "4 checked, 4 intact, 0 missing, 0 bad" in out, out
    assert snapshot(root) == before


def test_verify_from_python_without_encoders_reports_only(tmp_path: Path,
                                                          make_context: object) -> None:
    from databackend.caches import ReferenceTextEncoder, ReferenceVAE
    from databackend.caches.precompute import precompute_plan
    from databackend.caches.verify import verify_plan
    from databackend.config.loader import load_config

    _, vae, config = _setup(tmp_path, 3)
    context = make_context()  # type: ignore[operator]
    plan = load_config(config, context.registry, context.options)
    precompute_plan(plan, context, text_encoder=ReferenceTextEncoder(),
                    image_encoder=ReferenceVAE(), progress=False)
    victim = sorted(vae.rglob("*.dbt"))[0]
    victim.write_bytes(b"garbage")
    results = verify_plan(plan, context, text_encoder=None, image_encoder=ReferenceVAE(),
                          progress=False)
    latents = next(r for r in results if r.kind == "latents")
    assert (latents.checked, latents.bad, latents.repaired) == (3, 1, 0)
    assert victim.read_bytes() == b"garbage"  # nothing removed without a way to repair it


DISK_FULL = textwrap.dedent('''
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from databackend.cli import main
    sys.exit(main(sys.argv[2:]))
''')


@pytest.mark.timeout(300)
@pytest.mark.parametrize("limit", [600, 2000])
def test_full_disk_is_a_clear_error_and_a_rerun_completes(tmp_path: Path, limit: int) -> None:
    """Writes fail once files pass ``limit`` bytes (RLIMIT_FSIZE: the same OSError path as a
    full disk): the message names the file and what was written, no traceback, nothing
    partial is left; a rerun without the limit completes."""
    root, vae, config = _setup(tmp_path, 3)
    before = snapshot(root)
    args = ["cache", str(config), "--option", f"output_dir={tmp_path / 'out'}", "--no-progress"]
    proc = subprocess.run([sys.executable, "-c", DISK_FULL, str(limit), *args],
                          capture_output=True, text=True, timeout=240)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in text, text
    assert "could not write" in text and "File too large" in text, text
    assert not list(tmp_path.rglob("*.tmp-db"))
    code, out = cli(*args)
    assert code == 0 and "OK:" in out, out
    assert len(list(vae.rglob("*.dbt"))) == 3
    assert snapshot(root) == before


def test_huge_image_is_refused_before_decoding(tmp_path: Path) -> None:
    root, vae, config = _setup(tmp_path, 2)
    write_image(root / "huge.png", 1200, 1000)
    before = snapshot(root)
    code, out = cli("cache", str(config), "--option", f"output_dir={tmp_path / 'out'}",
                    "--option", "max_image_pixels=1000000", "--no-progress")
    assert code == 1 and "huge.png" in out and "max_image_pixels" in out, out
    assert "1 failed" in out and len(list(vae.rglob("*.dbt"))) == 2
    assert snapshot(root) == before
    assert os.path.getsize(root / "huge.png") > 0
