"""Tests for databackend.geometry: the worked vectors of REFERENCE.md section 4, hand-computed
cases for each rule in BUCKETING.md, each deliberate difference, and property tests."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from databackend.geometry import (
    GeometryConfigError,
    GeometryParams,
    SampleGeometry,
    _align,
    _aspect,
    apply_geometry,
    aspect_out_of_range,
    compute_geometry,
    filter_reason,
    pixel_resolution,
)


def params(resolution: Any = 1024, resolution_type: str = "pixel_area", **kw: Any
           ) -> GeometryParams:
    return GeometryParams.create(resolution=resolution, resolution_type=resolution_type, **kw)


def sizes(geo: SampleGeometry) -> tuple[tuple[int, int], tuple[int, int], float]:
    return geo.target_size, geo.intermediary_size, geo.aspect_bucket


# ---------------------------------------------------------------- REFERENCE.md §4 worked values

WORKED = [
    # (resolution, type, alignment, original, target, intermediary, bucket)
    (1024, "pixel_area", 64, (1920, 1080), (1344, 768), (1365, 768), 1.75),
    (1024, "pixel_area", 64, (1080, 1920), (768, 1344), (768, 1365), 0.57),
    (1024, "pixel_area", 64, (4000, 3000), (1152, 896), (1194, 896), 1.29),
    (1024, "pixel_area", 64, (800, 600), (1152, 896), (1194, 896), 1.29),
    (1024, "pixel_area", 64, (1024, 1024), (1024, 1024), (1024, 1024), 1.0),
    (1024, "pixel", 64, (1920, 1080), (1792, 1024), (1820, 1024), 1.75),
    (1024, "pixel", 64, (1080, 1920), (1024, 1856), (1044, 1856), 0.55),
    (1024, "pixel", 64, (4000, 3000), (1344, 1024), (1365, 1024), 1.31),
    (1024, "pixel", 64, (800, 600), (1344, 1024), (1365, 1024), 1.31),
    (1024, "pixel", 64, (1024, 1024), (1024, 1024), (1024, 1024), 1.0),
    # area 1.0 at A=16: the reference's calculator uses E = R(int(sqrt(1e6))) = R16(1000) = 992
    # (1328x736, 736x1328, 1152x864, 992x992). We deliberately use the square-table edge
    # P = 1024 for 1.0 MP in the calculator too (difference 2), so our values are computed with
    # E = 1024, by hand: 1920x1080 -> a=1.78, R16(1024*sqrt(1.78)=1366.2)=1360,
    # R16(1024/sqrt(1.78)=767.5)=768, Wi=int(768*16/9)=1365.
    (1.0, "area", 16, (1920, 1080), (1360, 768), (1365, 768), 1.77),
    # a=0.56: Wt=R16(766.3)=768, Ht=R16(1368.4)=1376; Wi=768, Hi=int(768/0.5625)=1365 -> grows by
    # dH=11, dW=int(11*0.5625)=6.
    (1.0, "area", 16, (1080, 1920), (768, 1376), (774, 1376), 0.56),
    # a=1.33: Wt=R16(1180.9)=1184, Ht=R16(887.9)=880; Hi=880, Wi=1173 -> grows dW=11, dH=8.
    (1.0, "area", 16, (4000, 3000), (1184, 880), (1184, 888), 1.35),
    (1.0, "area", 16, (800, 600), (1184, 880), (1184, 888), 1.35),
    (1.0, "area", 16, (1024, 1024), (1024, 1024), (1024, 1024), 1.0),
    # At A=64 area 1.0 behaves exactly like pixel_area 1024 (kept for compatibility).
    (1.0, "area", 64, (1920, 1080), (1344, 768), (1365, 768), 1.75),
    (1.0, "area", 64, (1080, 1920), (768, 1344), (768, 1365), 0.57),
    (1.0, "area", 64, (4000, 3000), (1152, 896), (1194, 896), 1.29),
]


@pytest.mark.parametrize(("res", "kind", "align", "original", "target", "inter", "bucket"), WORKED)
def test_worked_vectors(res: Any, kind: str, align: int, original: tuple[int, int],
                        target: tuple[int, int], inter: tuple[int, int], bucket: float) -> None:
    geo = compute_geometry(*original, params(res, kind, alignment=align))
    assert sizes(geo) == (target, inter, bucket)
    assert geo.original_size == original
    assert geo.bucket_key == f"{target[0]}x{target[1]}"


def test_area_1mp_at_a16_differs_from_reference_992() -> None:
    geo = compute_geometry(1024, 1024, params(1.0, "area", alignment=16))
    assert geo.target_size == (1024, 1024) != (992, 992)
    assert pixel_resolution(params(1.0, "area", alignment=16)) == 1024


# ------------------------------------------------------------------------------ small helpers


def test_align_rounds_half_to_even_and_has_a_floor() -> None:
    assert _align(328, 16) == 320  # 20.5 -> 20
    assert _align(312, 16) == 320  # 19.5 -> 20
    assert _align(1000, 16) == 992  # 62.5 -> 62
    assert _align(3, 64) == 64


def test_aspect_rounding() -> None:
    assert _aspect(1.005, 1, 2) == 1.0
    assert _aspect(1.125, 1, 2) == 1.12
    assert _aspect(1.335, 1, 2) == 1.33
    assert _aspect(512, 4096, 2) == 0.12


@pytest.mark.parametrize(("mp", "edge"), [(0.25, 512), (0.5, 768), (1.0, 1024), (1.04, 1024),
                                          (2.0, 1536), (4.0, 2048), (1.5, 1216)])
def test_area_edge_table(mp: float, edge: int) -> None:
    assert pixel_resolution(params(mp, "area")) == edge


# ------------------------------------------------------------------- hand-computed, per mode


def test_pixel_long_edge_unbounded() -> None:
    geo = compute_geometry(4096, 512, params(1024, "pixel"))
    assert sizes(geo) == ((8192, 1024), (8192, 1024), 8.0)


def test_pixel_square_target_is_p_even_when_not_aligned() -> None:
    geo = compute_geometry(1000, 1000, params(1000, "pixel"))
    assert geo.target_size == (1000, 1000)  # kept: (P, P) though R(1000) = 1024
    assert geo.intermediary_size == (1024, 1024)


def test_area_half_megapixel_uses_table_edge() -> None:
    # Difference 2: 0.5 MP uses E = 768 (reference calculator: 704). Square crop fits.
    p = params(0.5, "area", crop=True, crop_style="center")
    geo = compute_geometry(1920, 1080, p)
    assert sizes(geo) == ((768, 768), (1365, 768), 1.0)
    assert geo.crop_coordinates == (0, 298)
    geo = compute_geometry(1920, 1080, params(0.5, "area"))
    assert sizes(geo) == ((1024, 576), (1024, 576), 1.78)


def test_bucket_is_independent_of_scan_order() -> None:
    # Difference 1: no global aspect -> size map; results never depend on what was seen first.
    p = params(1.0, "area", alignment=16)
    first = [compute_geometry(w, h, p) for w, h in [(4000, 3000), (1333, 1000), (800, 600)]]
    second = [compute_geometry(w, h, p) for w, h in [(800, 600), (1333, 1000), (4000, 3000)]]
    assert first == second[::-1]


# ----------------------------------------------------------------------------- crop aspects


def test_square_crop() -> None:
    geo = compute_geometry(1920, 1080, params(crop=True, crop_style="center"))
    assert sizes(geo) == ((1024, 1024), (1820, 1024), 1.0)
    assert geo.crop_coordinates == (0, 398)


def test_preserve_crop_matches_uncropped_sizes() -> None:
    geo = compute_geometry(1920, 1080, params(crop=True, crop_aspect="preserve"))
    assert sizes(geo) == ((1344, 768), (1365, 768), 1.75)


def test_closest_uses_nearest_bucket_and_reports_target_aspect() -> None:
    p = params(crop=True, crop_aspect="closest", crop_aspect_buckets=[1.0, 1.5, 2.0])
    geo = compute_geometry(1920, 1080, p)  # 1.78 -> 2.0; 1472x704 rounds to 2.09
    assert sizes(geo) == ((1472, 704), (1472, 828), 2.09)


def test_closest_tie_takes_first_bucket() -> None:
    p = params(crop=True, crop_aspect="closest", crop_aspect_buckets=[1.5, 2.0])
    assert compute_geometry(1750, 1000, p).target_size == (1280, 832)  # 1.75 -> 1.5


def test_random_aspect_is_reproducible_and_weighted() -> None:
    p = params(crop=True, crop_aspect="random", crop_aspect_buckets=[1.0, 2.0])
    picks = {compute_geometry(1920, 1080, p, key=f"k{i}").target_size for i in range(40)}
    assert picks == {(1024, 1024), (1472, 704)}
    assert compute_geometry(900, 700, p, seed=3, key="a") == \
        compute_geometry(900, 700, p, seed=3, key="a")
    weighted = params(crop=True, crop_aspect="random",
                      crop_aspect_buckets=[{"aspect": 1.0, "weight": 0.0},
                                           {"aspect_ratio": 2.0, "weight": 1.0}])
    assert weighted.crop_aspect_buckets == ((1.0, 0.0), (2.0, 1.0))
    assert {compute_geometry(800, 800, weighted, key=str(i)).aspect_bucket
            for i in range(20)} == {2.09}


# ------------------------------------------------------------------------------ crop styles


@pytest.mark.parametrize("style", ["center", "centre"])
def test_center_crop_floors_half_the_slack(style: str) -> None:
    geo = compute_geometry(1080, 1921, params(crop=True, crop_style=style))
    (w_i, h_i), (w_t, h_t) = geo.intermediary_size, geo.target_size
    assert geo.crop_coordinates == ((h_i - h_t) // 2, (w_i - w_t) // 2)


def test_corner_crop() -> None:
    assert compute_geometry(1920, 1080, params(crop=True, crop_style="corner")
                            ).crop_coordinates == (0, 0)


def test_random_crop_reproducible_varied_and_in_bounds() -> None:
    p = params(crop=True, crop_style="random")
    geos = [compute_geometry(1920, 1080, p, seed=1, key=f"img{i}") for i in range(30)]
    assert len({g.crop_coordinates for g in geos}) > 5
    assert all(0 <= g.crop_coordinates[1] <= 1820 - 1024 for g in geos)
    assert geos[0] == compute_geometry(1920, 1080, p, seed=1, key="img0")
    assert geos[0] != compute_geometry(1920, 1080, p, seed=2, key="img0")


def test_face_falls_back_to_random() -> None:
    face = compute_geometry(1920, 1080, params(crop=True, crop_style="face"), key="x")
    rand = compute_geometry(1920, 1080, params(crop=True, crop_style="random"), key="x")
    assert face.crop_coordinates == rand.crop_coordinates


def test_crop_off_still_crops_when_sizes_differ() -> None:
    geo = compute_geometry(1920, 1080, params(crop_style="corner"))
    assert geo.intermediary_size != geo.target_size and geo.crop_coordinates == (0, 0)


def test_random_crop_records_the_real_offset() -> None:
    # Difference 3: 100x64 needs no resize (intermediary == original), so the crop's first
    # column must be the recorded `left`.
    p = params(64, "pixel", alignment=8)
    image = Image.new("L", (100, 64))
    image.putdata([x for _ in range(64) for x in range(100)])
    for key in "abcdefgh":
        geo = compute_geometry(100, 64, p, key=key)
        assert geo.intermediary_size == (100, 64) and geo.target_size == (96, 64)
        assert apply_geometry(image, geo).getpixel((0, 0)) == geo.crop_coordinates[1]


# --------------------------------------------------------------------------------- canvas


def test_canvas_limit_rescales_target_and_intermediary() -> None:
    geo = compute_geometry(1920, 1080, params(maximum_canvas_size=512 * 512))
    assert sizes(geo) == ((640, 384), (682, 384), 1.67)
    square = compute_geometry(1920, 1080, params(crop=True, maximum_canvas_size=512 * 512))
    assert sizes(square) == ((512, 512), (910, 512), 1.0)


# -------------------------------------------------------------------------- downsampling


DOWN: dict[str, Any] = {"crop": True, "crop_style": "center", "maximum_image_size": 2048,
        "target_downsample_size": 1536}


def test_downsample_pixel_mode_only_for_large_images() -> None:
    p = params(1024, "pixel", **DOWN)
    geo = compute_geometry(4000, 3000, p)  # short edge 3000 > 2048
    assert geo.downsample_size == geo.intermediary_size == (2048, 1536)
    assert geo.crop_coordinates == (256, 512)
    small = compute_geometry(1500, 1000, p)  # short edge 1000 <= 2048
    assert small.downsample_size is None and small.intermediary_size == (1536, 1024)


def test_downsample_never_upscales() -> None:
    # Difference 4: the reference blows a 16x16 image up to the downsample size.
    assert compute_geometry(16, 16, params(1024, "pixel", **DOWN)).downsample_size is None
    p = params(1024, "pixel", crop=True, maximum_image_size=512, target_downsample_size=2048)
    assert compute_geometry(1000, 800, p).downsample_size is None  # D would exceed the image


def test_downsample_area_mode_compares_megapixels() -> None:
    p = params(1024, "pixel_area", **DOWN)  # max 4.19 MP, target 2.36 MP -> edge 1536
    geo = compute_geometry(4000, 3000, p)
    assert geo.downsample_size == (1792, 1344) and geo.crop_coordinates == (160, 384)
    assert compute_geometry(2000, 1500, p).downsample_size is None  # 3 MP


def test_downsample_widened_to_target() -> None:
    p = params(1024, "pixel", crop=True, crop_aspect="preserve", maximum_image_size=1024,
               target_downsample_size=512)
    geo = compute_geometry(8000, 2000, p)  # D = 2048x512, widened to the 4096 target width
    assert geo.downsample_size == geo.target_size == (4096, 1024)


def test_no_downsample_with_crop_off() -> None:
    p = params(1024, "pixel", maximum_image_size=2048, target_downsample_size=1536)
    assert compute_geometry(4000, 3000, p).downsample_size is None


# -------------------------------------------------------------------------------- filters


def test_min_size_pixel_mode() -> None:
    p = params(1024, "pixel", minimum_image_size=512)
    assert filter_reason(512, 600, p) is None
    assert filter_reason(511, 1000, p) == "too_small"
    assert filter_reason(10, 10, params(1024, "pixel")) is None


def test_min_size_area_mode() -> None:
    p = params(1.0, "area", minimum_image_size=1.0)
    assert filter_reason(1000, 1000, p) is None
    assert filter_reason(999, 1000, p) == "too_small"
    assert filter_reason(5000, 200, p) is None
    square = params(1.0, "area", minimum_image_size=1.0, crop=True)
    assert filter_reason(5000, 200, square) == "too_small"  # edge floor(sqrt(1e6)) = 1000


def test_min_size_pixel_area_is_checked_as_an_area() -> None:
    p = params(1024, "pixel_area", minimum_image_size=1024)
    assert filter_reason(1024, 1024, p) is None
    assert filter_reason(1023, 1025, p) == "too_small"  # 1048575 < 1024^2
    assert filter_reason(2048, 512, p) is None


def test_aspect_out_of_range() -> None:
    geo = compute_geometry(1920, 1080, params())
    assert aspect_out_of_range(geo, params(minimum_aspect_ratio=0.5, maximum_aspect_ratio=1.5))
    assert not aspect_out_of_range(geo, params(maximum_aspect_ratio=2.0))
    assert aspect_out_of_range(geo, params(minimum_aspect_ratio=1.8))
    assert not aspect_out_of_range(geo, params())


# ---------------------------------------------------------------------------- config values


def test_pixel_area_conversion() -> None:
    p = params(1024, "pixel_area", minimum_image_size=512, maximum_image_size=2048,
               target_downsample_size=1536)
    assert (p.resolution_type, p.resolution) == ("area", 1.048576)
    assert p.minimum_image_size == 0.262144
    assert p.maximum_image_size == 4.194304
    assert p.target_downsample_size == 2.359296


def test_zero_sizes_mean_unset() -> None:
    assert params(1024, "pixel", minimum_image_size=0).minimum_image_size is None


def test_fingerprint() -> None:
    a, b = params(), params()
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 16
    assert a.fingerprint() != params(alignment=16).fingerprint()
    assert a.fingerprint() != params(crop=True).fingerprint()


BAD = [
    ({"resolution": "1024", "resolution_type": "pixel_area"}, "`resolution`"),
    ({"resolution": 1024.5, "resolution_type": "pixel_area"}, "integer edge"),
    ({"resolution": True, "resolution_type": "pixel"}, "`resolution`"),
    ({"resolution": -1, "resolution_type": "pixel"}, "must be > 0"),
    ({"resolution": 1000.5, "resolution_type": "pixel"}, "whole number"),
    ({"resolution": 1024, "resolution_type": "pixels"}, "`resolution_type`"),
    ({"crop_aspect": "sqaure"}, "`crop_aspect` must be one of"),
    ({"crop_style": "middle"}, "`crop_style`"),
    ({"crop_aspect": "closest"}, "needs a non-empty `crop_aspect_buckets`"),
    ({"crop_aspect": "random", "crop_aspect_buckets": []}, "`crop_aspect_buckets`"),
    ({"crop_aspect_buckets": [1.0, -2.0]}, "`crop_aspect_buckets` entries"),
    ({"crop_aspect_buckets": 1.5}, "must be a list"),
    ({"maximum_image_size": 2048}, "needs `target_downsample_size`"),
    ({"minimum_image_size": 2300}, "`minimum_image_size` is in megapixels"),
    ({"resolution": 1.0, "resolution_type": "area", "minimum_image_size": 6},
     "must be <= 5"),
    ({"resolution": 1.0, "resolution_type": "area", "maximum_image_size": 25,
      "target_downsample_size": 1}, "must be < 20"),
    ({"minimum_image_size": -3}, "must be > 0"),
    ({"alignment": 0}, "`alignment`"),
    ({"rounding": -1}, "`rounding`"),
    ({"maximum_canvas_size": 100}, "alignment^2"),
    ({"minimum_aspect_ratio": 2.0, "maximum_aspect_ratio": 1.0}, "is above"),
    ({"crop_sytle": "center"}, "unknown geometry key `crop_sytle`"),
]


@pytest.mark.parametrize(("values", "message"), BAD)
def test_bad_values_raise_value_error(values: dict[str, Any], message: str) -> None:
    values = {"resolution": 1024, "resolution_type": "pixel_area", **values}
    with pytest.raises(ValueError, match=re.escape(message)):
        GeometryParams.create(**values)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(GeometryConfigError) as info:
        params(crop_style="x", crop_aspect="y", alignment=0)
    assert len(info.value.problems) == 3


def test_direct_construction_validates_and_rejects_pixel_area() -> None:
    with pytest.raises(ValueError, match=r"GeometryParams\.create"):
        GeometryParams(resolution=1024, resolution_type="pixel_area")
    with pytest.raises(ValueError, match="`crop_style`"):
        GeometryParams(resolution=1024, resolution_type="pixel", crop_style="nope")


def test_bad_image_sizes() -> None:
    with pytest.raises(ValueError, match="positive integers"):
        compute_geometry(0, 10, params())
    geo = compute_geometry(100, 64, params(64, "pixel", alignment=8))
    with pytest.raises(ValueError, match="EXIF"):
        apply_geometry(Image.new("RGB", (64, 100)), geo)


# ----------------------------------------------------------------------------- properties

PARAM_SETS = [
    params(),
    params(1024, "pixel", crop=True, crop_style="center"),
    params(0.5, "area", crop=True, crop_aspect="square"),
    params(2.0, "area", alignment=16, rounding=1, crop_style="corner"),
    params(crop=True, crop_aspect="closest", crop_aspect_buckets=[0.5, 1.0, 1.78, 3.0]),
    params(1024, "pixel", crop=True, crop_aspect="random", crop_aspect_buckets=[0.25, 1.0, 4.0]),
    params(1024, "pixel", crop_aspect="preserve", **{**DOWN, "crop_style": "random"}),
    params(**DOWN),
    params(maximum_canvas_size=768 * 768, alignment=8),
    params(1000, "pixel", alignment=32, rounding=0),
]


def check_invariants(geo: SampleGeometry, p: GeometryParams) -> None:
    (w_t, h_t), (w_i, h_i) = geo.target_size, geo.intermediary_size
    top, left = geo.crop_coordinates
    assert w_t > 0 and h_t > 0
    assert top >= 0 and left >= 0
    assert top + h_t <= h_i and left + w_t <= w_i
    assert geo.aspect_bucket == _aspect(w_t, h_t, p.rounding)
    if geo.downsample_size is not None:
        assert geo.downsample_size == geo.intermediary_size
        assert w_i <= geo.original_size[0] and h_i <= geo.original_size[1]
    if p.crop and p.crop_aspect == "square":
        assert w_t == h_t


@settings(max_examples=300, deadline=None)
@given(st.integers(16, 8000), st.integers(16, 8000), st.sampled_from(range(len(PARAM_SETS))),
       st.integers(0, 3))
def test_property_crop_box_fits(width: int, height: int, index: int, seed: int) -> None:
    p = PARAM_SETS[index]
    geo = compute_geometry(width, height, p, seed=seed, key=f"{width}x{height}")
    check_invariants(geo, p)
    assert geo == compute_geometry(width, height, p, seed=seed, key=f"{width}x{height}")


SMALL_SETS = [
    params(64, "pixel", alignment=8),
    params(64, "pixel", alignment=8, crop=True, crop_style="center"),
    params(64, "pixel_area", alignment=8, crop=True, crop_aspect="preserve"),
    params(64, "pixel", alignment=8, crop=True, crop_aspect="closest",
           crop_aspect_buckets=[0.5, 1.0, 2.0], crop_style="corner"),
    params(64, "pixel", alignment=8, crop=True, maximum_image_size=96,
           target_downsample_size=80),
    params(64, "pixel_area", alignment=8, maximum_canvas_size=48 * 48),
]


@settings(max_examples=150, deadline=None)
@given(st.integers(8, 256), st.integers(8, 256), st.sampled_from(range(len(SMALL_SETS))))
def test_property_apply_geometry_returns_target_size(width: int, height: int, index: int
                                                     ) -> None:
    p = SMALL_SETS[index]
    geo = compute_geometry(width, height, p, key="k")
    check_invariants(geo, p)
    out = apply_geometry(Image.new("RGB", (width, height), (200, 10, 10)), geo)
    assert out.size == geo.target_size


def test_pixel_area_accepts_a_whole_float_resolution() -> None:
    """Config models hold ``resolution`` as a float: 192.0 is the integer edge 192."""
    assert params(192.0, "pixel_area") == params(192, "pixel_area")
    with pytest.raises(ValueError, match="integer edge"):
        params(192.5, "pixel_area")


def test_random_crop_offsets_cover_the_slack_uniformly() -> None:
    """Keyed offsets reach both ends of the slack and spread evenly over it."""
    from collections import Counter

    from databackend.geometry import crop_offsets

    tops = Counter(crop_offsets((10, 13), (10, 10), "random", seed=3, key=f"k{i}")[0]
                   for i in range(4000))
    assert sorted(tops) == [0, 1, 2, 3]
    assert all(800 < n < 1200 for n in tops.values()), tops
    assert crop_offsets((10, 10), (10, 10), "random", key="x") == (0, 0)
    assert crop_offsets((20, 10), (10, 10), "center") == (0, 5)
