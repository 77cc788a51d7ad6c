"""Tests for extractors.i3d: piergiaj-compatible keys and shapes, SAME padding, features."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from extractors.i3d import InceptionI3d, init_random_

# The Inception-I3D architecture, written out here independently of the module under test:
# block -> (input channels, (b0, b1a, b1b, b2a, b2b, b3b)).
MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}
BRANCHES = ("b0", "b1a", "b1b", "b2a", "b2b", "b3b")
STEM = ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3")
BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def expected_keys() -> set[str]:
    units = list(STEM) + [f"{m}.{b}" for m in MIXED for b in BRANCHES]
    keys = {f"{u}.conv3d.weight" for u in units}
    keys |= {f"{u}.bn.{s}" for u in units for s in BN_SUFFIXES}
    return keys | {"logits.conv3d.weight", "logits.conv3d.bias"}


def expected_param_count(in_channels: int, num_classes: int) -> int:
    """Parameters of Inception-I3D from its widths: conv weights + BN affine + logits."""

    def unit(cin: int, cout: int, k: int) -> int:
        return k**3 * cin * cout + 2 * cout  # conv without bias, BN weight and bias

    total = unit(in_channels, 64, 7) + unit(64, 64, 1) + unit(64, 192, 3)
    for cin, (w0, w1a, w1b, w2a, w2b, w3b) in MIXED.values():
        total += unit(cin, w0, 1) + unit(cin, w1a, 1) + unit(w1a, w1b, 3)
        total += unit(cin, w2a, 1) + unit(w2a, w2b, 3) + unit(cin, w3b, 1)
    return total + 1024 * num_classes + num_classes


def structured_clip(channels: int, frames: int = 8, size: int = 64) -> torch.Tensor:
    """A smooth moving pattern in [-1, 1]: # (1, C, T, H, W)."""
    t = torch.arange(frames, dtype=torch.float32)[:, None, None]
    y = torch.linspace(0, 2 * math.pi, size)[None, :, None]
    x = torch.linspace(0, 2 * math.pi, size)[None, None, :]
    planes = [torch.sin(x + 0.3 * t + c) * torch.cos(y - 0.2 * c) for c in range(channels)]
    return torch.stack(planes)[None]


def noise_clip(channels: int, seed: int, frames: int = 8, size: int = 64) -> torch.Tensor:
    """Uniform noise in [-1, 1]: # (1, C, T, H, W)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, channels, frames, size, size, generator=gen) * 2 - 1


@pytest.fixture(scope="module")
def rgb_model() -> InceptionI3d:
    model = InceptionI3d()
    init_random_(model, seed=0)
    return model.eval()


@pytest.fixture(scope="module")
def flow_model() -> InceptionI3d:
    model = InceptionI3d(in_channels=2)
    init_random_(model, seed=0)
    return model.eval()


@pytest.mark.parametrize("in_channels", [3, 2])
def test_state_dict_keys_are_piergiajs(in_channels: int) -> None:
    keys = set(InceptionI3d(in_channels=in_channels).state_dict())
    expected = expected_keys()
    assert keys == expected, (sorted(keys - expected)[:10], sorted(expected - keys)[:10])
    assert len(keys) == 57 * 6 + 2


@pytest.mark.parametrize("in_channels", [3, 2])
def test_key_shapes(in_channels: int) -> None:
    sd = InceptionI3d(in_channels=in_channels).state_dict()
    assert sd["Conv3d_1a_7x7.conv3d.weight"].shape == (64, in_channels, 7, 7, 7)
    assert sd["Conv3d_1a_7x7.bn.running_var"].shape == (64,)
    assert sd["Conv3d_2b_1x1.conv3d.weight"].shape == (64, 64, 1, 1, 1)
    assert sd["Conv3d_2c_3x3.conv3d.weight"].shape == (192, 64, 3, 3, 3)
    assert sd["Mixed_3b.b1b.conv3d.weight"].shape == (128, 96, 3, 3, 3)
    assert sd["Mixed_4f.b3b.conv3d.weight"].shape == (128, 528, 1, 1, 1)
    assert sd["Mixed_5c.b0.conv3d.weight"].shape == (384, 832, 1, 1, 1)
    assert sd["Mixed_5c.b2b.conv3d.weight"].shape == (128, 48, 3, 3, 3)
    assert sd["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert sd["logits.conv3d.bias"].shape == (400,)
    for mixed, (cin, widths) in MIXED.items():
        for branch, width in zip(BRANCHES, widths, strict=True):
            weight = sd[f"{mixed}.{branch}.conv3d.weight"]
            k = 3 if branch in ("b1b", "b2b") else 1
            assert weight.shape[0] == width
            assert weight.shape[2:] == (k, k, k)
        assert sd[f"{mixed}.b0.conv3d.weight"].shape[1] == cin


@pytest.mark.parametrize(("in_channels", "num_classes"), [(3, 400), (2, 400), (3, 157)])
def test_parameter_count(in_channels: int, num_classes: int) -> None:
    model = InceptionI3d(in_channels=in_channels, num_classes=num_classes)
    count = sum(p.numel() for p in model.parameters())
    assert count == expected_param_count(in_channels, num_classes)
    if (in_channels, num_classes) == (3, 400):
        assert count == 12_697_264


def test_layer_details() -> None:
    model = InceptionI3d(dropout_keep_prob=0.8)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm3d)]
    assert len(bns) == 57
    assert all(bn.eps == 0.001 and bn.momentum == 0.01 for bn in bns)
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv3d)}
    assert [n for n, m in convs.items() if m.bias is not None] == ["logits.conv3d"]
    assert convs["Conv3d_1a_7x7.conv3d"].stride == (2, 2, 2)
    # piergiaj's quirk: the keep probability is used as nn.Dropout's drop probability.
    assert isinstance(model.dropout, nn.Dropout)
    assert model.dropout.p == 0.8


@pytest.mark.parametrize(
    ("shape", "fmap_thw"),
    [
        ((8, 64, 64), (1, 2, 2)),
        ((9, 50, 70), (2, 2, 3)),  # odd sizes: every stage rounds up (SAME padding)
        ((24, 64, 33), (3, 2, 2)),
    ],
)
def test_same_padding_output_sizes(
    rgb_model: InceptionI3d, shape: tuple[int, int, int], fmap_thw: tuple[int, int, int]
) -> None:
    x = noise_clip(3, seed=1, frames=shape[0], size=shape[1])
    x = torch.nn.functional.interpolate(x, size=shape)  # (1, 3, T, H, W)
    with torch.no_grad():
        fmap = rgb_model.forward_features(x)
        logits = rgb_model(x)
    assert fmap.shape == (1, 1024, *fmap_thw)
    assert logits.shape == (1, 400, max(fmap_thw[0] - 1, 1))


def test_wrong_input_channels_raise(flow_model: InceptionI3d) -> None:
    with pytest.raises(ValueError, match=r"\(B, 2, T, H, W\)"):
        flow_model.extract_features(torch.zeros(1, 3, 8, 64, 64))


def test_features_match_piergiaj_pooling_at_224(rgb_model: InceptionI3d) -> None:
    x = noise_clip(3, seed=5, frames=16, size=224)  # (1, 3, 16, 224, 224)
    captured: list[torch.Tensor] = []
    hook = rgb_model.get_submodule("Mixed_5c").register_forward_hook(
        lambda _m, _i, out: captured.append(out)
    )
    try:
        with torch.no_grad():
            features = rgb_model.extract_features(x)
    finally:
        hook.remove()
    (fmap,) = captured
    assert fmap.shape == (1, 1024, 2, 7, 7)
    # piergiaj: avg_pool = AvgPool3d([2, 7, 7], stride=(1, 1, 1)), then logits, then squeeze.
    pooled = nn.AvgPool3d(kernel_size=[2, 7, 7], stride=(1, 1, 1))(fmap)  # (1, 1024, 1, 1, 1)
    assert features.shape == (1, 1024)
    torch.testing.assert_close(features, pooled.flatten(1), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        logits = rgb_model.classify(fmap)  # the head of forward()
        reference_logits = rgb_model.logits(pooled).squeeze(3).squeeze(3)  # (1, 400, 1)
    assert logits.shape == (1, 400, 1)
    torch.testing.assert_close(logits, reference_logits, rtol=1e-5, atol=1e-5)


def test_forward_is_trunk_then_head(rgb_model: InceptionI3d) -> None:
    x = noise_clip(3, seed=6, frames=24, size=64)  # T' = 3: two temporal windows
    with torch.no_grad():
        fmap = rgb_model.forward_features(x)  # (1, 1024, 3, 2, 2)
        logits = rgb_model(x)
        features = rgb_model.extract_features(x)
        weight = rgb_model.logits.conv3d.weight.flatten(1)  # (400, 1024)
        bias = rgb_model.logits.conv3d.bias
    assert torch.equal(logits, rgb_model.classify(fmap))
    torch.testing.assert_close(features, fmap.mean(dim=(2, 3, 4)))
    windows = [fmap[:, :, t : t + 2].mean(dim=(2, 3, 4)) for t in range(2)]  # each (1, 1024)
    expected = torch.stack([w @ weight.T + bias for w in windows], dim=2)  # (1, 400, 2)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)


def test_eval_outputs_do_not_depend_on_dropout_and_batch(rgb_model: InceptionI3d) -> None:
    other = InceptionI3d(dropout_keep_prob=0.9)
    other.load_state_dict(rgb_model.state_dict())
    other.eval()
    x = torch.cat([structured_clip(3), noise_clip(3, seed=2)])  # (2, 3, 8, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(other(x), rgb_model(x))
        batch = rgb_model.extract_features(x)
        single = rgb_model.extract_features(x[1:])
    torch.testing.assert_close(batch[1:], single, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("channels", [3, 2])
def test_random_features_are_informative(
    rgb_model: InceptionI3d, flow_model: InceptionI3d, channels: int
) -> None:
    model = rgb_model if channels == 3 else flow_model
    x = torch.cat([structured_clip(channels), noise_clip(channels, 3), noise_clip(channels, 4)])
    with torch.no_grad():
        feats = model.extract_features(x)  # (3, 1024)
    assert feats.shape == (3, 1024)
    assert torch.isfinite(feats).all()
    for row in feats:
        assert 1e-3 < row.std().item() < 1e3
        assert (row > 0).float().mean().item() > 0.2  # not a dead ReLU output

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a - b).norm() / a.norm()).item()

    assert rel(feats[0], feats[1]) > 0.1  # pattern vs noise: very different
    assert rel(feats[1], feats[2]) > 0.01  # two noise clips: still distinguishable
    # Moving the pattern in time changes the features too.
    shifted = torch.roll(structured_clip(channels), shifts=16, dims=4)
    with torch.no_grad():
        moved = model.extract_features(torch.flip(shifted, dims=[2]))
    assert rel(feats[0], moved[0]) > 0.01


def test_init_random_weights_statistics() -> None:
    model = InceptionI3d()
    for module in model.modules():  # disturb everything init_random_ must reset
        if isinstance(module, nn.BatchNorm3d):
            module.running_mean.fill_(3.0)
            module.running_var.fill_(5.0)
            module.num_batches_tracked.fill_(7)
            nn.init.constant_(module.weight, 2.0)
            nn.init.constant_(module.bias, 1.0)
    nn.init.constant_(model.logits.conv3d.bias, 1.0)
    init_random_(model, seed=11)
    sd = model.state_dict()
    for key, value in sd.items():
        if key.endswith(("bn.weight", "bn.running_var")):
            assert torch.equal(value, torch.ones_like(value)), key
        elif key.endswith(("bn.bias", "bn.running_mean", "bn.num_batches_tracked")):
            assert torch.equal(value, torch.zeros_like(value)), key
    assert torch.equal(sd["logits.conv3d.bias"], torch.zeros(400))
    for key, fan_in in [("Mixed_5c.b0.conv3d.weight", 832), ("Conv3d_2c_3x3.conv3d.weight", 1728)]:
        weight = sd[key]
        assert abs(weight.mean().item()) < 0.05 * math.sqrt(2 / fan_in)
        assert weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.03)


def test_init_random_is_seeded_and_leaves_global_rng_alone() -> None:
    before = torch.random.get_rng_state()
    a, b, c = InceptionI3d(in_channels=2), InceptionI3d(in_channels=2), InceptionI3d(in_channels=2)
    state = torch.random.get_rng_state()  # construction itself uses the global RNG
    init_random_(a, seed=7)
    init_random_(b, seed=7)
    init_random_(c, seed=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert not torch.equal(before, state)  # the check above could have failed
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["Conv3d_1a_7x7.conv3d.weight"], sc["Conv3d_1a_7x7.conv3d.weight"])
    assert not torch.equal(sa["logits.conv3d.weight"], sc["logits.conv3d.weight"])
    # A float64 model (the copy-from-CPU path) gets the same numbers.
    d = InceptionI3d(in_channels=2).double()
    init_random_(d, seed=7)
    sd = d.state_dict()
    assert all(torch.equal(sa[k].double(), sd[k].double()) for k in sa)
