"""Flow and features stages on a tiny real video: decode → TV-L1 → two-stream I3D."""

from pathlib import Path

import numpy as np
import pytest
from conftest import write_video

from extractors.decode import VideoError, decode
from extractors.features import FeatureSettings, extract_features, load_features
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
    decode(video, plan, fps=25.0)  # 1.5 s: 38 frames at 25 fps (times 0 .. 1.48 s)
    flow = tmp_path / "flow.zip"
    flow_stage(plan, flow, params=CHEAP, short_side=48, codec="png")
    return plan, flow


def settings(**kw: object) -> FeatureSettings:
    base = {"snippet_length": 8, "snippet_stride": 8, "short_side": 48, "crop": 32,
            "batch_size": 2}
    return FeatureSettings(**{**base, **kw})  # type: ignore[arg-type]


def test_flow_stage_writes_one_flow_per_frame_pair(decoded: tuple[Path, Path]) -> None:
    _, flow = decoded
    with FlowCache(flow) as cache:
        assert len(cache) == 37
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
    side = extract_features(plan, flow, out, settings=settings(), device="cpu")
    feats, sidecar = load_features(out)
    assert feats.shape == (4, 2048)  # (38 - 8) // 8 + 1 snippets
    assert feats.dtype == np.float32
    assert np.isfinite(feats).all()
    assert sidecar == side
    assert sidecar["streams"] == {"rgb": [0, 1024], "flow": [1024, 2048]}
    assert sidecar["grid"] == {"fps": 25.0, "n_frames": 38, "length": 8, "stride": 8}
    assert sidecar["weights"]["rgb"] == {"source": "none", "seed": 0}
    assert sidecar["flow"]["params"]["warps"] == 2
    assert sidecar["frames"]["crop"] == 32
    again = tmp_path / "again.npy"
    extract_features(plan, flow, again, settings=settings(batch_size=3), device="cpu")
    np.testing.assert_allclose(np.load(again), feats, rtol=1e-4, atol=1e-5)
    # the RGB half responds to colour, the flow half does not
    other = write_video(tmp_path / "w.mp4", moving_square_frames(45, color=(40, 40, 220)),
                        fps=30.0)
    decode(other, tmp_path / "w.json", fps=25.0)
    flow_stage(tmp_path / "w.json", tmp_path / "w.zip", params=CHEAP, short_side=48,
               codec="png")
    extract_features(tmp_path / "w.json", tmp_path / "w.zip", tmp_path / "w.npy",
                     settings=settings(), device="cpu")
    blue = np.load(tmp_path / "w.npy")
    rgb_change = np.abs(blue[:, :1024] - feats[:, :1024]).mean()
    flow_change = np.abs(blue[:, 1024:] - feats[:, 1024:]).mean()
    assert rgb_change > 5 * flow_change


def test_different_seed_different_features(decoded: tuple[Path, Path], tmp_path: Path) -> None:
    plan, flow = decoded
    a = extract_features(plan, flow, tmp_path / "a.npy", settings=settings(seed=0), device="cpu")
    b = extract_features(plan, flow, tmp_path / "b.npy", settings=settings(seed=1), device="cpu")
    assert a["weights"]["rgb"]["seed"] != b["weights"]["rgb"]["seed"]
    assert not np.allclose(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_flow_geometry_mismatch_is_an_error(decoded: tuple[Path, Path], tmp_path: Path) -> None:
    plan, flow = decoded
    with pytest.raises(ValueError, match="same short_side"):
        extract_features(plan, flow, tmp_path / "x.npy", settings=settings(short_side=40),
                    device="cpu")
    assert not (tmp_path / "x.npy").exists()


def test_video_shorter_than_a_snippet(tmp_path: Path) -> None:
    video = write_video(tmp_path / "s.mp4", moving_square_frames(6), fps=30.0)
    decode(video, tmp_path / "s.json", fps=25.0)
    flow_stage(tmp_path / "s.json", tmp_path / "s.zip", params=CHEAP, short_side=48)
    with pytest.raises(VideoError, match="shorter than one snippet"):
        extract_features(tmp_path / "s.json", tmp_path / "s.zip", tmp_path / "s.npy",
                    settings=settings(), device="cpu")
    assert not (tmp_path / "s.npy").exists()


def test_missing_sidecar_is_reported(tmp_path: Path) -> None:
    np.save(tmp_path / "lonely.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(FileNotFoundError, match="sidecar"):
        load_features(tmp_path / "lonely.npy")


# ---- backbones and ten-crop ------------------------------------------------------------------


def read_views(plan: Path, flow: Path, crop: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The ten crops of every frame and flow, written out independently of the stage.

    Order: top-left, top-right, bottom-left, bottom-right, centre, then mirrored; a mirrored
    flow has its x component negated (255 - p in the quantised image).
    """
    from extractors.decode import FramePlan, iter_frames

    fp = FramePlan.load(plan)
    frames = np.concatenate(list(iter_frames(fp, short_side=48)))  # (38, 48, 64, 3)
    with FlowCache(flow) as cache:
        flows = np.stack([cache[i] for i in range(len(cache))])  # (37, 48, 64, 2)
    h, w = frames.shape[1:3]
    spots = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop),
             ((h - crop) // 2, (w - crop) // 2)]
    rgb_views, flow_views = [], []
    for mirror in (False, True):
        for y, x in spots:
            r = frames[:, y : y + crop, x : x + crop]
            f = flows[:, y : y + crop, x : x + crop].astype(np.int16)
            if mirror:
                r, f = r[:, :, ::-1], f[:, :, ::-1].copy()
                f[..., 0] = 255 - f[..., 0]
            rgb_views.append(np.ascontiguousarray(r))
            flow_views.append(np.ascontiguousarray(f))
    return rgb_views, flow_views


def i3d_by_hand(rgb: np.ndarray, flow: np.ndarray, nets: tuple, length: int = 8) -> np.ndarray:
    """Two-stream I3D features of one view, snippets of ``length`` frames, stride ``length``."""
    import torch

    n = (len(rgb) - length) // length + 1
    flow = np.concatenate([flow, flow[-1:]])  # the last snippet repeats the last flow
    r = np.stack([rgb[i * length : (i + 1) * length] for i in range(n)])
    f = np.stack([flow[i * length : (i + 1) * length] for i in range(n)])
    rgb_net, flow_net = nets
    with torch.no_grad():
        a = rgb_net.features(torch.from_numpy(r).permute(0, 4, 1, 2, 3).float() / 127.5 - 1)
        b = flow_net.features(torch.from_numpy(f).permute(0, 4, 1, 2, 3).float() / 127.5 - 1)
    return torch.cat([a, b], dim=1).numpy()


@pytest.mark.slow
def test_ten_crop_is_the_mean_of_the_ten_views(decoded: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    plan, flow = decoded
    centre = extract_features(plan, flow, tmp_path / "c.npy", settings=settings(), device="cpu")
    ten = extract_features(plan, flow, tmp_path / "t.npy", settings=settings(ten_crop=True),
                      device="cpu")
    assert ten["settings"]["ten_crop"] is True
    assert centre["settings"]["ten_crop"] is False
    assert "ten_crop" in ten["frames"]["crops"]
    assert centre["frames"]["crops"] == "centre"
    c, t = np.load(tmp_path / "c.npy"), np.load(tmp_path / "t.npy")
    assert t.shape == c.shape == (4, 2048)
    assert np.abs(t - c).mean() > 1e-3 * np.abs(c).mean()
    from extractors.backbones import build_i3d

    rgb_views, flow_views = read_views(plan, flow, 32)
    nets = (build_i3d(in_channels=3, weights="none", sha256=None, seed=0),
            build_i3d(in_channels=2, weights="none", sha256=None, seed=1))
    by_view = [i3d_by_hand(r, f, nets) for r, f in zip(rgb_views, flow_views, strict=True)]
    np.testing.assert_allclose(by_view[4], c, rtol=1e-4, atol=1e-5)  # view 4 is the centre
    np.testing.assert_allclose(np.mean(by_view, axis=0), t, rtol=1e-4, atol=1e-5)
    # mirroring matters for flow: without negating x the flow half would differ
    assert not np.allclose(by_view[0][:, 1024:], by_view[5][:, 1024:], atol=1e-4)


def test_flow_stack_indices_are_centred_and_stay_inside() -> None:
    from extractors.features import _flow_stack_indices

    assert _flow_stack_indices(10, 5, 36).tolist() == [8, 9, 10, 11, 12]
    assert _flow_stack_indices(0, 5, 36).tolist() == [0, 1, 2, 3, 4]
    assert _flow_stack_indices(36, 5, 36).tolist() == [31, 32, 33, 34, 35]
    assert _flow_stack_indices(1, 5, 3).tolist() == [0, 1, 2, 2, 2]


@pytest.mark.parametrize(
    ("extractor", "extra", "shape", "streams"),
    [
        ("i3d_r50", {}, (4, 2048), {"rgb": [0, 2048]}),
        ("untrimmednet", {"resnet_depth": 50}, (4, 3072),
         {"rgb": [0, 2048], "flow": [2048, 3072]}),
        pytest.param("tsrnet_frames", {"snippet_length": 1, "snippet_stride": 3,
                                       "batch_size": 8}, (13, 4096),
                     {"rgb": [0, 2048], "flow": [2048, 4096]}, marks=pytest.mark.slow),
    ],
)
def test_backbone_shapes_sidecar_and_determinism(
    decoded: tuple[Path, Path], tmp_path: Path, extractor: str, extra: dict[str, object],
    shape: tuple[int, int], streams: dict[str, list[int]],
) -> None:
    plan, flow = decoded
    flow_in = None if extractor == "i3d_r50" else flow
    side = extract_features(plan, flow_in, tmp_path / "a.npy",
                       settings=settings(extractor=extractor, **extra), device="cpu")
    feats, sidecar = load_features(tmp_path / "a.npy")
    assert feats.shape == shape
    assert sidecar == side
    assert sidecar["extractor"] == extractor
    assert sidecar["streams"] == streams
    assert sidecar["frames"]["frame_count"] == 38
    assert sidecar["frames"]["fps"] == 25.0
    assert sidecar["code_version"]
    assert set(sidecar["weights"]) == set(streams)
    assert (sidecar["flow"] is None) == (extractor == "i3d_r50")
    if extractor != "i3d_r50":
        assert "x1, y1" in sidecar["inputs"]["flow"]["frames"]
        assert sidecar["flow"]["bound"] == 20.0
    assert np.isfinite(feats).all()
    assert feats.std(axis=0).mean() > 0
    extract_features(plan, flow_in, tmp_path / "b.npy",
                settings=settings(extractor=extractor, **{**extra, "batch_size": 3}),
                device="cpu")
    # the same numbers with another batch size, up to float rounding
    np.testing.assert_allclose(np.load(tmp_path / "b.npy"), feats, rtol=1e-4,
                               atol=1e-5 * np.abs(feats).max())


def test_untrimmednet_units_read_the_centre_frame(decoded: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    """The RGB half of a unit is the ResNet feature of its centre frame, nothing else."""
    import torch

    from extractors.backbones import IMAGENET_MEAN, IMAGENET_STD, build_resnet
    from extractors.decode import FramePlan, iter_frames

    plan, flow = decoded
    extract_features(plan, flow, tmp_path / "u.npy",
                settings=settings(extractor="untrimmednet", resnet_depth=50), device="cpu")
    feats = np.load(tmp_path / "u.npy")
    frames = np.concatenate(list(iter_frames(FramePlan.load(plan), short_side=48)))
    centres = frames[[4, 12, 20, 28], 8:40, 16:48]  # units of 8 frames: start + 4; 32 crop
    x = torch.from_numpy(centres).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    net = build_resnet(depth=50, in_channels=3, weights="none", sha256=None, seed=0)
    with torch.no_grad():
        expected = net.features(x).numpy()
    np.testing.assert_allclose(feats[:, :2048], expected, rtol=1e-4, atol=1e-5)


def test_unknown_extractor_and_rgb_only_flow_weights_are_errors() -> None:
    with pytest.raises(ValueError, match="extractor must be one of"):
        settings(extractor="c3d")
    with pytest.raises(ValueError, match="no flow stream"):
        settings(extractor="i3d_r50", flow_weights="flow_imagenet.pt")


def test_frames_are_read_one_batch_at_a_time(decoded: tuple[Path, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory is bounded by the batch, not the video: each read covers one batch's frames."""
    import extractors.features as stage

    spans: list[tuple[int, int]] = []
    real = stage.iter_frames

    def spy(plan: object, **kw: int) -> object:
        spans.append((kw["start"], kw["stop"]))
        return real(plan, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(stage, "iter_frames", spy)
    plan, flow = decoded
    extract_features(plan, flow, tmp_path / "a.npy", settings=settings(batch_size=1), device="cpu")
    assert spans == [(0, 8), (8, 16), (16, 24), (24, 32)]
    spans.clear()
    extract_features(plan, flow, tmp_path / "u.npy", device="cpu",
                settings=settings(extractor="untrimmednet", resnet_depth=50, batch_size=2))
    assert spans == [(4, 13), (20, 29)]  # the centre frames 4, 12 | 20, 28 and those between
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_two_stream_backbone_without_flow_is_an_error(decoded: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    plan, _ = decoded
    for no_flow in (None, []):  # Snakemake passes [] when a rule has no flow input
        with pytest.raises(ValueError, match="needs the flow cache"):
            extract_features(plan, no_flow, tmp_path / "x.npy",  # type: ignore[arg-type]
                        settings=settings(extractor="untrimmednet"), device="cpu")
    assert not (tmp_path / "x.npy").exists()
