"""BN-Inception: Caffe key layout, strict loads in the Cadene and TSN layouts, 10-channel flow."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from extractors.backbones import build_bninception_flow
from extractors.bninception import BNInception, expand_first_conv, head_name_of
from extractors.i3d import init_random_
from extractors.weights import WeightsError, file_sha256

# Shapes copied from Cadene's pretrainedmodels/models/bninception.py (one or two per block).
CADENE_SHAPES = {
    "conv1_7x7_s2.weight": (64, 3, 7, 7),
    "conv1_7x7_s2.bias": (64,),
    "conv2_3x3.weight": (192, 64, 3, 3),
    "inception_3a_1x1.weight": (64, 192, 1, 1),
    "inception_3a_pool_proj.weight": (32, 192, 1, 1),
    "inception_3b_3x3.weight": (96, 64, 3, 3),
    "inception_3c_3x3.weight": (160, 128, 3, 3),
    "inception_3c_double_3x3_2.weight": (96, 96, 3, 3),
    "inception_4a_1x1.weight": (224, 576, 1, 1),
    "inception_4c_double_3x3_1.weight": (160, 128, 3, 3),
    "inception_4d_double_3x3_reduce.weight": (160, 608, 1, 1),
    "inception_4e_double_3x3_2_bn.running_var": (256,),
    "inception_5a_1x1.weight": (352, 1056, 1, 1),
    "inception_5b_pool_proj.weight": (128, 1024, 1, 1),
    "last_linear.weight": (1000, 1024),
    "last_linear.bias": (1000,),
}
REDUCTION_ONLY_ABSENT = ("inception_3c_1x1.weight", "inception_3c_pool_proj.weight",
                         "inception_4e_1x1.weight", "inception_4e_pool_proj.weight")


def seeded(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere, BN statistics included, so that a bad load shows."""
    init_random_(model, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith(("running_mean", "bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith("_bn.weight") or name.endswith("last_linear.weight"):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.05 + 1.0)
    return model.eval()


def public_checkpoint(model: BNInception, layout: str) -> dict[str, torch.Tensor]:
    """The model's tensors as the public file stores them (no num_batches_tracked).

    Cadene: ``last_linear``; TSN: ``fc`` and, as Caffe blobs, a leading 1 on every 1-D tensor.
    """
    out = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        if layout == "tsn":
            key = key.replace("last_linear.", "fc.")
            if value.ndim == 1:
                value = value[None]
        out[key] = value.clone()
    return out


def test_keys_and_shapes_are_cadenes() -> None:
    state = BNInception().state_dict()
    for key, shape in CADENE_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    for key in REDUCTION_ONLY_ABSENT:
        assert key not in state
    convs = [k for k in state if k.endswith(".weight") and state[k].ndim == 4]
    assert all(f"{k[:-7]}.bias" in state and f"{k[:-7]}_bn.running_mean" in state for k in convs)
    assert head_name_of(state) == "last_linear"
    assert "fc.weight" in BNInception(head="fc").state_dict()


def test_shapes_and_determinism() -> None:
    model = seeded(BNInception(), seed=1)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fmap = model.features(x)
        feats = model.extract_features(x)
        again = model.extract_features(x)
        scores = model(x)
    assert fmap.shape == (2, 1024, 7, 7)
    assert feats.shape == (2, 1024)
    assert scores.shape == (2, 1000)
    torch.testing.assert_close(feats, fmap.mean(dim=(2, 3)))
    torch.testing.assert_close(feats, again, rtol=0, atol=0)
    assert not torch.allclose(feats[0], feats[1])
    small = model.extract_features(torch.zeros(1, 3, 32, 32))  # any size works
    assert small.shape == (1, 1024)


@pytest.mark.parametrize("layout", ["cadene", "tsn"])
def test_strict_load_of_public_layouts(layout: str, tmp_path: Path) -> None:
    rgb = seeded(BNInception(), seed=3)
    path = tmp_path / "bn_inception.pth"
    torch.save(public_checkpoint(rgb, layout), path)
    stream = build_bninception_flow(in_channels=3, weights=str(path), sha256=None, seed=0)
    net = stream.net
    assert isinstance(net, BNInception)
    assert net.head == ("fc" if layout == "tsn" else "last_linear")
    assert stream.record["sha256"] == file_sha256(path)
    assert any(layout.upper() in n.upper() for n in stream.record["notes"])
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(net(x), rgb(x))


def test_flow_network_expands_first_conv_to_ten_channels(tmp_path: Path) -> None:
    rgb = seeded(BNInception(), seed=4)
    path = tmp_path / "bn_inception-9f5701afb96c8044.pth"
    torch.save(public_checkpoint(rgb, "tsn"), path)
    stream = build_bninception_flow(in_channels=10, weights=str(path), sha256=None, seed=0)
    w = stream.net.state_dict()["conv1_7x7_s2.weight"]
    rgb_w = rgb.state_dict()["conv1_7x7_s2.weight"]
    assert w.shape == (64, 10, 7, 7)
    for c in range(10):
        torch.testing.assert_close(w[:, c], rgb_w.mean(dim=1))
    assert any("3 -> 10" in n for n in stream.record["notes"])
    # every other tensor is the checkpoint's
    torch.testing.assert_close(stream.net.state_dict()["inception_5b_1x1.weight"],
                               rgb.state_dict()["inception_5b_1x1.weight"])
    # a constant flow stack (every channel equal) gives the RGB network's answer on 3 channels
    x = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        flow_out = stream.net.extract_features(x.expand(1, 10, 64, 64) / 10 * 3)
        rgb_out = rgb.extract_features(x.expand(1, 3, 64, 64))
    torch.testing.assert_close(flow_out, rgb_out, rtol=1e-4, atol=1e-4)


def test_expand_first_conv_leaves_a_ten_channel_kernel() -> None:
    state = {"conv1.weight": torch.randn(8, 10, 3, 3)}
    out, note = expand_first_conv(state, key="conv1.weight", in_channels=10)
    assert note is None
    assert out["conv1.weight"] is state["conv1.weight"]
    with pytest.raises(KeyError, match="conv1_7x7_s2"):
        expand_first_conv(state, key="conv1_7x7_s2.weight", in_channels=10)


def test_wrong_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    state = public_checkpoint(seeded(BNInception(), seed=5), "cadene")
    state["inception_9z_1x1.weight"] = torch.zeros(1)
    del state["inception_4a_3x3.bias"]
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"inception_4a_3x3\.bias.*inception_9z_1x1"):
        build_bninception_flow(in_channels=10, weights=str(path), sha256=None, seed=0)
    del state["last_linear.weight"]
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"Cadene.*TSN"):
        build_bninception_flow(in_channels=10, weights=str(path), sha256=None, seed=0)


def test_random_weights_are_seeded() -> None:
    a = build_bninception_flow(in_channels=10, weights="none", sha256=None, seed=7)
    b = build_bninception_flow(in_channels=10, weights="none", sha256=None, seed=7)
    c = build_bninception_flow(in_channels=10, weights="none", sha256=None, seed=8)
    assert a.record == {"source": "none", "seed": 7}
    for key, value in a.net.state_dict().items():
        torch.testing.assert_close(value, b.net.state_dict()[key], rtol=0, atol=0)
    assert not torch.equal(a.net.state_dict()["fc.weight"], c.net.state_dict()["fc.weight"])


def test_sizes_where_caffe_branches_disagree_are_a_clear_error() -> None:
    model = BNInception().eval()
    with torch.no_grad():
        assert model.extract_features(torch.zeros(1, 3, 96, 128)).shape == (1, 1024)
        with pytest.raises(ValueError, match="multiple of 32"):
            model.extract_features(torch.zeros(1, 3, 112, 112))
