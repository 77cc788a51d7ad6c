"""Tests for extractors.tvl1_torch: the PyTorch TV-L1 against OpenCV's DualTVL1OpticalFlow.

Fidelity is judged on small frames (64×64 and below) made here: two analytic textures, a
background drifting by a sub-pixel step and a textured disc moving the other way over it
(occlusions at its edges), with mild noise. Cheap parameters keep most tests fast; one test uses
OpenCV's defaults. The 224×224 numbers are measured by hand (see the benchmark script).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
import torch
import yaml
from conftest import write_video

from extractors.decode import decode
from extractors.flow import FlowCache, TVL1Params, compute_flow, create_opencv_tvl1, quantize
from extractors.flowstage import flow_stage, resolve_backend
from extractors.tvl1_torch import (
    MIN_LEVEL_SIZE,
    centered_gradient,
    compute_flow_torch,
    median_blur,
    median_blur_network,
    pyramid_sizes,
    resize_linear,
    tvl1_pairs,
    tvl1_sequence,
    warp_cubic,
)

H, W = 64, 64
BG = (1.3, -0.6)  # background motion, px per frame (x, y)
FG = (-2.2, 1.5)  # disc motion
CHEAP = TVL1Params(nscales=3, warps=2, inner_iterations=10, outer_iterations=3)
SCHEMA = Path(__file__).resolve().parents[2] / "pipeline" / "schemas" / "dataset.schema.yaml"


pytestmark = pytest.mark.usefixtures("one_thread")


def texture(seed: int, shape: tuple[int, int], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A smooth analytic texture (a sum of plane waves) at real coordinates ``x``, ``y``."""
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, np.float64)
    for _ in range(14):
        freq = rng.uniform(0.02, 0.16)
        angle = rng.uniform(0, np.pi)
        phase = rng.uniform(0, 2 * np.pi)
        out += rng.uniform(0.4, 1.0) * np.sin(
            2 * np.pi * freq * (np.cos(angle) * x + np.sin(angle) * y) + phase)
    return out / np.abs(out).max()


def scene(n: int, *, h: int = H, w: int = W, seed: int = 0, noise: float = 1.0,
          bg: tuple[float, float] = BG, fg: tuple[float, float] = FG
          ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` grey frames of a drifting textured background occluded by a moving textured disc.

    Returns:
        (n, h, w) uint8 frames and the true flows (n - 1, h, w, 2) float32.
    """
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    radius = 0.22 * min(h, w)
    cx0, cy0 = 0.55 * w, 0.4 * h
    rng = np.random.default_rng(seed + 100)
    frames, truth = [], []
    for k in range(n):
        back = texture(seed, (h, w), xx - k * bg[0], yy - k * bg[1])
        cx, cy = cx0 + k * fg[0], cy0 + k * fg[1]
        disc = texture(seed + 1, (h, w), xx - cx, yy - cy)
        alpha = np.clip(radius - np.hypot(xx - cx, yy - cy) + 0.5, 0, 1)  # anti-aliased edge
        image = 128 + 70 * ((1 - alpha) * back + alpha * (0.5 * disc + 0.4))
        image += rng.normal(0, noise, image.shape)
        frames.append(np.clip(np.rint(image), 0, 255).astype(np.uint8))
        flow = np.where((alpha > 0.5)[..., None], np.array(fg), np.array(bg))
        truth.append(flow.astype(np.float32))
    return np.stack(frames), np.stack(truth[:-1])


def opencv_flows(frames: np.ndarray, params: TVL1Params) -> np.ndarray:
    """OpenCV's TV-L1 flow of every consecutive pair, (n - 1, H, W, 2)."""
    tvl1 = create_opencv_tvl1(params)
    return np.stack([tvl1.calc(frames[i], frames[i + 1], None) for i in range(len(frames) - 1)])


def torch_flows(frames: np.ndarray, params: TVL1Params, device: str = "cpu",
                **kw: object) -> np.ndarray:
    flows = tvl1_sequence(torch.from_numpy(frames).to(device), params, **kw)  # type: ignore[arg-type]
    return flows.cpu().numpy()


def epe(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel end-point error."""
    return np.sqrt(((a - b) ** 2).sum(-1))


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return scene(4)[0]  # (4, 64, 64): 3 pairs


@pytest.fixture(scope="module")
def cheap_reference(frames: np.ndarray) -> np.ndarray:
    return opencv_flows(frames, CHEAP)


# ---------------------------------------------------------------- the building blocks


def test_resize_linear_matches_cv_resize() -> None:
    rng = np.random.default_rng(0)
    img = (rng.random((45, 58)) * 255).astype(np.float32)
    t = torch.from_numpy(img)[None]
    down = cv2.resize(img, None, fx=0.8, fy=0.8)  # a factor: OpenCV maps with 1 / fx
    ours = resize_linear(t, *down.shape, 1 / 0.8, 1 / 0.8)[0].numpy()
    np.testing.assert_allclose(ours, down, atol=1e-3)
    up = cv2.resize(img, (73, 57))  # a size: OpenCV maps with src / dst
    ours = resize_linear(t, 57, 73, 45 / 57, 58 / 73)[0].numpy()
    np.testing.assert_allclose(ours, up, atol=1e-3)


def test_warp_cubic_matches_cv_remap_with_zero_border() -> None:
    rng = np.random.default_rng(1)
    img = (rng.random((30, 40)) * 255).astype(np.float32)
    flow = rng.normal(0, 4, (2, 30, 40)).astype(np.float32)  # reaches well outside the image
    ys, xs = np.mgrid[0:30, 0:40].astype(np.float32)
    expected = cv2.remap(img, xs + flow[0], ys + flow[1], cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    stack = torch.from_numpy(np.stack([img, 2 * img]))[None]  # (1, 2, H, W)
    ours = warp_cubic(stack, torch.from_numpy(flow)[None])[0].numpy()
    np.testing.assert_allclose(ours[0], expected, atol=2e-3)
    np.testing.assert_allclose(ours[1], 2 * expected, atol=4e-3)


@pytest.mark.parametrize("ksize", [3, 5])
def test_median_filters_match_cv_median_blur(ksize: int) -> None:
    rng = np.random.default_rng(ksize)
    img = rng.normal(0, 3, (2, 2, 23, 31)).astype(np.float32)
    img[0, 0, 5:9] = 1.0  # ties
    expected = np.stack([[cv2.medianBlur(c, ksize) for c in b] for b in img])
    t = torch.from_numpy(img)
    np.testing.assert_array_equal(median_blur(t, ksize).numpy(), expected)
    np.testing.assert_array_equal(median_blur_network(t, ksize).numpy(), expected)


def test_centered_gradient_is_half_the_central_difference_with_replicated_border() -> None:
    rng = np.random.default_rng(2)
    img = (rng.random((20, 26)) * 255).astype(np.float32)
    gx, gy = centered_gradient(torch.from_numpy(img)[None])
    kw = {"ksize": 1, "scale": 0.5, "borderType": cv2.BORDER_REPLICATE}
    np.testing.assert_allclose(gx[0].numpy(), cv2.Sobel(img, cv2.CV_32F, 1, 0, **kw), atol=1e-4)
    np.testing.assert_allclose(gy[0].numpy(), cv2.Sobel(img, cv2.CV_32F, 0, 1, **kw), atol=1e-4)


def test_pyramid_sizes_round_and_stop_at_16_pixels() -> None:
    assert pyramid_sizes(224, 224, 5, 0.8) == [(224, 224), (179, 179), (143, 143), (114, 114),
                                               (91, 91)]
    assert pyramid_sizes(40, 90, 12, 0.8) == [(40, 90), (32, 72), (26, 58), (21, 46), (17, 37)]
    assert pyramid_sizes(20, 24, 8, 0.8) == [(20, 24), (16, 19)]
    assert pyramid_sizes(19, 40, 4, 0.8) == [(19, 40)]  # 15 rows would be too few
    assert min(pyramid_sizes(300, 500, 50, 0.9)[-1]) >= MIN_LEVEL_SIZE


def test_opencv_also_drops_levels_below_16_pixels() -> None:
    frames = scene(2, h=20, w=24, seed=3)[0]
    many = TVL1Params(nscales=8, warps=2, inner_iterations=10, outer_iterations=2)
    expected = opencv_flows(frames, many)
    as_two = opencv_flows(frames, TVL1Params(nscales=2, warps=2, inner_iterations=10,
                                             outer_iterations=2))
    np.testing.assert_array_equal(expected, as_two)  # OpenCV ran 2 levels, not 8
    assert epe(torch_flows(frames, many), expected).mean() < 1e-3


# ---------------------------------------------------------------- fidelity to OpenCV


@pytest.mark.parametrize(
    "params",
    [
        CHEAP,
        TVL1Params(nscales=1, warps=1, inner_iterations=5, outer_iterations=1, epsilon=0,
                   median_filtering=0),  # one level, one warp: the iteration itself
        TVL1Params(nscales=4, warps=3, inner_iterations=15, outer_iterations=4, epsilon=0.05,
                   median_filtering=3),  # early stopping at different iterations per pair
        TVL1Params(nscales=3, warps=3, inner_iterations=10, outer_iterations=2, gamma=0.2,
                   median_filtering=0),  # the illumination term
        TVL1Params(nscales=3, warps=2, inner_iterations=10, outer_iterations=2, tau=0.2,
                   lambda_=0.3, theta=0.5, scale_step=0.6),
    ],
    ids=["cheap", "one-iteration-loop", "early-stop-median3", "gamma", "other-weights"],
)
def test_torch_flow_matches_opencv(frames: np.ndarray, params: TVL1Params) -> None:
    expected = opencv_flows(frames, params)
    error = epe(torch_flows(frames, params), expected)  # (3, H, W); measured: ~1e-5 px
    assert error.mean() <= 0.01  # the bar is 0.1 px
    assert np.percentile(error, 95) <= 1e-3  # the same algorithm: nearly every pixel agrees


def test_torch_flow_matches_opencv_with_default_params(frames: np.ndarray) -> None:
    pair = frames[:2]
    error = epe(torch_flows(pair, TVL1Params()), opencv_flows(pair, TVL1Params()))
    assert error.mean() <= 0.01  # measured: ~2e-5 px
    assert np.percentile(error, 95) <= 1e-3


def test_torch_flow_is_no_worse_than_opencv_on_known_motion() -> None:
    frames, truth = scene(4, seed=7, noise=0.5)
    params = TVL1Params(nscales=4, warps=3, inner_iterations=20, outer_iterations=3)
    ours = epe(torch_flows(frames, params), truth)
    theirs = epe(opencv_flows(frames, params), truth)
    inner = (slice(None), slice(6, -6), slice(6, -6))  # the frame border is ill-posed for both
    assert ours[inner].mean() < 0.5  # the flow is right at all
    assert ours[inner].mean() <= theirs[inner].mean() + 0.01
    assert ours.mean() <= theirs.mean() + 0.01


def test_subpixel_translation_is_found() -> None:
    frames, truth = scene(2, seed=11, noise=0.0, fg=BG)  # everything moves by BG
    flow = torch_flows(frames, CHEAP)[0]
    assert np.abs(flow[8:-8, 8:-8] - truth[0, 8:-8, 8:-8]).mean() < 0.05


# ---------------------------------------------------------------- batching and inputs


def test_pairs_do_not_depend_on_their_batch(frames: np.ndarray, cheap_reference: np.ndarray
                                            ) -> None:
    params = TVL1Params(nscales=3, warps=2, inner_iterations=15, outer_iterations=3,
                        epsilon=0.05)
    together = torch_flows(frames, params)  # pairs stop at different iterations
    for i in range(len(frames) - 1):
        alone = torch_flows(frames[i:i + 2], params)[0]
        assert epe(alone, together[i]).max() < 1e-3
    every = torch_flows(frames, params, check_every=4)
    np.testing.assert_array_equal(every, together)  # stopped pairs are frozen, not stepped


def test_pairs_api_and_float_input(frames: np.ndarray, cheap_reference: np.ndarray) -> None:
    a, b = torch.from_numpy(frames[:-1]), torch.from_numpy(frames[1:])
    batch = tvl1_pairs(a, b, CHEAP).numpy()
    np.testing.assert_allclose(batch, torch_flows(frames, CHEAP), atol=1e-4)
    single = tvl1_pairs(a[0], b[0], CHEAP).numpy()
    assert single.shape == (H, W, 2)
    assert epe(single, cheap_reference[0]).mean() < 0.02
    scaled = tvl1_pairs(a[0].float() / 255, b[0].float() / 255, CHEAP).numpy()  # like OpenCV
    np.testing.assert_allclose(scaled, single, atol=1e-3)


def test_bad_inputs_are_refused(frames: np.ndarray) -> None:
    t = torch.from_numpy(frames)
    with pytest.raises(ValueError, match="must match"):
        tvl1_pairs(t[:2], t[:3])
    with pytest.raises(ValueError, match="N >= 2"):
        tvl1_sequence(t[:1])
    with pytest.raises(ValueError, match="uint8 or floating"):
        tvl1_sequence(t.to(torch.int32))
    with pytest.raises(ValueError, match="use_initial_flow"):
        tvl1_sequence(t, TVL1Params(use_initial_flow=True))


# ---------------------------------------------------------------- the flow cache and stage


def rgb(frames: np.ndarray) -> list[np.ndarray]:
    return [np.repeat(f[:, :, None], 3, axis=2) for f in frames]


def test_compute_flow_torch_writes_the_same_cache_format(tmp_path: Path) -> None:
    frames = scene(6, h=32, w=40, seed=5)[0]
    meta = compute_flow_torch(rgb(frames), tmp_path / "t.zip", params=CHEAP, codec="png",
                              device="cpu", batch_pairs=2, extra_meta={"video": "v"})
    assert meta["backend"] == "torch"
    assert meta["device"] == "cpu"
    assert meta["n_flows"] == 5
    expected = torch_flows(frames, CHEAP)  # one batch of 5 pairs: chunking changes nothing
    with FlowCache(tmp_path / "t.zip") as cache:
        assert cache.meta == meta
        for i in range(5):
            np.testing.assert_array_equal(cache[i], quantize(expected[i], 20.0))
    reference = compute_flow(rgb(frames), tmp_path / "o.zip", params=CHEAP, codec="png")
    with zipfile.ZipFile(tmp_path / "t.zip") as zt, zipfile.ZipFile(tmp_path / "o.zip") as zo:
        assert zt.namelist() == zo.namelist()
    assert {k: v for k, v in meta.items() if k not in ("backend", "device", "video")} == {
        k: v for k, v in reference.items() if k != "backend"}


def test_compute_flow_torch_failures_leave_no_file(tmp_path: Path) -> None:
    frames = rgb(scene(3, h=32, w=40)[0])
    out = tmp_path / "f.zip"
    with pytest.raises(ValueError, match="at least 2 frames"):
        compute_flow_torch(frames[:1], out, params=CHEAP, device="cpu")
    with pytest.raises(ValueError, match="same size"):
        compute_flow_torch([*frames, frames[0][:16]], out, params=CHEAP, device="cpu",
                           batch_pairs=1)
    with pytest.raises(ValueError, match="batch_pairs"):
        compute_flow_torch(frames, out, params=CHEAP, device="cpu", batch_pairs=0)
    assert list(tmp_path.iterdir()) == []


def test_resolve_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_backend("opencv") == ("opencv", None)
    assert resolve_backend("auto") == ("opencv", None)
    assert resolve_backend("auto", "auto") == ("opencv", None)
    assert resolve_backend("torch") == ("torch", "cpu")
    assert resolve_backend("torch", "cpu") == ("torch", "cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_backend("torch", "cuda")
    with pytest.raises(ValueError, match="runs on the CPU"):
        resolve_backend("opencv", "cuda")
    with pytest.raises(ValueError, match="unknown TV-L1 backend"):
        resolve_backend("cuda")
    with pytest.raises(ValueError, match="unknown flow device"):
        resolve_backend("torch", "tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_backend("auto") == ("torch", "cuda")
    assert resolve_backend("auto", "cpu") == ("opencv", None)
    assert resolve_backend("torch") == ("torch", "cuda")
    assert resolve_backend("torch", "cuda:1") == ("torch", "cuda:1")


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stage")
    frames = np.stack(rgb(scene(7, h=48, w=64, seed=2)[0]))
    video = write_video(folder / "v.mp4", frames, fps=25.0)
    decode(video, folder / "plan.json", fps=25.0)
    return folder / "plan.json"


def test_flow_stage_torch_backend_matches_opencv_backend(plan: Path, tmp_path: Path) -> None:
    settings = {"params": CHEAP.to_dict(), "codec": "png", "short_side": 48}
    torch_meta = flow_stage(plan, tmp_path / "t.zip", backend="torch", device="cpu",
                            batch_pairs=4, **settings)  # type: ignore[arg-type]
    auto_meta = flow_stage(plan, tmp_path / "a.zip", backend="auto", device="cpu",
                           **settings)  # type: ignore[arg-type]
    assert torch_meta["backend"] == "torch"
    assert torch_meta["device"] == "cpu"
    assert auto_meta["backend"] == "opencv"  # auto on a CPU means OpenCV
    with FlowCache(tmp_path / "t.zip") as ours, FlowCache(tmp_path / "a.zip") as theirs:
        assert len(ours) == len(theirs) == 6
        assert (ours.height, ours.width) == (theirs.height, theirs.width) == (48, 64)
        diff = np.abs(ours.read_range(0, 6).astype(int) - theirs.read_range(0, 6).astype(int))
        assert (diff <= 1).mean() > 0.99  # quantised alike: one level is 0.16 px
        payload = json.loads(zipfile.ZipFile(tmp_path / "t.zip").read("meta.json"))
        assert payload["backend"] == "torch"


def test_schema_accepts_the_backends_and_their_settings() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    flow = schema["properties"]["flow"]
    assert flow["properties"]["backend"]["enum"] == ["opencv", "torch", "auto"]
    base = {"name": "d", "root": "r", "classes": ["a"],
            "subsets": [{"name": "v", "split": "train", "videos": "v", "annotations": "a",
                         "suffix": "val"}]}
    config = {**base, "flow": {"backend": "torch", "device": "cuda", "batch_pairs": 64}}
    jsonschema.validate(config, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**base, "flow": {"backend": "cuda"}}, schema)


# ---------------------------------------------------------------- on a GPU


@pytest.mark.gpu
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_cuda_matches_cpu(frames: np.ndarray, cheap_reference: np.ndarray,
                          compiled: bool) -> None:
    cpu = torch_flows(frames, CHEAP)
    cuda = torch_flows(frames, CHEAP, device="cuda", compiled=compiled)
    assert epe(cuda, cpu).mean() <= 0.02
    assert epe(cuda, cheap_reference).mean() <= 0.02


@pytest.mark.gpu
def test_cuda_matches_opencv_with_default_params(frames: np.ndarray) -> None:
    error = epe(torch_flows(frames, TVL1Params(), device="cuda"),
                opencv_flows(frames, TVL1Params()))
    assert error.mean() <= 0.05


@pytest.mark.gpu
def test_compute_flow_torch_on_cuda(tmp_path: Path) -> None:
    frames = scene(5, h=32, w=40)[0]
    meta = compute_flow_torch(rgb(frames), tmp_path / "g.zip", params=CHEAP, device="cuda",
                              batch_pairs=3)
    assert meta["device"].startswith("cuda")
    assert meta["n_flows"] == 4


def test_pairs_for_memory_uses_the_measured_cost() -> None:
    from extractors.tvl1_torch import BYTES_PER_PAIR_PIXEL, pairs_for_memory

    per_pair_mb = BYTES_PER_PAIR_PIXEL * 224 * 224 / 1e6
    assert 35 < per_pair_mb < 45  # measured: about 40 MB a pair at 224×224 on the CPU
    assert pairs_for_memory(1000, 224, 224) == int(1000 // per_pair_mb)
    assert pairs_for_memory(1, 256, 340) == 1  # never below one pair
    assert pairs_for_memory(4000, 256, 340) < pairs_for_memory(4000, 224, 224)
    with pytest.raises(ValueError, match="must be positive"):
        pairs_for_memory(0, 224, 224)
