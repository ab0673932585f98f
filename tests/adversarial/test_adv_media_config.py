"""Bad values of the video, audio, conditioning and scale keys: ``validate`` reports every one,
all at once, naming the key, never a traceback; nothing is created outside the output folder
(a generated conditioning set's id names its folder)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
from advhelpers import cli, dataset, image_folder, snapshot, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

BAD: list[tuple[dict[str, Any], str]] = [
    ({"dataset_type": "video", "video": {"num_frames": 10**15}}, "`video.num_frames` is out of"),
    ({"dataset_type": "video", "video": {"min_frames": math.nan}}, "`video.min_frames`"),
    ({"dataset_type": "video", "video": {"max_frames": math.inf}}, "`video.max_frames`"),
    ({"dataset_type": "video", "video": {"frame_stride": -3}}, "`video.frame_stride`"),
    ({"dataset_type": "video", "video": {"bucket_strategy": "resolution_frames",
                                         "frame_interval": 10**12}}, "`video.frame_interval`"),
    ({"dataset_type": "audio", "audio": {"duration_interval": math.nan}},
     "`audio.duration_interval`"),
    ({"dataset_type": "audio", "audio": {"max_duration_seconds": math.inf}},
     "`audio.max_duration_seconds`"),
    ({"dataset_type": "audio", "audio": {"duration": 1e300}}, "`audio.duration` is out of"),
    ({"dataset_type": "audio", "audio": {"sample_rate": 10**19}}, "`audio.sample_rate`"),
    ({"dataset_type": "audio", "audio": {"channels": 0}}, "`audio.channels`"),
    ({"dataset_type": "audio", "audio": {"lyrics_filename_format": 5}},
     "`audio.lyrics_filename_format`"),
    ({"rescan": "sometimes"}, "`rescan`"),
    ({"rescan": 7}, "`rescan`"),
    ({"conditioning": {"type": "canny", "id": "../../escape"}}, "'..' segment"),
    ({"conditioning": {"type": "canny", "id": "/abs/escape"}}, "is an absolute path"),
    ({"conditioning": {"type": "canny", "id": ["x"]}}, "`id` must be a string"),
    ({"conditioning": [{"type": "canny", "instance_data_dir": 5}]},
     "`instance_data_dir` must be a string"),
]


def _validate(tmp_path: Path, entry: dict[str, Any]) -> str:
    images = image_folder(tmp_path / "images", 1)
    before, cwd_before, images_before = snapshot(tmp_path), set(os.listdir(".")), snapshot(images)
    out_dir = tmp_path / "out"
    code, out = cli("validate", str(write_config(tmp_path / "c.json", [entry])),
                    "--option", f"output_dir={out_dir}")
    assert code == 1 and "Traceback" not in out and "error:" in out, out
    created = set(snapshot(tmp_path)) - set(before)
    assert all(p.startswith("out") or p == "c.json" for p in created), created
    assert set(os.listdir(".")) == cwd_before and not os.path.exists("/abs")
    assert snapshot(images) == images_before
    return out


@pytest.mark.parametrize(("change", "expected"), BAD, ids=[e for _, e in BAD])
def test_bad_media_and_scale_values(tmp_path: Path, change: dict[str, Any],
                                    expected: str) -> None:
    entry = {**dataset(tmp_path / "images"), **change}
    out = _validate(tmp_path, entry)
    assert expected in out and "'ds'" in out, out


def test_every_problem_at_once(tmp_path: Path) -> None:
    entry = {**dataset(tmp_path / "images"), "dataset_type": "audio", "rescan": 3,
             "audio": {"duration_interval": math.nan, "sample_rate": 10**19, "channels": 0},
             "conditioning": [{"type": "canny", "id": "/abs/y"},
                              {"type": "canny", "instance_data_dir": []}]}
    out = _validate(tmp_path, entry)
    for text in ("`rescan`", "`audio.duration_interval`", "`audio.sample_rate`",
                 "`audio.channels`", "is an absolute path", "`instance_data_dir` must be"):
        assert text in out, out


_NUMBERS = st.one_of(st.integers(min_value=-(10**20), max_value=10**20),
                     st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                     st.text(max_size=5), st.none())
_VIDEO = st.dictionaries(st.sampled_from(["num_frames", "min_frames", "max_frames",
                                          "frame_interval", "frame_stride"]), _NUMBERS,
                         min_size=1, max_size=3)
_AUDIO = st.dictionaries(st.sampled_from(["duration_interval", "max_duration_seconds",
                                          "min_duration_seconds", "duration", "sample_rate",
                                          "channels"]), _NUMBERS, min_size=1, max_size=3)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(video=_VIDEO, audio=_AUDIO)
def test_fuzzed_media_blocks_never_crash_validate(tmp_path: Path, video: dict[str, Any],
                                                  audio: dict[str, Any]) -> None:
    """Any mix of numbers in the video and audio blocks: a clean verdict, never a traceback;
    NaN, infinities and absurd sizes are always refused."""
    images = image_folder(tmp_path / "images", 1)
    for kind, block in (("video", video), ("audio", audio)):
        entry = {**dataset(images), "dataset_type": kind, kind: block}
        code, out = cli("validate", str(write_config(tmp_path / "c.json", [entry])),
                        "--option", f"output_dir={tmp_path / 'out'}")
        assert code in (0, 1) and "Traceback" not in out, out
        absurd = [v for v in block.values() if (isinstance(v, float) and not math.isfinite(v))
                  or (isinstance(v, int) and not isinstance(v, bool) and abs(v) > 10**12)]
        if absurd:
            assert code == 1, (block, out)


@pytest.mark.parametrize(("option", "expected"), [
    ("framerate=0", "`framerate`"), ("framerate=99999999999999999999", "`framerate`"),
    ("framerate=nan", "`framerate`"), ("mixture_steps_per_epoch=-1", "mixture_steps_per_epoch"),
    ("mixture_steps_per_epoch=1e30", "mixture_steps_per_epoch"),
    ("conditioning_multidataset_sampling=zzz", "conditioning_multidataset_sampling")])
def test_bad_media_and_mixture_options(tmp_path: Path, option: str, expected: str) -> None:
    """Factory options of the video, mixture and conditioning work: clear errors."""
    images = image_folder(tmp_path / "images", 1)
    config = write_config(tmp_path / "c.json", [{**dataset(images), "dataset_type": "video"}])
    code, out = cli("validate", str(config), "--option", option,
                    "--option", f"output_dir={tmp_path / 'out'}")
    assert code == 1 and "Traceback" not in out and expected in out, out


@pytest.mark.parametrize("fmt", ["{nope}.txt", "{name.nope}", "{0}", "{"])
def test_unfillable_lyrics_format(tmp_path: Path, fmt: str) -> None:
    entry = {**dataset(tmp_path / "images"), "dataset_type": "audio",
             "audio": {"lyrics_filename_format": fmt}}
    out = _validate(tmp_path, entry)
    assert "`audio.lyrics_filename_format`" in out and "cannot be filled" in out, out
