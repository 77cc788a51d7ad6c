"""Flow and features stages on a tiny real video: decode → TV-L1 → two-stream I3D."""

from pathlib import Path

import numpy as np
import pytest
from conftest import write_video

from extractors.decode import VideoError, decode
from extractors.features import I3DSettings, extract_i3d, load_features
from extractors.flow import FlowCache
from extractors.flowstage import flow_stage

CHEAP = {"nscales": 2, "warps": 2, "inner_iterations": 10, "outer_iterations": 2}


def moving_square_frames(n: int, *, color: tuple[int, int, int] = (200, 40, 40)) -> np.ndarray:
    rng = np.random.default_rng(0)
    background = rng.integers(60, 120, size=(48, 64, 3), dtype=np.uint8)
    texture = rng.integers(128, 256, size=(16, 16, 1)) / 255.0
    patch = (texture * np.array(color)).astype(np.uint8)  # a tinted, textured square
    frames = np.repeat(background[None], n, axis=0)
    for i in range(n):
        x = 5 + i % 40
        frames[i, 14:30, x : x + 16] = patch
    return frames


@pytest.fixture
def decoded(tmp_path: Path) -> tuple[Path, Path]:
    video = write_video(tmp_path / "v.mp4", moving_square_frames(45), fps=30.0)
    plan = tmp_path / "plan.json"
    decode(video, plan, fps=25.0)  # 37 frames at 25 fps
    flow = tmp_path / "flow.zip"
    flow_stage(plan, flow, params=CHEAP, short_side=48, codec="png")
    return plan, flow


def settings(**kw: object) -> I3DSettings:
    base = {"snippet_length": 8, "snippet_stride": 8, "short_side": 48, "crop": 32,
            "batch_size": 2}
    return I3DSettings(**{**base, **kw})  # type: ignore[arg-type]


def test_flow_stage_writes_one_flow_per_frame_pair(decoded: tuple[Path, Path]) -> None:
    _, flow = decoded
    with FlowCache(flow) as cache:
        assert len(cache) == 36
        assert (cache.meta["width"], cache.meta["height"]) == (64, 48)
        assert cache.meta["backend"] == "opencv"
        assert cache.meta["params"]["nscales"] == 2
        # the square moves right by 1 px per source frame (1.2 px per frame at 25 fps)
        f = cache.read_float(3)
        on_square = f[16:28, 12:20, 0]
        assert np.median(on_square) > 0.5
        assert abs(np.median(f[35:, :, 0])) < 0.2  # static background


def test_features_shape_sidecar_and_determinism(decoded: tuple[Path, Path], tmp_path: Path) -> None:
    plan, flow = decoded
    out = tmp_path / "feats" / "v.npy"
    side = extract_i3d(plan, flow, out, settings=settings(), device="cpu")
    feats, sidecar = load_features(out)
    assert feats.shape == (4, 2048)  # (37 - 8) // 8 + 1 snippets
    assert feats.dtype == np.float32
    assert np.isfinite(feats).all()
    assert sidecar == side
    assert sidecar["streams"] == {"rgb": [0, 1024], "flow": [1024, 2048]}
    assert sidecar["grid"] == {"fps": 25.0, "n_frames": 37, "length": 8, "stride": 8}
    assert sidecar["weights"]["rgb"] == {"source": "none", "seed": 0}
    assert sidecar["flow"]["params"]["warps"] == 2
    assert sidecar["frames"]["crop"] == 32
    again = tmp_path / "again.npy"
    extract_i3d(plan, flow, again, settings=settings(batch_size=3), device="cpu")
    np.testing.assert_allclose(np.load(again), feats, rtol=1e-4, atol=1e-5)
    # the RGB half responds to colour, the flow half does not
    other = write_video(tmp_path / "w.mp4", moving_square_frames(45, color=(40, 40, 220)),
                        fps=30.0)
    decode(other, tmp_path / "w.json", fps=25.0)
    flow_stage(tmp_path / "w.json", tmp_path / "w.zip", params=CHEAP, short_side=48,
               codec="png")
    extract_i3d(tmp_path / "w.json", tmp_path / "w.zip", tmp_path / "w.npy", settings=settings(),
                device="cpu")
    blue = np.load(tmp_path / "w.npy")
    rgb_change = np.abs(blue[:, :1024] - feats[:, :1024]).mean()
    flow_change = np.abs(blue[:, 1024:] - feats[:, 1024:]).mean()
    assert rgb_change > 5 * flow_change


def test_different_seed_different_features(decoded: tuple[Path, Path], tmp_path: Path) -> None:
    plan, flow = decoded
    a = extract_i3d(plan, flow, tmp_path / "a.npy", settings=settings(seed=0), device="cpu")
    b = extract_i3d(plan, flow, tmp_path / "b.npy", settings=settings(seed=1), device="cpu")
    assert a["weights"]["rgb"]["seed"] != b["weights"]["rgb"]["seed"]
    assert not np.allclose(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_flow_geometry_mismatch_is_an_error(decoded: tuple[Path, Path], tmp_path: Path) -> None:
    plan, flow = decoded
    with pytest.raises(ValueError, match="same short_side"):
        extract_i3d(plan, flow, tmp_path / "x.npy", settings=settings(short_side=40),
                    device="cpu")
    assert not (tmp_path / "x.npy").exists()


def test_video_shorter_than_a_snippet(tmp_path: Path) -> None:
    video = write_video(tmp_path / "s.mp4", moving_square_frames(6), fps=30.0)
    decode(video, tmp_path / "s.json", fps=25.0)
    flow_stage(tmp_path / "s.json", tmp_path / "s.zip", params=CHEAP, short_side=48)
    with pytest.raises(VideoError, match="shorter than one snippet"):
        extract_i3d(tmp_path / "s.json", tmp_path / "s.zip", tmp_path / "s.npy",
                    settings=settings(), device="cpu")
    assert not (tmp_path / "s.npy").exists()


def test_missing_sidecar_is_reported(tmp_path: Path) -> None:
    np.save(tmp_path / "lonely.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(FileNotFoundError, match="sidecar"):
        load_features(tmp_path / "lonely.npy")
