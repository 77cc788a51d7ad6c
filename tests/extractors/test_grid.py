"""The snippet grid: frames of each snippet and the snippet ↔ seconds mapping."""

import numpy as np
import pytest

from extractors.grid import SnippetGrid


def test_count_and_frame_ranges() -> None:
    grid = SnippetGrid(fps=25.0, n_frames=100, length=16, stride=16)
    assert grid.n_snippets == 6  # (100 - 16) // 16 + 1; the 4-frame tail forms no snippet
    assert grid.frame_range(0) == (0, 16)
    assert grid.frame_range(5) == (80, 96)
    with pytest.raises(IndexError):
        grid.frame_range(6)


def test_short_video_has_no_snippet() -> None:
    assert SnippetGrid(fps=25.0, n_frames=15).n_snippets == 0
    assert SnippetGrid(fps=25.0, n_frames=16).n_snippets == 1


def test_seconds_follow_wtalc_convention() -> None:
    # 16-frame snippets at 25 fps: snippet i owns [i*0.64, (i+1)*0.64)
    grid = SnippetGrid(fps=25.0, n_frames=400)
    np.testing.assert_allclose(grid.starts()[:3], [0.0, 0.64, 1.28])
    np.testing.assert_allclose(grid.ends()[:3], [0.64, 1.28, 1.92])
    assert grid.run_to_seconds(2, 4) == pytest.approx((1.28, 3.2))


def test_overlapping_snippets_own_their_stride() -> None:
    grid = SnippetGrid(fps=10.0, n_frames=40, length=16, stride=4)
    assert grid.n_snippets == 7
    np.testing.assert_allclose(grid.centers()[:2], [0.8, 1.2])
    np.testing.assert_allclose(grid.starts()[:2], [0.6, 1.0])
    assert grid.run_to_seconds(0, 0) == pytest.approx((0.6, 1.0))


def test_index_seconds_round_trip_and_fps_matters() -> None:
    grid = SnippetGrid(fps=30.0, n_frames=900, length=16, stride=8)
    x = np.linspace(0, 50, 11)
    np.testing.assert_allclose(grid.seconds_to_index(grid.index_to_seconds(x)), x)
    wrong = SnippetGrid(fps=25.0, n_frames=900, length=16, stride=8)
    assert abs(wrong.run_to_seconds(50, 60)[0] - grid.run_to_seconds(50, 60)[0]) > 2.0


def test_dict_round_trip_and_validation() -> None:
    grid = SnippetGrid(fps=24.0, n_frames=77, length=8, stride=4)
    assert SnippetGrid.from_dict(grid.to_dict()) == grid
    with pytest.raises(ValueError, match="fps"):
        SnippetGrid(fps=0.0, n_frames=10)
    with pytest.raises(ValueError, match="stride"):
        SnippetGrid(fps=25.0, n_frames=10, stride=0)


def test_frame_level_grid_of_tsrnet_frames() -> None:
    """length = stride = 1: one row per frame, frame i owns [i / fps, (i + 1) / fps)."""
    grid = SnippetGrid(fps=30.0, n_frames=10, length=1, stride=1)
    assert grid.n_snippets == 10
    assert grid.frame_range(9) == (9, 10)
    assert grid.run_to_seconds(2, 4) == pytest.approx((2 / 30, 5 / 30))
    np.testing.assert_allclose(grid.seconds_to_index(grid.index_to_seconds(np.arange(4.0))),
                               np.arange(4.0))


def test_untrimmednet_units_own_their_frames() -> None:
    """Units of n_u = 16 frames at 30 fps (KT-MGFN): unit j spans [16 j / 30, 16 (j + 1) / 30)."""
    grid = SnippetGrid(fps=30.0, n_frames=100, length=16, stride=16)
    assert grid.n_snippets == 6
    assert grid.run_to_seconds(1, 1) == pytest.approx((16 / 30, 32 / 30))
