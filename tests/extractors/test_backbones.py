"""Backbones: strict loads in the pytorchvideo and torchvision layouts, shapes, determinism."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from extractors.backbones import build_i3d, build_i3d_r50, build_resnet
from extractors.weights import WeightsError, file_sha256


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Every float tensor random (BN statistics too), so that a wrong load changes outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.ndim > 1:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1
                             + (1.0 if name.endswith("norm.weight") or "bn" in name else 0.0))
    return model.eval()


def pytorchvideo_i3d_r50() -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pytorchvideo.models.hub.resnet import i3d_r50

        return i3d_r50(pretrained=False)


def without_batch_counts(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


@pytest.fixture(scope="module")
def i3d_r50_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    """pytorchvideo's own i3d_r50 with random weights, saved as the Kinetics .pyth is."""
    reference = randomise(pytorchvideo_i3d_r50(), seed=11)
    path = tmp_path_factory.mktemp("pyth") / "I3D_8x8_R50.pyth"
    torch.save({"model_state": without_batch_counts(reference.state_dict()), "model_epoch": 196},
               path)
    return reference, path


@pytest.mark.slow
def test_i3d_r50_loads_the_pyth_container_and_gives_its_outputs(
    i3d_r50_reference: tuple[nn.Module, Path],
) -> None:
    reference, path = i3d_r50_reference
    stream = build_i3d_r50(weights=str(path), sha256=file_sha256(path), seed=0)
    assert stream.dim == 2048
    assert stream.record["sha256"] == file_sha256(path)
    assert stream.record["container_key"] == "model_state"
    keys = set(stream.net.model.state_dict())
    assert "blocks.6.proj.weight" in keys
    assert "blocks.5.res_blocks.2.branch2.conv_c.weight" in keys
    assert not any(k.startswith("blocks.2.") for k in keys)  # the stage-1 max pool
    # the 8x224x224 clip the checkpoint was trained on: the head's AvgPool3d((4, 7, 7)) is the
    # global average, so the projection of the features is pytorchvideo's logits
    clip = torch.randn(1, 3, 8, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        feats = stream.features(clip)
        torch.testing.assert_close(stream.net(clip), reference(clip), rtol=1e-4, atol=1e-4)
    assert feats.shape == (1, 2048)


@pytest.mark.slow
def test_i3d_r50_shapes_determinism_and_layout_errors(
    i3d_r50_reference: tuple[nn.Module, Path], tmp_path: Path
) -> None:
    _, path = i3d_r50_reference
    stream = build_i3d_r50(weights=str(path), sha256=None, seed=0)
    clips = torch.randn(3, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = stream.features(clips)
        b = torch.cat([stream.features(clips[i : i + 1]) for i in range(3)])
    assert a.shape == (3, 2048)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # batch-independent (eval mode)
    # the bare state dict (no model_state container) is not the pytorchvideo format
    bare = tmp_path / "bare.pyth"
    torch.save(torch.load(path, weights_only=True)["model_state"], bare)
    with pytest.raises(WeightsError, match="model_state"):
        build_i3d_r50(weights=str(bare), sha256=None, seed=0)
    # slow_r50's head is blocks.5: its keys do not fit
    state = torch.load(path, weights_only=True)["model_state"]
    state["blocks.5.proj.weight"] = state.pop("blocks.6.proj.weight")
    wrong = tmp_path / "wrong.pyth"
    torch.save({"model_state": state}, wrong)
    with pytest.raises(WeightsError, match=r"missing.*blocks\.6\.proj\.weight.*unexpected"):
        build_i3d_r50(weights=str(wrong), sha256=None, seed=0)
    # seeded random weights
    r1 = build_i3d_r50(weights="none", sha256=None, seed=5)
    r2 = build_i3d_r50(weights="none", sha256=None, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(r1.features(clips[:1]), r2.features(clips[:1]), rtol=0, atol=0)
    assert r1.record == {"source": "none", "seed": 5}


@pytest.mark.parametrize("depth", [50, pytest.param(101, marks=pytest.mark.slow)])
def test_resnet_loads_torchvision_layout(depth: int, tmp_path: Path) -> None:
    from torchvision.models import resnet50, resnet101

    reference = randomise({50: resnet50, 101: resnet101}[depth](weights=None), seed=depth)
    path = tmp_path / f"resnet{depth}-0676ba61.pth"
    torch.save(without_batch_counts(reference.state_dict()), path)
    stream = build_resnet(depth=depth, in_channels=3, weights=str(path), sha256=None, seed=0)
    assert stream.record["sha256"] == file_sha256(path)
    assert "notes" not in stream.record
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        feats = stream.features(x)
        torch.testing.assert_close(stream.net(x), reference(x), rtol=1e-4, atol=1e-4)
        reference.fc = nn.Identity()
        torch.testing.assert_close(feats, reference(x), rtol=1e-4, atol=1e-4)
    assert feats.shape == (2, 2048)


def test_resnet_flow_stream_is_tsn_cross_modality(tmp_path: Path) -> None:
    from torchvision.models import resnet50

    reference = randomise(resnet50(weights=None), seed=2)
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(reference.state_dict(), path)
    stream = build_resnet(depth=50, in_channels=10, weights=str(path), sha256=None, seed=0)
    conv1 = stream.net.state_dict()["net.conv1.weight"]
    assert conv1.shape == (64, 10, 7, 7)
    expected = reference.conv1.weight.mean(dim=1)
    for c in range(10):
        torch.testing.assert_close(conv1[:, c], expected)
    assert stream.record["notes"] == [
        "conv1.weight: 3 -> 10 input channels (TSN cross-modality: mean over the RGB channels, "
        "replicated)"
    ]
    x = torch.randn(2, 10, 48, 48, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert stream.features(x).shape == (2, 2048)
    # a flow checkpoint that already has 10 inputs loads unchanged
    flow_state = stream.net.net.state_dict()
    flow_path = tmp_path / "flow.pth"
    torch.save(flow_state, flow_path)
    again = build_resnet(depth=50, in_channels=10, weights=str(flow_path), sha256=None, seed=0)
    assert "notes" not in again.record
    # the wrong depth names the keys that do not fit
    with pytest.raises(WeightsError, match=r"missing.*layer3\.6\.conv1\.weight"):
        build_resnet(depth=101, in_channels=3, weights=str(path), sha256=None, seed=0)


def test_i3d_stream_records_random_seed() -> None:
    stream = build_i3d(in_channels=2, weights="none", sha256=None, seed=9)
    assert stream.record == {"source": "none", "seed": 9}
    assert stream.dim == 1024
    clip = torch.randn(1, 2, 8, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert stream.features(clip).shape == (1, 1024)
