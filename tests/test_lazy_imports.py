"""Lazy registration: ``databackend validate`` and ``databackend plugins`` load every installed
plugin's registration and config classes, never a backend's heavy dependencies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: Modules only a backend implementation (or the runtime) may import.
HEAVY = {"boto3", "botocore", "datasets", "pandas", "pyarrow", "torch"}
PROBE = ("import sys, json; from databackend.cli import main; rc = main(sys.argv[1:]); "
         "print(json.dumps({'rc': rc, 'modules': sorted(sys.modules)}))")


def _modules_after(args: list[str]) -> tuple[int, set[str]]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          timeout=120, check=False)
    result = json.loads(done.stdout.splitlines()[-1])
    return int(result["rc"]), {m.split(".")[0] for m in result["modules"]}


def _config(folder: Path) -> Path:
    (folder / "data").mkdir()
    (folder / "urls.csv").write_text("url,caption\nhttp://127.0.0.1:9/a.png,a\n")
    path = folder / "cfg.json"
    path.write_text(json.dumps([
        {"id": "photos", "type": "local", "instance_data_dir": str(folder / "data")},
        {"id": "s3", "type": "aws", "aws_bucket_name": "bucket"},
        {"id": "urls", "type": "csv", "csv_file": str(folder / "urls.csv"),
         "csv_cache_dir": str(folder / "cache")},
        {"id": "hf", "type": "huggingface", "dataset_name": "user/pets"},
        {"id": "text", "type": "local", "dataset_type": "text_embeds"}]))
    return path


@pytest.mark.parametrize("command", ["validate", "plugins"])
def test_config_commands_import_no_backend_dependencies(command: str, tmp_path: Path) -> None:
    args = ["validate", str(_config(tmp_path))] if command == "validate" else ["plugins"]
    rc, modules = _modules_after(args)
    assert rc == 0
    # the four plugins really were loaded (their registration modules are there)...
    assert {"databackend_local", "databackend_aws", "databackend_csv",
            "databackend_huggingface"} <= modules
    # ...and none of their heavy dependencies
    assert modules & HEAVY == set()


def test_building_a_dataset_loads_its_implementation(tmp_path: Path) -> None:
    """The laziness is real: the aws implementation (boto3) loads when an aws dataset is
    built, and only then."""
    code = ("import sys; from databackend.plugins import make_registry; r = make_registry(); "
            "before = 'boto3' in sys.modules; r.backends['aws']; "
            "print(before, 'boto3' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ["False", "True"]


def test_lazily_registered_classes_carry_their_declarations() -> None:
    """Imported directly (no registry), the classes already have their types' declarations."""
    code = ("from databackend_csv import CsvBackend as C; "
            "from databackend_huggingface import HuggingfaceBackend as H; "
            "from databackend_aws import S3Backend as A; "
            "print(C.read_only, C.default_caption_strategy, dict(C.key_aliases), "
            "H.read_only, H.metadata_backends, sorted(A.ignored_keys), A.read_only)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip()
    assert out == ("True csv {'csv_hash_filenames': 'hash_filenames'} True ('huggingface',) "
                   "['aws'] False")
