"""features-compare: per-video cosine similarity and scale between two feature sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from extractors.compare import compare_arrays, compare_features, format_table
from wtal.cli import main


def write(folder: Path, name: str, feats: np.ndarray, streams: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.npy"
    np.save(path, feats.astype(np.float32))
    if streams is not None:
        path.with_suffix(".json").write_text(json.dumps({"streams": streams}))
    return path


@pytest.fixture
def feature_sets(tmp_path: Path) -> tuple[Path, Path]:
    """Released-like features A and a re-extraction B that differs in known ways per video.

    v1: B = 2 * A (same directions, twice the scale); v2: B's flow half is unrelated noise and
    B has one snippet more; v3 only in A; v4 only in B.
    """
    rng = np.random.default_rng(0)
    streams = {"rgb": [0, 4], "flow": [4, 8]}
    a1, a2 = rng.random((10, 8)) + 0.1, rng.random((6, 8)) + 0.1
    b2 = np.concatenate([a2, a2[-1:]])
    b2[:, 4:] = rng.standard_normal((7, 4))
    write(tmp_path / "a", "v1", a1, streams)
    write(tmp_path / "a", "v2", a2, streams)
    write(tmp_path / "a", "v3", a1)
    write(tmp_path / "b", "v1", 2 * a1, streams)
    write(tmp_path / "b", "v2", b2, streams)
    write(tmp_path / "b", "v4", a1)
    return tmp_path / "a", tmp_path / "b"


def test_compare_arrays_cosine_and_scale() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((20, 16))
    same = compare_arrays(a, 3 * a)
    assert same["cosine_mean"] == pytest.approx(1.0)
    assert same["cosine_min"] == pytest.approx(1.0)
    assert same["scale_ratio"] == pytest.approx(3.0)
    assert same["rel_error"] == pytest.approx(2.0)
    flipped = compare_arrays(a, -a)
    assert flipped["cosine_mean"] == pytest.approx(-1.0)
    shorter = compare_arrays(a, a[:15])
    assert (shorter["snippets_a"], shorter["snippets_b"], shorter["compared"]) == (20, 15, 15)
    noise = compare_arrays(a, rng.standard_normal((20, 16)))
    assert abs(noise["cosine_mean"]) < 0.3
    with pytest.raises(ValueError, match="widths differ"):
        compare_arrays(a, a[:, :8])


def test_compare_folders_per_video_and_stream(feature_sets: tuple[Path, Path]) -> None:
    a, b = feature_sets
    result = compare_features(a, b)
    assert sorted(result["videos"]) == ["v1", "v2"]
    assert result["only_a"] == ["v3"]
    assert result["only_b"] == ["v4"]
    v1, v2 = result["videos"]["v1"], result["videos"]["v2"]
    assert set(v1) == {"all", "rgb", "flow"}
    assert v1["rgb"]["columns"] == [0, 4]
    for stream in ("all", "rgb", "flow"):
        assert v1[stream]["cosine_mean"] == pytest.approx(1.0)
        assert v1[stream]["scale_ratio"] == pytest.approx(2.0)
    assert v2["rgb"]["cosine_min"] == pytest.approx(1.0)
    assert v2["rgb"]["scale_ratio"] == pytest.approx(1.0)
    assert v2["flow"]["cosine_mean"] < 0.8
    assert (v2["all"]["snippets_a"], v2["all"]["snippets_b"]) == (6, 7)
    summary = result["summary"]
    assert summary["rgb"]["videos"] == 2
    assert summary["flow"]["cosine_min"] == pytest.approx(v2["flow"]["cosine_min"])
    table = format_table(result)
    assert "v2" in table
    assert "only in b: v4" in table


def test_files_and_mismatches(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 6))
    fa = write(tmp_path / "a", "clip", x)
    fb = write(tmp_path / "b", "other", x * 0.5)
    one = compare_features(fa, fb)
    assert list(one["videos"]) == ["clip"]
    assert set(one["videos"]["clip"]) == {"all"}  # no sidecars: one stream
    assert one["videos"]["clip"]["all"]["scale_ratio"] == pytest.approx(0.5)
    wide = write(tmp_path / "c", "clip", rng.standard_normal((5, 7)))
    assert "cannot be compared" in compare_features(fa, wide)["errors"]["clip"]
    with pytest.raises(ValueError, match="two files or two folders"):
        compare_features(fa, tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="missing"):
        compare_features(fa, tmp_path / "missing.npy")


def test_cli_prints_table_and_writes_json(feature_sets: tuple[Path, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    a, b = feature_sets
    out = tmp_path / "cmp.json"
    assert main(["features-compare", str(a), str(b), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cos mean" in printed
    assert "ALL (2 videos)" in printed
    saved = json.loads(out.read_text())
    assert saved["videos"]["v1"]["all"]["scale_ratio"] == pytest.approx(2.0)
