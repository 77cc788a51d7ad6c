"""Tests for extractors.flow: TV-L1 parameters, quantisation, the flow cache, compute_flow."""

from __future__ import annotations

import json
import weakref
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from extractors.flow import (
    FlowCache,
    TVL1Params,
    compute_flow,
    create_opencv_tvl1,
    dequantize,
    quantize,
    to_gray,
    write_flow_cache,
)

H, W = 48, 64  # small frames keep the file fast
CHEAP = TVL1Params(nscales=3, warps=2, inner_iterations=10, outer_iterations=2)
DX, DY = 2, 1  # the known motion: content moves 2 px right and 1 px down per frame
MARGIN = 8  # border pixels left out when judging the flow


@pytest.fixture(scope="module")
def texture() -> np.ndarray:
    """A smooth random grayscale texture, large enough to crop shifted frames from."""
    rng = np.random.default_rng(0)
    noise = rng.random((160, 160)).astype(np.float32) * 255
    blurred = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return cv2.normalize(blurred, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)  # (160, 160)


def crop(texture: np.ndarray, k: int, h: int = H, w: int = W) -> np.ndarray:
    """Frame ``k`` of a video whose content moves by (DX, DY) per frame, as RGB (h, w, 3)."""
    y0, x0 = 40 - k * DY, 40 - k * DX
    gray = texture[y0:y0 + h, x0:x0 + w]  # frame(x + k*DX, y + k*DY) = frame0(x, y)
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))  # (h, w, 3)


def smooth_flows(n: int, seed: int = 1) -> list[np.ndarray]:
    """``n`` smooth random quantised flows (H, W, 2), like real flow images."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        field = cv2.GaussianBlur(rng.normal(0, 40, (H, W, 2)).astype(np.float32), (0, 0), 4.0)
        out.append(quantize(field * 5, bound=20.0))
    return out


def write(path: Path, flows: list[np.ndarray], codec: str = "png", **kw: object) -> dict:
    return write_flow_cache(flows, path, height=H, width=W, bound=20.0, codec=codec,
                            params=TVL1Params(), **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- parameters


def test_default_params_are_opencv_defaults() -> None:
    opencv = cv2.optflow.DualTVL1OpticalFlow_create()
    p = TVL1Params()
    assert p.tau == pytest.approx(opencv.getTau())
    assert p.lambda_ == pytest.approx(opencv.getLambda())
    assert p.theta == pytest.approx(opencv.getTheta())
    assert p.nscales == opencv.getScalesNumber()
    assert p.warps == opencv.getWarpingsNumber()
    assert p.epsilon == pytest.approx(opencv.getEpsilon())
    assert p.inner_iterations == opencv.getInnerIterations()
    assert p.outer_iterations == opencv.getOuterIterations()
    assert p.scale_step == pytest.approx(opencv.getScaleStep())
    assert p.gamma == pytest.approx(opencv.getGamma())
    assert p.median_filtering == opencv.getMedianFiltering()
    assert p.use_initial_flow == opencv.getUseInitialFlow()


def test_every_param_reaches_opencv() -> None:
    p = TVL1Params(tau=0.2, lambda_=0.07, theta=0.4, nscales=3, warps=2, epsilon=0.02,
                   inner_iterations=7, outer_iterations=3, scale_step=0.6, gamma=0.1,
                   median_filtering=3)
    tvl1 = create_opencv_tvl1(p)
    assert tvl1.getTau() == pytest.approx(0.2)
    assert tvl1.getLambda() == pytest.approx(0.07)
    assert tvl1.getTheta() == pytest.approx(0.4)
    assert tvl1.getScalesNumber() == 3
    assert tvl1.getWarpingsNumber() == 2
    assert tvl1.getEpsilon() == pytest.approx(0.02)
    assert tvl1.getInnerIterations() == 7
    assert tvl1.getOuterIterations() == 3
    assert tvl1.getScaleStep() == pytest.approx(0.6)
    assert tvl1.getGamma() == pytest.approx(0.1)
    assert tvl1.getMedianFiltering() == 3
    assert tvl1.getUseInitialFlow() is False


def test_params_dict_round_trip_uses_config_keys() -> None:
    p = TVL1Params(lambda_=0.3, nscales=2, median_filtering=0)
    d = p.to_dict()
    assert set(d) == {"tau", "lambda", "theta", "nscales", "warps", "epsilon",
                      "inner_iterations", "outer_iterations", "scale_step", "gamma",
                      "median_filtering"}
    assert d["lambda"] == 0.3
    assert TVL1Params.from_dict(json.loads(json.dumps(d))) == p
    assert TVL1Params.from_dict({}) == TVL1Params()
    # YAML/JSON may give an int for a float field and an integral float for an int field
    q = TVL1Params.from_dict({"gamma": 0, "warps": 3.0})
    assert q.gamma == 0.0
    assert isinstance(q.gamma, float)
    assert q.warps == 3
    assert isinstance(q.warps, int)


def test_from_dict_lists_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['lambda_', 'nscale'\]"):
        TVL1Params.from_dict({"nscale": 3, "lambda_": 0.1, "tau": 0.2})


@pytest.mark.parametrize(
    "d", [{"nscales": 2.5}, {"tau": "0.25"}, {"warps": True}, {"median_filtering": 4},
          {"nscales": 0}, {"scale_step": 1.5}, {"tau": 0}]
)
def test_from_dict_rejects_bad_values(d: dict) -> None:
    with pytest.raises(ValueError, match="TVL1Params"):
        TVL1Params.from_dict(d)


# ---------------------------------------------------------------- gray and quantisation


def test_to_gray_reads_rgb_order() -> None:
    frame = np.zeros((2, 3, 3), np.uint8)
    frame[0, 0] = (255, 0, 0)  # red
    frame[0, 1] = (0, 0, 255)  # blue
    frame[1, 2] = (0, 255, 0)  # green
    gray = to_gray(frame)
    assert gray.shape == (2, 3)
    assert gray.dtype == np.uint8
    assert gray[0, 0] == 76  # 0.299 * 255
    assert gray[0, 1] == 29  # 0.114 * 255
    assert gray[1, 2] == 150  # 0.587 * 255


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
            np.zeros((4, 4, 4), np.uint8)]
)
def test_to_gray_rejects_non_rgb(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        to_gray(bad)


def test_quantize_matches_denseflow_cast() -> None:
    v = np.array([0.0, 20.0, -20.0, 25.0, -25.0, 1e9, -np.inf, np.inf, 0.1, -0.1, 19.9, 10.0],
                 np.float32)
    expected = [128, 255, 0, 255, 0, 255, 0, 255, 128, 127, 254, 191]
    # 0 → 127.5 → 128 (half to even); -0.1 → 126.86 → 127 (mmaction2's truncation gives 126);
    # 19.9 → 254.36 → 254; 10 → 191.25 → 191
    q = quantize(v, bound=20.0)
    assert q.dtype == np.uint8
    assert q.tolist() == expected


def test_quantize_rounds_half_to_even() -> None:
    # with bound 127.5 the scaled value is v + 127.5 exactly, so these are exact halves
    v = np.array([1.0, 2.0, 3.0, -1.0, 0.5], np.float32)
    assert quantize(v, bound=127.5).tolist() == [128, 130, 130, 126, 128]


def test_quantize_keeps_shape_and_rejects_nan() -> None:
    flow = np.zeros((3, 5, 2), np.float32)
    assert quantize(flow).shape == (3, 5, 2)
    flow[1, 1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        quantize(flow)
    with pytest.raises(ValueError, match="bound"):
        quantize(np.zeros(3, np.float32), bound=0.0)


@pytest.mark.parametrize("bound", [20.0, 15.0, 32.0])
def test_dequantize_round_trip_within_half_step(bound: float) -> None:
    v = np.linspace(-bound, bound, 20001, dtype=np.float32)
    back = dequantize(quantize(v, bound), bound)
    assert back.dtype == np.float32
    assert np.abs(back - v).max() <= bound / 255 + 1e-5
    assert dequantize(np.array([0, 255], np.uint8), bound).tolist() == pytest.approx(
        [-bound, bound])


# ---------------------------------------------------------------- the flow cache


def test_png_cache_round_trip_and_random_access(tmp_path: Path) -> None:
    flows = smooth_flows(5)
    path = tmp_path / "flow" / "video_a.zip"
    meta = write(path, flows, extra_meta={"video": "video_a", "fps": 25.0})
    assert sorted(p.name for p in path.parent.iterdir()) == ["video_a.zip"]  # no temp files
    with FlowCache(path) as cache:
        assert len(cache) == 5
        assert cache.meta == meta
        assert cache.meta["n_flows"] == 5
        assert (cache.meta["height"], cache.meta["width"]) == (H, W)
        assert cache.meta["bound"] == 20.0
        assert cache.meta["codec"] == "png"
        assert cache.meta["params"] == TVL1Params().to_dict()
        assert cache.meta["backend"] == "opencv"
        assert cache.meta["video"] == "video_a"
        assert cache.meta["fps"] == 25.0
        assert isinstance(cache.meta["version"], int)
        middle = cache[2]
        assert middle.dtype == np.uint8
        assert middle.shape == (H, W, 2)
        np.testing.assert_array_equal(middle, flows[2])
        np.testing.assert_array_equal(cache[-1], flows[4])
        np.testing.assert_array_equal(cache[-5], flows[0])
        for i in range(5):
            np.testing.assert_array_equal(cache[i], flows[i])
        block = cache.read_range(1, 4)
        assert block.shape == (3, H, W, 2)
        np.testing.assert_array_equal(block, np.stack(flows[1:4]))
        assert cache.read_range(2, 2).shape == (0, H, W, 2)
        f = cache.read_float(3)
        assert f.dtype == np.float32
        np.testing.assert_allclose(f, dequantize(flows[3], 20.0))
        with pytest.raises(IndexError):
            cache[5]
        with pytest.raises(IndexError):
            cache[-6]
        with pytest.raises(IndexError):
            cache.read_range(3, 6)
        with pytest.raises(IndexError):
            cache.read_range(3, 2)
    with pytest.raises(ValueError, match="closed"):
        cache[0]


def test_archive_layout(tmp_path: Path) -> None:
    path = tmp_path / "v.zip"
    flows = smooth_flows(2)
    write(path, flows, codec="jpg")
    with zipfile.ZipFile(path) as zf:
        infos = {info.filename: info for info in zf.infolist()}
        assert set(infos) == {"meta.json", "x/000000.jpg", "y/000000.jpg",
                              "x/000001.jpg", "y/000001.jpg"}
        assert all(info.compress_type == zipfile.ZIP_STORED for info in infos.values())
        y1 = cv2.imdecode(np.frombuffer(zf.read("y/000001.jpg"), np.uint8),
                          cv2.IMREAD_UNCHANGED)
        meta = json.loads(zf.read("meta.json"))
    assert y1.shape == (H, W)  # single channel: the y component of flow 1
    assert np.abs(y1.astype(int) - flows[1][:, :, 1]).mean() < 1.0
    assert meta["n_flows"] == 2


def test_jpg_cache_is_close(tmp_path: Path) -> None:
    flows = smooth_flows(3)
    path = tmp_path / "v.zip"
    write(path, flows, codec="jpg")
    with FlowCache(path) as cache:
        assert cache.meta["codec"] == "jpg"
        got = cache.read_range(0, 3).astype(int)
    err = np.abs(got - np.stack(flows).astype(int))
    assert err.mean() < 1.0
    assert err.max() <= 8


def test_writer_meta_backend_and_reserved_keys(tmp_path: Path) -> None:
    meta = write(tmp_path / "a.zip", smooth_flows(1), extra_meta={"backend": "torch"})
    assert meta["backend"] == "torch"
    with pytest.raises(ValueError, match="reserved"):
        write(tmp_path / "b.zip", smooth_flows(1), extra_meta={"n_flows": 3})
    with pytest.raises(ValueError, match="JSON"):
        write(tmp_path / "c.zip", smooth_flows(1), extra_meta={"x": object()})
    with pytest.raises(ValueError, match="codec"):
        write(tmp_path / "d.zip", smooth_flows(1), codec="bmp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


def test_writer_rejects_bad_flow_and_leaves_nothing(tmp_path: Path) -> None:
    flows = [*smooth_flows(2), np.zeros((H, W, 3), np.uint8)]
    with pytest.raises(ValueError, match="flow 2"):
        write(tmp_path / "v.zip", flows)
    with pytest.raises(ValueError, match="no flows"):
        write(tmp_path / "w.zip", [])
    assert list(tmp_path.iterdir()) == []


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_corrupt_or_foreign_files_raise_value_error(tmp_path: Path) -> None:
    good = tmp_path / "good.zip"
    write(good, smooth_flows(2))
    raw = good.read_bytes()
    with zipfile.ZipFile(good) as zf:
        meta = json.loads(zf.read("meta.json"))
        png = zf.read("x/000000.png")

    text = tmp_path / "text.zip"
    text.write_text("not a zip")
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(raw[: len(raw) // 2])
    no_meta = _zip(tmp_path / "no_meta.zip", {"x/000000.png": png})
    bad_json = _zip(tmp_path / "bad_json.zip", {"meta.json": b"{oops"})
    foreign = _zip(tmp_path / "foreign.zip", {"meta.json": json.dumps({"format": "other"})
                                              .encode()})
    missing = _zip(tmp_path / "missing.zip", {"meta.json": json.dumps(meta).encode(),
                                              "x/000000.png": png})
    bad_meta = _zip(tmp_path / "bad_meta.zip",
                    {"meta.json": json.dumps({**meta, "height": -1}).encode()})
    cases = {text: "not a ZIP", truncated: "not a ZIP", no_meta: "no meta.json",
             bad_json: "not valid JSON", foreign: "format", missing: "missing",
             bad_meta: "height"}
    for path, why in cases.items():
        with pytest.raises(ValueError, match=why) as info:
            FlowCache(path)
        assert str(path) in str(info.value)


def test_undecodable_entry_raises_on_read(tmp_path: Path) -> None:
    good = tmp_path / "good.zip"
    write(good, smooth_flows(2))
    with zipfile.ZipFile(good) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    entries["y/000001.png"] = b"garbage"
    bad = _zip(tmp_path / "bad.zip", entries)
    with FlowCache(bad) as cache:
        np.testing.assert_array_equal(cache[0], smooth_flows(2)[0])
        with pytest.raises(ValueError, match=r"y/000001\.png") as info:
            cache[1]
    assert str(bad) in str(info.value)


# ---------------------------------------------------------------- TV-L1 and compute_flow


def interior_median(flow: np.ndarray) -> tuple[float, float]:
    inner = flow[MARGIN:-MARGIN, MARGIN:-MARGIN]  # (h, w, 2)
    return float(np.median(inner[..., 0])), float(np.median(inner[..., 1]))


def test_opencv_tvl1_recovers_known_shift(texture: np.ndarray) -> None:
    first = to_gray(crop(texture, 0, 64, 64))
    second = to_gray(crop(texture, 1, 64, 64))
    flow = create_opencv_tvl1(TVL1Params()).calc(first, second, None)  # (64, 64, 2)
    assert flow.shape == (64, 64, 2)
    u, v = interior_median(flow)
    assert u == pytest.approx(DX, abs=0.25)
    assert v == pytest.approx(DY, abs=0.25)
    still = create_opencv_tvl1(TVL1Params()).calc(first, first, None)
    assert np.abs(still).max() < 0.05


def test_compute_flow_from_generator(texture: np.ndarray, tmp_path: Path) -> None:
    n_frames = 4
    pulled = []

    def frames() -> Iterator[np.ndarray]:
        for k in range(n_frames):
            pulled.append(k)
            yield crop(texture, k)

    out = tmp_path / "flow" / "v.zip"
    meta = compute_flow(frames(), out, params=CHEAP, codec="png",
                        extra_meta={"video": "v"})
    assert pulled == list(range(n_frames))
    assert sorted(p.name for p in out.parent.iterdir()) == ["v.zip"]
    assert meta["n_flows"] == n_frames - 1
    assert (meta["height"], meta["width"]) == (H, W)
    assert meta["params"] == CHEAP.to_dict()
    assert meta["backend"] == "opencv"
    assert meta["video"] == "v"
    with FlowCache(out) as cache:
        assert len(cache) == n_frames - 1
        assert cache.meta == meta
        for i in range(len(cache)):
            u, v = interior_median(cache.read_float(i))  # x channel is u, y channel is v
            assert u == pytest.approx(DX, abs=0.25)
            assert v == pytest.approx(DY, abs=0.25)


def test_compute_flow_holds_no_old_frames(texture: np.ndarray, tmp_path: Path) -> None:
    refs: list[weakref.ref] = []
    alive_when_pulled: list[list[int]] = []

    def frames() -> Iterator[np.ndarray]:
        for k in range(8):
            alive_when_pulled.append([j for j, r in enumerate(refs) if r() is not None])
            frame = crop(texture, k % 2)
            refs.append(weakref.ref(frame))
            yield frame
            del frame

    compute_flow(frames(), tmp_path / "v.zip", params=CHEAP)
    for k, alive in enumerate(alive_when_pulled):
        assert all(j >= k - 2 for j in alive), f"frame {k} pulled while {alive} still held"


def test_iterator_error_leaves_no_file(texture: np.ndarray, tmp_path: Path) -> None:
    def frames() -> Iterator[np.ndarray]:
        for k in range(3):
            yield crop(texture, k)
        raise RuntimeError("decoder died")

    out = tmp_path / "flow" / "v.zip"
    with pytest.raises(RuntimeError, match="decoder died"):
        compute_flow(frames(), out, params=CHEAP)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("n_frames", [0, 1])
def test_too_few_frames(texture: np.ndarray, tmp_path: Path, n_frames: int) -> None:
    out = tmp_path / "v.zip"
    with pytest.raises(ValueError, match=f"at least 2 frames.*got {n_frames}"):
        compute_flow(iter([crop(texture, 0)] * n_frames), out, params=CHEAP)
    assert list(tmp_path.iterdir()) == []


def test_shape_change_raises(texture: np.ndarray, tmp_path: Path) -> None:
    frames = [crop(texture, 0), crop(texture, 1), crop(texture, 2, H - 8, W)]
    out = tmp_path / "v.zip"
    with pytest.raises(ValueError, match=r"frame 2 has shape \(40, 64, 3\)"):
        compute_flow(iter(frames), out, params=CHEAP)
    assert list(tmp_path.iterdir()) == []


def test_non_rgb_frames_raise(tmp_path: Path) -> None:
    frames = [np.zeros((H, W), np.uint8)] * 3
    with pytest.raises(ValueError, match="RGB"):
        compute_flow(frames, tmp_path / "v.zip", params=CHEAP)


def test_progress_bar_goes_to_stderr(
    texture: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compute_flow((crop(texture, k) for k in range(3)), tmp_path / "a.zip", params=CHEAP)
    assert capsys.readouterr().err == ""
    compute_flow((crop(texture, k) for k in range(3)), tmp_path / "b.zip", params=CHEAP,
                 progress=True)
    captured = capsys.readouterr()
    assert "TV-L1 flow" in captured.err
    assert captured.out == ""
