"""Benchmark the whole-process cost of ``databackend validate`` on a 4-plugin install.

Usage::

    python benchmarks/validate_startup.py            # 15 runs of each, alternating

Writes a config with one dataset of each built-in type (local, aws, csv, huggingface) plus a
text-embed cache, then times, in fresh processes and alternating:

* the baseline: ``python -c "import databackend, json; json.load(open(CONFIG))"``;
* ``python -m databackend validate CONFIG`` (entry points, registration, full validation).

Prints the median wall time of each and their ratio (target <= 1.5x: a backend's config class
loads apart from its implementation, so boto3, datasets, pandas and pyarrow never load), and
which of those heavy modules the validate process imported (target: none).

Byte-code caching is on for both (as in an installed package), even where the environment sets
``PYTHONDONTWRITEBYTECODE``; ``--no-bytecode`` measures without it (every module compiled from
source in every process).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("boto3", "botocore", "datasets", "pandas", "pyarrow", "torch")


def write_config(folder: Path) -> Path:
    """A config using all four built-in backend types (nothing is contacted by validate)."""
    (folder / "data").mkdir(exist_ok=True)
    (folder / "urls.csv").write_text("url,caption\nhttp://127.0.0.1:9/a.png,a\n")
    entries = [
        {"id": "photos", "type": "local", "instance_data_dir": str(folder / "data")},
        {"id": "s3", "type": "aws", "aws_bucket_name": "bucket", "aws_data_prefix": "p/"},
        {"id": "urls", "type": "csv", "csv_file": str(folder / "urls.csv"),
         "csv_cache_dir": str(folder / "csv-cache")},
        {"id": "hf", "type": "huggingface", "huggingface": {"dataset_name": "user/pets"}},
        {"id": "text", "type": "local", "dataset_type": "text_embeds", "default": True},
    ]
    path = folder / "multidatabackend.json"
    path.write_text(json.dumps(entries))
    return path


def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one process (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def heavy_modules(config: Path) -> list[str]:
    """The heavy modules a validate process imported."""
    code = ("import sys, json; from databackend.cli import main; rc = main(sys.argv[1:]); "
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, "validate", str(config)], check=True,
                         capture_output=True, text=True).stdout.splitlines()[-1]
    return [m for m in json.loads(out) if m.split(".")[0] in HEAVY and "." not in m]


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-bytecode", action="store_true",
                        help="compile every module from source in every process")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp))
        base_cmd = [sys.executable, "-c",
                    f"import databackend, json; json.load(open({str(config)!r}))"]
        validate_cmd = [sys.executable, "-m", "databackend", "validate", str(config)]
        timed(base_cmd, env), timed(validate_cmd, env)  # warm the file and byte-code caches
        base, val = [], []
        for _ in range(args.runs):
            base.append(timed(base_cmd, env))
            val.append(timed(validate_cmd, env))
        heavy = heavy_modules(config)
    b, v = statistics.median(base), statistics.median(val)
    mode = "no byte-code cache" if args.no_bytecode else "byte-code cached"
    print(f"import databackend + JSON: {b * 1000:8.1f} ms (median of {args.runs}, {mode})")
    print(f"databackend validate:      {v * 1000:8.1f} ms (median of {args.runs})")
    print(f"validate vs import: ratio {v / b:.2f}x   (target <= 1.50x)")
    print(f"heavy modules imported by validate: {', '.join(heavy) or 'none'}   (target: none)")


if __name__ == "__main__":
    main()
