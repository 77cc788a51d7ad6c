"""KT-MGFN (wtal/models/kt_mgfn.py): every module on hand numbers, each ablation switch, a short
training on planted features, and the model's config file."""

from __future__ import annotations

import copy
import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from wtal.infer import InferSettings
from wtal.models import build_model
from wtal.models.base import PretrainInputs
from wtal.models.kt_mgfn import (
    ACTIVITYNET_ANCHORS,
    THUMOS14_ANCHORS,
    BoundaryRegressor,
    DilatedClassifier,
    KTMGFNInferOptions,
    KTMGFNOutput,
    TrimmedReps,
    decode_anchors,
    erase_mask,
    fuse_branches,
    gaussian_kernel,
    median_bandwidth,
    mmd2,
    outer_inner_contrast,
    select_anchors,
)
from wtal.train import TrainSettings

CONFIG = Path(__file__).resolve().parents[2] / "pipeline" / "config" / "models" / "kt_mgfn.yaml"


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one thread avoids OpenMP synchronisation costs on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(**kwargs: object) -> torch.nn.Module:
    """A small KT-MGFN (8-d input, 3 classes, 16 channels) with the given switches."""
    args = {"in_dim": 8, "num_classes": 3, "hidden": 16, "brm_hidden": 8, "dropout": 0.0,
            "anchor_scales": (1, 2, 4), **kwargs}
    return build_model("kt_mgfn", **args)


def logit(p: list[float]) -> torch.Tensor:
    q = torch.tensor(p, dtype=torch.float64)
    return torch.log(q / (1 - q)).float()


# ------------------------------------------------------------------------------ shapes


def test_shapes_of_every_module() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 20, 8)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 14:] = False
    stage = DilatedClassifier(in_dim=8, num_classes=3, hidden=16, kernel_size=3,
                              dilations=(1, 2, 3, 5), dropout=0.0)
    cas, logits, gap = stage(x, mask, pooling="mean", topk_ratio=0.125)
    assert cas.shape == (2, 4, 20, 3)
    assert logits.shape == (2, 4, 3)
    assert gap.shape == (2, 4, 16)
    # GAP → FC equals the FC applied per snippet, then averaged over the valid snippets
    torch.testing.assert_close(logits[1], cas[1, :, :14].mean(dim=1))
    assert fuse_branches(cas).shape == (2, 20, 3)
    brm = BoundaryRegressor(in_dim=8, num_scales=6)
    assert brm(x).shape == (2, 20, 6, 2)
    assert sum(isinstance(m, torch.nn.Conv1d) for m in brm.modules()) == 4  # 3 + output
    assert brm.body[0].out_channels == 128

    out = small(brm=True)(x, mask)
    assert isinstance(out, KTMGFNOutput)
    assert out.cas.shape == (2, 20, 3)
    assert out.video_logits.shape == (2, 3)
    assert out.stage_cas.shape == (2, 2, 20, 3)
    assert out.branch_logits.shape == (2, 2, 4, 3)
    assert out.embedding.shape == (2, 4 * 16)
    assert out.erased.shape == (2, 20)
    assert out.erased.dtype == torch.bool
    assert out.regression.shape == (2, 20, 3, 2)
    torch.testing.assert_close(out.cas, out.stage_cas.amax(dim=1))  # H_cas = max(H, H̄)

    bare = small(mdcm=False, ccm=False)(x, mask)
    assert bare.stage_cas.shape == (2, 1, 20, 3)
    assert bare.branch_logits.shape == (2, 1, 1, 3)
    assert bare.embedding.shape == (2, 16)
    assert bare.regression is None
    assert not bare.erased.any()


def test_fusion_is_h0_plus_mean_of_dilated() -> None:
    h = torch.arange(4 * 5 * 2, dtype=torch.float32).view(1, 4, 5, 2)
    torch.testing.assert_close(fuse_branches(h)[0], h[0, 0] + (h[0, 1] + h[0, 2] + h[0, 3]) / 3)
    torch.testing.assert_close(fuse_branches(h[:, :1])[0], h[0, 0])


@pytest.mark.parametrize(("branch", "dilation"), [(0, 1), (1, 2), (2, 3), (3, 5)])
def test_dilation_branch_receptive_field(branch: int, dilation: int) -> None:
    """Base net (two k=3 convs) reaches ±2 snippets, a branch with dilation d another ±d."""
    torch.manual_seed(0)
    net = small().eval()
    for p in net.parameters():  # positive weights and inputs: every ReLU passes gradient
        torch.nn.init.uniform_(p, 0.01, 0.1)
    x = torch.rand(1, 41, 8, requires_grad=True)
    mask = torch.ones(1, 41, dtype=torch.bool)
    cas, _, _ = net.stages[0](x, mask, pooling="mean", topk_ratio=0.125)
    cas[0, branch, 20].sum().backward()
    reach = torch.nonzero(x.grad[0].abs().sum(dim=1)).flatten()
    radius = 2 + dilation
    assert reach.tolist() == list(range(20 - radius, 20 + radius + 1))
    assert net.dilations == (1, 2, 3, 5)


# ------------------------------------------------------------------------------ CCM


def test_erase_mask_on_hand_example() -> None:
    cas = torch.zeros(1, 6, 2)
    cas[0, :, 0] = torch.tensor([0.0, 1.0, 5.0, 10.0, 9.0, 2.0])  # min-max: 0 .1 .5 1 .9 .2
    cas[0, :, 1] = torch.tensor([10.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    everything = torch.ones(1, 6, dtype=torch.bool)
    only_first = torch.tensor([[True, False]])
    got = erase_mask(cas, everything, only_first, threshold=0.8)
    assert got.tolist() == [[False, False, False, True, True, False]]
    both = erase_mask(cas, everything, torch.tensor([[True, True]]), threshold=0.8)
    assert both.tolist() == [[True, False, False, True, True, False]]
    assert erase_mask(cas, everything, only_first, threshold=0.95).tolist() == [
        [False, False, False, True, False, False]]
    # normalised over the valid snippets only; padding is never erased
    valid = torch.tensor([[True, True, True, False, True, True]])
    assert erase_mask(cas, valid, only_first, threshold=0.8).tolist() == [
        [False, False, False, False, True, False]]
    # a constant CAS has no discriminative region
    assert not erase_mask(torch.ones(1, 6, 2), everything, only_first, threshold=0.8).any()


def test_second_stage_sees_the_first_stage_regions_erased() -> None:
    torch.manual_seed(0)
    net = small().eval()
    x = torch.randn(2, 24, 8)
    x[0, 6:10] += 3.0
    mask = torch.ones(2, 24, dtype=torch.bool)
    mask[1, 18:] = False
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    with torch.no_grad():
        out = net(x, mask, labels=labels)
        expected = erase_mask(out.stage_cas[:, 0], mask, labels > 0.5, threshold=0.8)
        assert torch.equal(out.erased, expected)
        assert out.erased.any(dim=1).all()  # every video loses its discriminative snippets
        # stage 2 is stage-2's classifier on the input with exactly those snippets zeroed
        cas2, _, _ = net.stages[1](x.masked_fill(expected.unsqueeze(-1), 0.0), mask,
                                   pooling="mean", topk_ratio=0.125)
        torch.testing.assert_close(out.stage_cas[:, 1], fuse_branches(cas2))
        # what stage 2 sees does not depend on the erased snippets' features
        x_changed = x.clone()
        x_changed[out.erased] = 100.0
        cas2b, _, _ = net.stages[1](x_changed.masked_fill(expected.unsqueeze(-1), 0.0), mask,
                                    pooling="mean", topk_ratio=0.125)
        torch.testing.assert_close(cas2b, cas2)
        # without labels the predicted classes (at least the top one) are erased
        unlabeled = net(x, mask)
        assert unlabeled.erased.any(dim=1).all()


# ------------------------------------------------------------------------------ KTM


def test_mmd_is_zero_for_identical_samples_and_grows_with_a_shift() -> None:
    g = torch.Generator().manual_seed(0)
    t = torch.randn(12, 5, generator=g)
    assert mmd2(t, t.clone(), sigma=1.0).abs().item() < 1e-6
    assert mmd2(t, t.flip(0), sigma=None).abs().item() < 1e-6  # same set, other order
    values = [mmd2(t, t + shift, sigma=2.0).item() for shift in (0.25, 0.5, 1.0, 2.0)]
    assert values[0] > 0
    assert all(a < b for a, b in itertools.pairwise(values))
    assert mmd2(t, t + 1.0).item() > 0  # median bandwidth


def test_gaussian_kernel_equals_the_kernel_of_the_differences() -> None:
    """The kernel's matrix-product distances are the definition's ‖a_i − b_j‖², at the scale
    of trained embeddings (norms in the tens, on a shared offset, where the product's rounding
    makes a point's squared distance to itself nonzero) with σ from a fixed 1 (small data) to
    the median bandwidth, and on the diagonal of k(a, a)."""
    g = torch.Generator().manual_seed(3)
    small = torch.randn(9, 4, generator=g)
    torch.testing.assert_close(gaussian_kernel(small, small.flip(0), sigma=1.0),
                               torch.exp(-(small[:, None] - small.flip(0)[None]).pow(2).sum(-1)
                                         / 2.0), atol=1e-6, rtol=1e-5)
    a = torch.randn(40, 64, generator=g) * 6.0 + 30.0
    b = torch.cat([a[:5], torch.randn(7, 64, generator=g) * 6.0 + 30.0])
    for sigma in (15.0, median_bandwidth(a, b), torch.tensor(200.0)):
        direct = torch.exp(-(a[:, None] - b[None]).pow(2).sum(-1) / (2 * sigma**2))
        got = gaussian_kernel(a, b, sigma=sigma)
        assert got.shape == (40, 12)
        torch.testing.assert_close(got, direct, atol=1e-5, rtol=1e-4)
        self_k = gaussian_kernel(a, a, sigma=sigma)
        assert (self_k <= 1.0).all()
        assert torch.diagonal(self_k).sub(1.0).abs().max() < 1e-4
    # gradients flow to both arguments as through the definition
    x = a[:6].clone().requires_grad_(True)
    y = b[:4].clone().requires_grad_(True)
    gaussian_kernel(x, y, sigma=20.0).sum().backward()
    x2 = a[:6].clone().requires_grad_(True)
    y2 = b[:4].clone().requires_grad_(True)
    torch.exp(-(x2[:, None] - y2[None]).pow(2).sum(-1) / 800.0).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, atol=1e-5, rtol=1e-3)
    torch.testing.assert_close(y.grad, y2.grad, atol=1e-5, rtol=1e-3)


def test_mmd_matches_hand_computation() -> None:
    t = torch.tensor([[0.0], [1.0]])
    u = torch.tensor([[0.0]])
    e = math.exp(-0.5)  # k(0, 1) with σ = 1
    # Ktt = (1 + 1 + 2e) / 4, Kuu = 1, Ktu = (1 + e) / 2
    expected = (2 + 2 * e) / 4 + 1 - 2 * (1 + e) / 2
    assert mmd2(t, u, sigma=1.0).item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.5 * (1 - e))
    # two 2-d points each, σ = 2: k = exp(-d² / 8)
    a = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    b = torch.tensor([[0.0, 1.0], [2.0, 1.0]])
    k = lambda d2: math.exp(-d2 / 8)  # noqa: E731
    ktt = (2 + 2 * k(4)) / 4
    kuu = (2 + 2 * k(4)) / 4
    ktu = (k(1) + k(5) + k(5) + k(1)) / 4
    assert mmd2(a, b, sigma=2.0).item() == pytest.approx(ktt + kuu - 2 * ktu, abs=1e-6)


def test_knowledge_transfer_pairs_classes_and_its_switch() -> None:
    torch.manual_seed(0)
    net = small(kt_sigma=3.0)
    x = torch.randn(4, 16, 8)
    mask = torch.ones(4, 16, dtype=torch.bool)
    labels = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    trimmed = TrimmedReps(torch.randn(5, net.embedding_dim).abs(),
                          torch.tensor([[1.0, 0, 0]] * 3 + [[0, 1.0, 0]] * 2))
    out = net(x, mask)
    kt, n = net.knowledge_transfer(out.embedding, labels, trimmed)
    assert n == 2  # class 2 has no trimmed clip
    expected = (mmd2(trimmed.embeddings[:3], out.embedding[:2], sigma=3.0)
                + mmd2(trimmed.embeddings[3:], out.embedding[2:3], sigma=3.0)) / 2
    torch.testing.assert_close(kt, expected)

    total, parts = net.loss(out, labels, mask, epoch=0, reference=trimmed)
    assert parts["kt_on"] == 1.0
    assert parts["kt_classes"] == 2.0
    assert parts["total"] == pytest.approx(parts["cls"] + 10.0 * parts["kt"], rel=1e-5)
    total.backward()
    assert net.stages[0].base[0].weight.grad.abs().sum() > 0

    _, off = net.loss(net(x, mask), labels, mask, epoch=0)  # no reference: KTM off, no error
    assert off["kt_on"] == 0.0
    assert off["kt"] == 0.0
    assert off["total"] == pytest.approx(off["cls"], rel=1e-6)

    with pytest.raises(ValueError, match="64"):
        net.check_reference(TrimmedReps(torch.zeros(2, 7), torch.ones(2, 3)))
    assert small(ktm=False).loss(out, labels, mask, epoch=0, reference=trimmed)[1]["kt_on"] == 0.0


def trimmed_clips(n_per_class: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Short clips (6-10 snippets) of 3 classes, each adding its class direction everywhere."""
    rng = np.random.default_rng(seed)
    directions = np.random.default_rng(7).normal(size=(3, 8)) * 2.5  # as in :func:`planted`
    clips, labels = [], []
    for c in range(3):
        for _ in range(n_per_class):
            x = rng.normal(size=(int(rng.integers(6, 11)), 8)) + directions[c]
            clips.append(x.astype(np.float32))
            labels.append(np.eye(3, dtype=np.float32)[c])
    return clips, np.stack(labels)


def test_pretrain_trains_the_trimmed_branch_and_switches_the_ktm_on() -> None:
    torch.manual_seed(0)
    net = small(brm=True, trimmed_epochs=12, trimmed_lr=3e-3, trimmed_batch_size=4)
    untrained = copy.deepcopy(net.state_dict())
    x, labels, mask, _ = planted(6, 1)
    clips, clip_labels = trimmed_clips(4, 2)
    clip_labels[:4, 1] = 0.0  # class 0's clips: single label; an unlabelled clip is dropped
    clips.append(np.zeros((0, 8), np.float32))
    clip_labels = np.concatenate([clip_labels, np.eye(3, dtype=np.float32)[:1]])
    pretrained = net.pretrain(PretrainInputs(
        videos=[v.numpy() for v in x], labels=labels.numpy(), trimmed=(clips, clip_labels),
        settings=TrainSettings(), rng=np.random.default_rng(0), device=torch.device("cpu")))
    record = pretrained.log
    assert pretrained.used_trimmed
    assert record["ktm"] == "on"
    assert record["trimmed_clips"] == 12  # the empty clip is left out
    assert record["shared_classes"] == 3
    assert record["lr"] == 3e-3
    assert record["batch_size"] == 4
    assert len(record["loss"]) == 12
    assert record["loss"][-1] < 0.5 * record["loss"][0]  # the trimmed branch learned its clips
    # pretraining leaves the untrimmed model's own weights as they were
    assert all(torch.equal(untrained[k], v) for k, v in net.state_dict().items())
    reps = pretrained.reference
    assert reps is not None
    assert reps.embeddings.shape == (12, net.embedding_dim)
    # the trimmed branch's representations separate its classes: nearest class mean is right
    means = torch.stack([reps.embeddings[reps.labels[:, c] > 0].mean(0) for c in range(3)])
    nearest = torch.cdist(reps.embeddings, means).argmin(dim=1)
    assert (nearest == reps.labels.argmax(dim=1)).float().mean() > 0.9

    net.train()
    total, parts = net.loss(net(x, mask), labels, mask, epoch=0, reference=reps)
    assert parts["kt_on"] == 1.0
    assert parts["kt_classes"] == 3.0
    assert parts["kt"] > 0
    assert parts["total"] == pytest.approx(parts["cls"] + 10.0 * parts["kt"], rel=1e-5)
    total.backward()  # the MMD gradient reaches stage 1
    assert net.stages[0].branches[0][0].weight.grad.abs().sum() > 0

    # nothing of the trimmed branch is saved: strict round trip through the builder's kwargs
    state = net.state_dict()
    assert set(state) == set(small(brm=True).state_dict())
    again = small(brm=True, trimmed_epochs=12, trimmed_lr=3e-3, trimmed_batch_size=4)
    again.load_state_dict(state, strict=True)
    net.eval()
    again.eval()
    with torch.no_grad():
        a, b = net(x, mask), again(x, mask)
    torch.testing.assert_close(a.cas, b.cas)
    torch.testing.assert_close(a.regression, b.regression)


def test_pretrain_without_trimmed_clips_switches_the_ktm_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    torch.manual_seed(0)
    x, labels, mask, _ = planted(3, 1)
    feats = [v.numpy() for v in x]
    kwargs = {"settings": TrainSettings(), "rng": np.random.default_rng(0),
              "device": torch.device("cpu")}
    net = small()
    with caplog.at_level(logging.WARNING, logger="wtal.models.kt_mgfn"):
        pretrained = net.pretrain(PretrainInputs(
            videos=feats, labels=labels.numpy(), trimmed=None, **kwargs))
    record = pretrained.log
    _, parts = net.loss(net(x, mask), labels, mask, epoch=0, reference=pretrained.reference)
    assert record == {"ktm": "off: the dataset has no trimmed clips"}
    assert pretrained.transfer_missing == "the dataset has no trimmed clips"
    assert pretrained.reference is None
    assert parts["kt_on"] == 0.0
    assert parts["total"] == pytest.approx(parts["cls"], rel=1e-6)
    said = [r for r in caplog.records if r.levelno == logging.WARNING and "KTM" in r.message]
    assert len(said) == 1  # one clear warning, not an error
    assert "no trimmed clips" in said[0].message
    # an empty list of clips is the same as none
    empty = small().pretrain(PretrainInputs(
        videos=feats, labels=labels.numpy(), trimmed=([], np.zeros((0, 3), np.float32)),
        **kwargs)).log
    assert empty["ktm"].startswith("off")
    # clips of classes no training video has: nothing to transfer
    clips, clip_labels = trimmed_clips(2, 0)
    only_c2 = labels.clone().numpy()
    only_c2[:] = np.eye(3, dtype=np.float32)[2]
    keep = clip_labels[:, 2] == 0
    unshared = small().pretrain(PretrainInputs(
        videos=feats, labels=only_c2,
        trimmed=([c for c, k in zip(clips, keep, strict=True) if k], clip_labels[keep]),
        **kwargs))
    assert unshared.log["ktm"] == "off: no class of the trimmed clips has training videos"
    assert unshared.transfer_missing == "no class of the trimmed clips has training videos"
    # switched off in the arguments: said in the record, no warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="wtal.models.kt_mgfn"):
        off = small(ktm=False).pretrain(PretrainInputs(
            videos=feats, labels=labels.numpy(), trimmed=trimmed_clips(2, 0), **kwargs)).log
    assert off["ktm"].startswith("off: switched off")
    assert not caplog.records


# ------------------------------------------------------------------------------ BRM


def test_anchor_decoding_and_inflation_on_hand_numbers() -> None:
    reg = torch.zeros(3, 2, 2)  # T = 3 positions, M = 2 scales (1 and 4)
    reg[1, 0] = torch.tensor([0.5, math.log(2.0)])  # r_x = 1.5 + 1·0.5 = 2, r_w = 1·2 = 2
    reg[1, 1] = torch.tensor([-0.25, 0.0])  # r_x = 1.5 − 4·0.25 = 0.5, r_w = 4
    inner, outer = decode_anchors(reg, (1, 4), inflation=0.25)
    torch.testing.assert_close(inner[0, 0], torch.tensor([0.0, 1.0]))  # the bare anchor
    torch.testing.assert_close(inner[2, 1], torch.tensor([0.5, 4.5]))
    torch.testing.assert_close(inner[1, 0], torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(outer[1, 0], torch.tensor([0.5, 3.5]))  # ± γ·r_w = 0.5
    torch.testing.assert_close(inner[1, 1], torch.tensor([-1.5, 2.5]))
    torch.testing.assert_close(outer[1, 1], torch.tensor([-2.5, 3.5]))


def test_anchor_decoding_round_trips() -> None:
    g = torch.Generator().manual_seed(1)
    scales = torch.tensor([2.0, 8.0, 32.0])
    t_x = torch.arange(10.0).view(10, 1) + 0.5
    centre = t_x + torch.randn(10, 3, generator=g) * 3
    width = scales * torch.exp(torch.randn(10, 3, generator=g))
    reg = torch.stack([(centre - t_x) / scales, torch.log(width / scales)], dim=-1)
    inner, outer = decode_anchors(reg, scales, inflation=0.5)
    torch.testing.assert_close(inner.mean(dim=-1), centre)
    torch.testing.assert_close(inner[..., 1] - inner[..., 0], width)
    torch.testing.assert_close(outer[..., 1] - outer[..., 0], 2 * width)


def _oic(act: list[float], inner: list[float], outer: list[float]) -> float:
    a = torch.tensor([act])
    oic, _ = outer_inner_contrast(a, torch.tensor([[inner]]), torch.tensor([[outer]]),
                                  torch.tensor([len(act)]))
    return oic.item()


def test_oic_loss_equals_the_formula_on_hand_numbers() -> None:
    act = [0.2, 0.4, 0.9, 0.8, 0.6, 0.1]
    # inner snippets 1..3, outer snippets 0 and 4..5: (0.2 + 0.6 + 0.1)/3 − (0.4 + 0.9 + 0.8)/3
    assert _oic(act, [1, 4], [0, 6]) == pytest.approx(0.3 - 0.7)
    # fractional boundaries: piecewise-constant integral, inner [1.5, 3.5), outer [1, 4)
    inner = (0.5 * 0.4 + 0.9 + 0.5 * 0.8) / 2.0
    outer = (0.5 * 0.4 + 0.5 * 0.8) / 1.0
    assert _oic(act, [1.5, 3.5], [1.0, 4.0]) == pytest.approx(outer - inner)
    # past the video's end the last activation continues: outer [3, 4) ∪ [6, 7.5) of 0.8 and
    # 1.5 × 0.1; higher outside gives a positive loss
    assert _oic(act, [4, 6], [3, 7.5]) == pytest.approx((0.8 + 1.5 * 0.1) / 2.5 - 0.35)
    # the whole video: its bands are the edge activations (0.2 left, 0.1 right), not zeros
    assert _oic(act, [0, 6], [-2, 8]) == pytest.approx((2 * 0.2 + 2 * 0.1) / 4 - 0.5)
    # an inner segment past the ends is clipped to the video; its bands keep their length
    assert _oic(act, [-1, 7], [-3, 9]) == pytest.approx((3 * 0.2 + 3 * 0.1) / 6 - 0.5)
    assert _oic(act, [0, 4], [-1, 5]) == pytest.approx((0.2 + 0.6) / 2 - 2.3 / 4)


def test_oic_loss_matches_eq2_on_integer_segments() -> None:
    """Eq. (2) with inclusive snippet indices: [S, s−1] ∪ [e+1, E] against [s, e]."""
    rng = np.random.default_rng(0)
    act = rng.random(30)
    rows = []
    for _ in range(50):
        s, e = sorted(rng.choice(np.arange(1, 29), size=2, replace=False))  # inclusive s..e
        big_s, big_e = int(rng.integers(0, s)), int(rng.integers(e + 1, 30))
        a_in = act[s : e + 1].sum() / (e - s + 1)
        a_out = (act[big_s:s].sum() + act[e + 1 : big_e + 1].sum()) / (
            (s - big_s) + (big_e - e))
        rows.append((s, e + 1, big_s, big_e + 1, a_out - a_in))
    inner = torch.tensor([[[r[0], r[1]] for r in rows]], dtype=torch.float64)
    outer = torch.tensor([[[r[2], r[3]] for r in rows]], dtype=torch.float64)
    oic, p_act = outer_inner_contrast(torch.from_numpy(act)[None], inner, outer,
                                      torch.tensor([30]))
    np.testing.assert_allclose(oic[0].numpy(), [r[4] for r in rows], atol=1e-12)
    assert (p_act >= 0).all()


def test_oic_sign_and_gradients() -> None:
    act = torch.tensor([[0.0, 0.1, 0.9, 1.0, 0.9, 0.1, 0.0, 0.0]], requires_grad=True)
    inner = torch.tensor([[[2.0, 5.0]]], requires_grad=True)
    outer = torch.tensor([[[1.0, 6.0]]])
    oic, _ = outer_inner_contrast(act, inner, outer, torch.tensor([8]))
    assert oic.item() < 0  # higher inside than outside
    oic.sum().backward()
    # lower loss by raising the inside, lowering the outside
    assert (act.grad[0, 2:5] < 0).all()
    assert (act.grad[0, [1, 5]] > 0).all()
    assert act.grad[0, [0, 6, 7]].abs().sum() == 0
    assert torch.isfinite(inner.grad).all()
    assert inner.grad.abs().sum() > 0
    reverse = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]])
    assert outer_inner_contrast(reverse, inner.detach(), outer, torch.tensor([8]))[0].item() > 0


def test_anchor_filtering_rules() -> None:
    oic = torch.tensor([[[-0.5, -0.2], [-0.1, -0.4], [-0.9, -0.8], [-0.25, -0.1],
                         [-0.3, 0.0], [-0.6, -0.7]]])
    act = torch.tensor([[0.5, 0.05, 0.3, 0.6, 0.1, 0.8]])
    valid = torch.tensor([[True, True, True, True, True, False]])
    best, keep = select_anchors(oic, act, valid, min_activation=0.1, max_oic=-0.3)
    assert best.tolist() == [[0, 1, 0, 0, 0, 1]]  # lowest OIC per position
    # 1: activation < 0.1; 3: best OIC −0.25 > −0.3; 4: kept at the limits; 5: padding
    assert keep.tolist() == [[True, False, True, False, True, False]]


def _hand_output(act: list[float], *, video_logit: float = 0.0) -> KTMGFNOutput:
    """One video, one class, activations ``act``, BRM regression zero (bare anchors)."""
    t = len(act)
    cas = logit(act).view(1, t, 1)
    return KTMGFNOutput(
        cas=cas, video_logits=torch.tensor([[video_logit]]), stage_cas=cas.unsqueeze(1),
        branch_logits=torch.zeros(1, 1, 1, 1), embedding=torch.zeros(1, 4),
        erased=torch.zeros(1, t, dtype=torch.bool),
        regression=torch.zeros(1, t, 1, 2, requires_grad=True),
        mask=torch.ones(1, t, dtype=torch.bool),
    )


def hand_net(**kwargs: object) -> torch.nn.Module:
    """One class, anchors of length 1 inflated by γ = 1, activation σ(cas) (= ``act`` of
    :func:`_hand_output`): OIC(t) = mean(act[t−1], act[t+1]) − act[t]."""
    return build_model("kt_mgfn", in_dim=4, num_classes=1, hidden=4, brm=True,
                       anchor_scales=(1,), inflation=1.0, activation="sigmoid", **kwargs)


def test_activation_is_the_min_max_normalised_cas_by_default() -> None:
    net = small()
    cas = torch.zeros(2, 4, 3)
    cas[0, :, 0] = torch.tensor([-3.0, 1.0, 5.0, 40.0])  # logits; σ would saturate
    cas[1, :, 1] = torch.tensor([2.0, 4.0, 6.0, 100.0])  # last snippet is padding
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    act = net.activations(cas, mask)
    torch.testing.assert_close(act[0, :, 0], torch.tensor([0.0, 4 / 43, 8 / 43, 1.0]))
    torch.testing.assert_close(act[1, :3, 1], torch.tensor([0.0, 0.5, 1.0]))
    assert act[:, :, 2].abs().sum() == 0  # constant: no activation
    assert small(activation="sigmoid").activations(cas, mask)[0, 3, 0] == torch.sigmoid(
        torch.tensor(40.0))


def test_oic_objective_keeps_and_sums_the_filtered_anchors() -> None:
    net = hand_net()
    act = [0.05, 0.2, 0.95, 0.3, 0.05, 0.9]
    out = _hand_output(act)
    loss, n = net.oic_objective(out, torch.ones(1, 1), out.mask)
    # t=0, 4: activation < 0.1; t=1: +0.3, t=3: +0.2 removed; t=2: −0.7; t=5 (its right band
    # past the end takes the last activation 0.9): (0.05 + 0.9) / 2 − 0.9 = −0.425
    assert n == 2
    assert loss.item() == pytest.approx(-0.7 - 0.425, abs=1e-5)
    loss.backward()
    moved = out.regression.grad[0, :, 0].abs().sum(dim=-1)
    assert (moved[[2, 5]] > 0).all()
    assert moved[[0, 1, 3, 4]].sum() == 0
    mean_net = hand_net(oic_reduction="mean")
    assert mean_net.oic_objective(out, torch.ones(1, 1), out.mask)[0].item() == pytest.approx(
        (-0.7 - 0.425) / 2, abs=1e-5)
    # a video without labels contributes nothing
    assert net.oic_objective(out, torch.zeros(1, 1), out.mask)[1] == 0


def test_proposals_score_is_p_act_times_p_oic_times_p_class() -> None:
    out = _hand_output([0.05, 0.2, 0.95, 0.3, 0.05, 0.9], video_logit=1.0)
    p_class = 1 / (1 + math.exp(-1.0))
    net = hand_net()
    (props,) = net.proposals(out)
    # best first: 0.95 · 1.7 > 0.9 · 1.425
    torch.testing.assert_close(props.segments, torch.tensor([[2.0, 3.0], [5.0, 6.0]]))
    expected = [0.95 * (1 + 0.7) * p_class, 0.9 * (1 + 0.425) * p_class]
    np.testing.assert_allclose(props.scores.numpy(), expected, rtol=1e-5)
    assert props.classes.tolist() == [0, 0]
    only_act = KTMGFNInferOptions(score_oic=False, score_class=False)  # infer.model knobs
    np.testing.assert_allclose(net.proposals(out, options=only_act)[0].scores.numpy(),
                               [0.95, 0.9], rtol=1e-5)
    assert len(net.proposals(out, class_threshold=0.9)[0].scores) == 0
    with pytest.raises(ValueError, match="BRM"):
        small().proposals(small()(torch.randn(1, 5, 8)))


def test_the_oic_ceiling_at_test_replaces_the_models_own_for_inference_only() -> None:
    # anchor OICs of the hand output: t=1 +0.3, t=2 −0.7, t=3 +0.2, t=5 −0.425 (t=0, 4 under
    # the 0.1 activation floor); the model's ceiling is the paper's −0.3
    out = _hand_output([0.05, 0.2, 0.95, 0.3, 0.05, 0.9], video_logit=1.0)
    net = hand_net()
    assert net.max_oic == pytest.approx(-0.3)

    def starts(options: KTMGFNInferOptions) -> list[float]:
        return sorted(net.proposals(out, options=options)[0].segments[:, 0].tolist())

    assert starts(KTMGFNInferOptions()) == [2.0, 5.0]
    assert starts(KTMGFNInferOptions(max_oic=0.25)) == [2.0, 3.0, 5.0]
    assert starts(KTMGFNInferOptions(max_oic=-0.5)) == [2.0]
    assert net.max_oic == pytest.approx(-0.3)  # the model (and so training) is unchanged
    with pytest.raises(ValueError, match="max_oic"):
        KTMGFNInferOptions(max_oic=2.0)


def test_proposals_of_a_built_model_lie_inside_the_video() -> None:
    torch.manual_seed(0)
    net = small(brm=True, max_oic=1.0).eval()  # untrained CAS: keep every position's best
    torch.nn.init.normal_(net.brm.out.weight, std=0.5)
    x = torch.randn(2, 30, 8)
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 20:] = False
    props = net.proposals(net(x, mask), soft_nms_iou=0.5)
    assert len(props) == 2
    for p, n in zip(props, (30, 20), strict=True):
        assert len(p.scores) > 0
        assert (p.segments[:, 0] >= 0).all()
        assert (p.segments[:, 1] <= n).all()
        assert (p.segments[:, 1] > p.segments[:, 0]).all()
        assert (p.scores[:-1] >= p.scores[1:]).all()


def test_detect_gives_the_brm_proposals_with_their_eq6_scores() -> None:
    out = _hand_output([0.05, 0.2, 0.95, 0.3, 0.05, 0.9], video_logit=1.0)
    p_class = 1 / (1 + math.exp(-1.0))
    net = hand_net()
    got = net.candidates(out, settings=InferSettings(class_threshold=0.2))
    assert [(c, s, e) for c, s, e, _ in got] == [(0, 2.0, 3.0), (0, 5.0, 6.0)]
    np.testing.assert_allclose([d[3] for d in got],
                               [0.95 * 1.7 * p_class, 0.9 * 1.425 * p_class], rtol=1e-5)
    # no class reaches class_threshold: the top class is still localised
    assert len(net.candidates(out, settings=InferSettings(class_threshold=0.99))) == 2
    with pytest.raises(ValueError, match="one video"):
        small(brm=True).candidates(small(brm=True)(torch.randn(2, 5, 8)), settings=InferSettings())


def _two_class_output(act0: list[float], act1: list[float], video: list[float]) -> KTMGFNOutput:
    t = len(act0)
    cas = torch.stack([logit(act0), logit(act1)], dim=-1).unsqueeze(0)  # (1, T, 2)
    return KTMGFNOutput(
        cas=cas, video_logits=logit(video).view(1, 2), stage_cas=cas.unsqueeze(1),
        branch_logits=torch.zeros(1, 1, 1, 2), embedding=torch.zeros(1, 4),
        erased=torch.zeros(1, t, dtype=torch.bool), regression=None,
        mask=torch.ones(1, t, dtype=torch.bool),
    )


def test_detect_without_the_brm_thresholds_the_cas_and_scores_by_eq6() -> None:
    net = build_model("kt_mgfn", in_dim=4, num_classes=2, hidden=4, brm=False,
                      activation="sigmoid", inflation=1.0)
    act = [0.05, 0.2, 0.95, 0.9, 0.1, 0.05]
    out = _two_class_output(act, [0.5] * 6, [0.8, 0.1])
    got = net.candidates(out, settings=InferSettings(class_threshold=0.2,
                                                 cas_thresholds=(0.15, 0.5)))
    # every class is localised (§III.F), class_threshold is not read: class 1's constant 0.5 is
    # one run [0, 6) with OIC 0, scored 0.5 · 1 · p_class 0.1;
    # class 0's runs: ≥ 0.5 [2, 4), ≥ 0.15 [1, 4)
    # [2, 4): inner mean 0.925, outer band ±2 → snippets 0, 1, 4, 5 (mean 0.1)
    # [1, 4): inner mean 2.05 / 3, outer band ±3: [−2, 1) (the first activation 0.05
    # continued before the video) and [4, 7) (the last, 0.05, after it)
    in_a, out_a = 0.925, 0.1
    in_b, out_b = 2.05 / 3, (3 * 0.05 + 0.1 + 0.05 + 0.05) / 6
    expected = sorted([(0, 2.0, 4.0, in_a * (1 - (out_a - in_a)) * 0.8),
                       (0, 1.0, 4.0, in_b * (1 - (out_b - in_b)) * 0.8),
                       (1, 0.0, 6.0, 0.5 * 0.1)], key=lambda d: -d[3])
    assert [d[:3] for d in got] == [d[:3] for d in expected]
    np.testing.assert_allclose([d[3] for d in got], [d[3] for d in expected], rtol=1e-5)
    # each factor of Eq. (6) is switchable (table VIII): p_act alone
    only_act = build_model("kt_mgfn", in_dim=4, num_classes=2, hidden=4, activation="sigmoid",
                           inflation=1.0)
    np.testing.assert_allclose(
        sorted(d[3] for d in only_act.candidates(out, settings=InferSettings(
            cas_thresholds=(0.15, 0.5)), options=KTMGFNInferOptions(score_oic=False,
                                                                     score_class=False))),
        sorted([in_a, in_b, 0.5]), rtol=1e-5)
    # video scores far below class_threshold: every class is still localised (the old
    # behaviour localised the top class alone); a level no snippet reaches: nothing
    low = _two_class_output(act, [0.5] * 6, [0.1, 0.15])
    assert {d[0] for d in net.candidates(low, settings=InferSettings())} == {0, 1}
    assert net.candidates(out, settings=InferSettings(cas_thresholds=(0.99,))) == []


def test_detect_of_a_built_model_through_the_inference_settings() -> None:
    """Every candidate of a random model lies inside the video, in both modes."""
    torch.manual_seed(0)
    x = torch.randn(1, 30, 8)
    for net in (small(brm=True, max_oic=1.0).eval(), small().eval()):
        got = net.candidates(net(x), settings=InferSettings())
        assert got
        for c, s, e, score in got:
            assert 0 <= c < 3
            assert 0.0 <= s < e <= 30.0
            assert 0.0 <= score <= 2.0
        assert [d[3] for d in got] == sorted((d[3] for d in got), reverse=True)


def test_brm_joins_the_objective_at_its_start_epoch() -> None:
    torch.manual_seed(0)
    net = small(brm=True, brm_start_epoch=3, max_oic=1.0)  # untrained CAS: keep all
    torch.nn.init.normal_(net.brm.out.weight, std=0.1)
    x = torch.randn(2, 20, 8)
    mask = torch.ones(2, 20, dtype=torch.bool)
    labels = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    before, parts = net.loss(net(x, mask), labels, mask, epoch=2)
    assert parts["brm_on"] == 0.0
    assert parts["oic"] == 0.0
    before.backward()
    assert all(p.grad is None for p in net.brm.parameters())
    after, parts = net.loss(net(x, mask), labels, mask, epoch=3)
    assert parts["brm_on"] == 1.0
    assert parts["oic_anchors"] > 0
    assert parts["total"] == pytest.approx(parts["cls"] + 10.0 * parts["oic"], rel=1e-5)
    after.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.brm.parameters())


# ------------------------------------------------------------------------------ training

SWITCHES = {
    "baseline": {"mdcm": False, "ccm": False, "ktm": False, "brm": False},
    "+mdcm": {"mdcm": True, "ccm": False, "ktm": False, "brm": False},
    "+ccm": {"mdcm": True, "ccm": True, "ktm": False, "brm": False},
    "+ktm": {"mdcm": True, "ccm": True, "ktm": True, "brm": False},
    "+brm": {"mdcm": True, "ccm": True, "ktm": True, "brm": True},
    "brm_only": {"mdcm": False, "ccm": False, "ktm": False, "brm": True},
}


@pytest.mark.parametrize("switches", SWITCHES.values(), ids=SWITCHES.keys())
def test_each_switch_builds_and_trains_one_step(switches: dict[str, bool]) -> None:
    torch.manual_seed(0)
    net = small(brm_start_epoch=0, max_oic=1.0, **switches).train()  # untrained: keep all
    x = torch.randn(3, 18, 8)
    mask = torch.ones(3, 18, dtype=torch.bool)
    mask[2, 11:] = False
    labels = torch.tensor([[1.0, 0, 0], [0, 1.0, 1.0], [0, 0, 1.0]])
    trimmed = TrimmedReps(torch.rand(4, net.embedding_dim), torch.eye(3)[[0, 1, 2, 2]])
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    before = copy.deepcopy(net.state_dict())
    loss, parts = net.loss(net(x, mask), labels, mask, epoch=0, reference=trimmed)
    assert torch.isfinite(loss)
    assert parts["kt_on"] == float(switches["ktm"])
    assert parts["brm_on"] == float(switches["brm"])
    opt.zero_grad()
    loss.backward()
    opt.step()
    changed = [not torch.equal(before[k], v) for k, v in net.state_dict().items()]
    assert all(changed)  # every parameter took a step


def planted(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list]:
    """Videos of 32 snippets; each class adds its direction inside one run of snippets."""
    rng = np.random.default_rng(seed)
    directions = np.random.default_rng(7).normal(size=(3, 8)) * 2.5
    x = rng.normal(size=(n, 32, 8)).astype(np.float32)
    labels = np.zeros((n, 3), np.float32)
    runs = []
    for i in range(n):
        c = i % 3
        start, length = int(rng.integers(3, 18)), int(rng.integers(5, 11))
        x[i, start : start + length] += directions[c]
        labels[i, c] = 1.0
        runs.append((c, start, start + length))
    return torch.from_numpy(x), torch.from_numpy(labels), torch.ones(n, 32, dtype=torch.bool), runs


def test_short_training_on_planted_features_reduces_the_loss() -> None:
    torch.manual_seed(0)
    x, labels, mask, runs = planted(24, 0)
    # stage-wise (table VII): the BRM learns on the CAS alone. Jointly, at this constant lr
    # (the paper drops it 10× when the BRM joins), α · the summed OIC losses of the 24 videos
    # reshape the CAS and the classification loss climbs back towards chance.
    net = small(brm=True, brm_start_epoch=40, dropout=0.1, joint=False)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    history: list[dict[str, float]] = []
    for epoch in range(70):
        net.train()
        loss, parts = net.loss(net(x, mask), labels, mask, epoch=epoch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(parts)
    assert history[-1]["cls"] < 0.3 * history[0]["cls"]
    assert history[-1]["oic"] < history[40]["oic"] < 0  # the OIC loss goes down once on
    net.eval()
    with torch.no_grad():
        out = net(x, mask)
        cas, scores = net.probabilities(out)
    assert (scores.argmax(dim=1) == labels.argmax(dim=1)).all()
    inside = [cas[i, s:e, c].mean() > cas[i, :, c].mean() for i, (c, s, e) in enumerate(runs)]
    assert sum(inside) >= 0.9 * len(runs)  # the CAS is higher inside the planted runs
    props = net.proposals(out)
    hits = 0
    for p, (c, s, e) in zip(props, runs, strict=True):
        of_class = p.segments[p.classes == c]
        if len(of_class) == 0:  # no kept anchor for the video's class: a miss
            continue
        top = of_class[0]
        inter = max(0.0, min(top[1].item(), e) - max(top[0].item(), s))
        hits += inter > 0
    assert hits >= 0.8 * len(runs)  # the best proposal of the class overlaps its run


def test_generic_training_loop_runs_the_model(tmp_path: Path) -> None:
    """``wtal.train`` uses the model's loss and logs every part, KTM off included."""
    from extractors.grid import SnippetGrid
    from wtal.infer import infer
    from wtal.train import train
    from wtalio import read_json, save_npy, write_json

    x, labels, _, _ = planted(6, 3)
    classes = ["a", "b", "c"]
    paths, videos = [], {}
    for i in range(6):
        name = f"v{i}"
        save_npy(tmp_path / f"{name}.npy", x[i].numpy())
        grid = SnippetGrid(fps=25.0, n_frames=32 * 16)
        write_json(tmp_path / f"{name}.json", {"shape": [32, 8], "grid": grid.to_dict(),
                                               "extractor": "synthetic"})
        paths.append(tmp_path / f"{name}.npy")
        videos[name] = {"labels": [classes[int(labels[i].argmax())]], "split": "train",
                        "subset": "validation"}
    write_json(tmp_path / "index.json", {"dataset": "toy", "classes": classes, "videos": videos})
    args = {"hidden": 8, "brm": True, "brm_hidden": 8, "brm_start_epoch": 2,
            "anchor_scales": [1, 2, 4]}
    log = train(tmp_path / "index.json", paths, tmp_path / "m.pt", tmp_path / "t.json",
                model="kt_mgfn", model_args=args,
                settings=TrainSettings(epochs=3, batch_size=4, lr=1e-3), device="cpu")
    record = read_json(tmp_path / "t.json")
    parts = record["loss_parts"]
    assert parts["brm_on"] == [0.0, 0.0, 1.0]
    assert parts["kt_on"] == [0.0, 0.0, 0.0]  # no trimmed videos: recorded as off
    assert record["pretrain"] == {"ktm": "off: the dataset has no trimmed clips"}
    assert record["transfer_missing"] == "the dataset has no trimmed clips"
    assert len(log["loss"]) == 3
    sub = infer(tmp_path / "m.pt", paths[:2], tmp_path / "det.json", tmp_path / "cas",
                settings=InferSettings(), device="cpu")
    assert set(sub["results"]) == {"v0", "v1"}

    # with trimmed clips (index split "trimmed") the loop's pretrain hook switches the KTM on
    clips, clip_labels = trimmed_clips(2, 4)
    trimmed_paths = []
    for j, (clip, y) in enumerate(zip(clips, clip_labels, strict=True)):
        name = f"v_clip_{j}"
        save_npy(tmp_path / f"{name}.npy", clip)
        write_json(tmp_path / f"{name}.json", {
            "shape": list(clip.shape), "extractor": "synthetic",
            "grid": SnippetGrid(fps=25.0, n_frames=len(clip) * 16).to_dict()})
        videos[name] = {"labels": [classes[int(y.argmax())]], "split": "trimmed",
                        "subset": "ucf101"}
        trimmed_paths.append(tmp_path / f"{name}.npy")
    write_json(tmp_path / "index.json", {"dataset": "toy", "classes": classes, "videos": videos})
    train(tmp_path / "index.json", paths, tmp_path / "m2.pt", tmp_path / "t2.json",
          model="kt_mgfn", model_args={**args, "trimmed_epochs": 2},
          settings=TrainSettings(epochs=3, batch_size=4, lr=1e-3), device="cpu",
          trimmed_paths=trimmed_paths)
    record = read_json(tmp_path / "t2.json")
    assert record["pretrain"]["ktm"] == "on"
    assert record["pretrain"]["trimmed_clips"] == 6
    assert len(record["pretrain"]["loss"]) == 2
    assert record["loss_parts"]["kt_on"] == [1.0, 1.0, 1.0]
    assert all(v > 0 for v in record["loss_parts"]["kt"])
    sub = infer(tmp_path / "m2.pt", paths[:2], tmp_path / "det2.json", tmp_path / "cas2",
                settings=InferSettings(), device="cpu")  # strict load: nothing extra saved
    duration = 32 * 16 / 25.0
    for dets in sub["results"].values():  # the BRM's proposals through detect, in seconds
        assert dets
        assert all(0.0 <= d["segment"][0] < d["segment"][1] <= duration + 1e-6 for d in dets)


# ------------------------------------------------------------------------------ config


def test_config_holds_the_paper_settings_and_builds() -> None:
    cfg = yaml.safe_load(CONFIG.read_text())
    args, train_cfg, infer_cfg = cfg["args"], cfg["train"], cfg["infer"]
    assert cfg["name"] == "kt_mgfn"
    assert args["dilations"] == [1, 2, 3, 5]
    assert args["erase_threshold"] == 0.8
    assert args["alpha"] == 10.0
    assert args["beta"] == 10.0
    assert args["brm_hidden"] == 128
    assert args["brm_layers"] == 3
    assert args["min_activation"] == 0.1
    assert args["max_oic"] == -0.3
    assert all(args[k] for k in ("mdcm", "ccm", "ktm", "brm"))
    assert tuple(args["anchor_scales"]) == THUMOS14_ANCHORS
    assert train_cfg["batch_size"] == 16
    assert train_cfg["epochs"] == 100
    assert args["brm_start_epoch"] == 30
    assert train_cfg["weight_decay"] == pytest.approx(2 * 1e-4)  # λ = 1e-4 on ‖Ξ‖²
    assert infer_cfg["nms"] == "soft"
    assert infer_cfg["soft_nms_epsilon"] == 0.75
    assert infer_cfg["nms_iou"] == 0.5
    anet = cfg["datasets"]["activitynet13"]
    assert tuple(anet["args"]["anchor_scales"]) == ACTIVITYNET_ANCHORS
    assert anet["infer"]["nms_iou"] == 0.4
    assert "demo" in cfg["datasets"]
    train_names = {f.name for f in fields(TrainSettings)}
    infer_names = {f.name for f in fields(InferSettings)}
    for block in [{}, *cfg["datasets"].values()]:
        merged_args = {**args, **(block.get("args") or {})}
        assert set({**train_cfg, **(block.get("train") or {})}) <= train_names
        assert set({**infer_cfg, **(block.get("infer") or {})}) - {"model"} <= infer_names
        KTMGFNInferOptions(**infer_cfg["model"])
        net = build_model("kt_mgfn", in_dim=8, num_classes=2, **{**merged_args, "hidden": 8})
        assert net.brm is not None
        assert len(net.stages) == 2


def test_config_ablations_are_table_v_and_every_variant_trains() -> None:
    """Table V's rows in order, each adding one module; each variant builds and trains a step
    (with trimmed clips through ``pretrain`` where its KTM is on)."""
    cfg = yaml.safe_load(CONFIG.read_text())
    assert cfg["trimmed"] is True
    rows = cfg["ablations"]
    assert list(rows)[:5] == ["baseline", "+MDCM", "+CCM", "+KTM", "+BRM"]
    modules = ("mdcm", "ccm", "ktm", "brm")
    for i, (name, variant) in enumerate(list(rows.items())[:5]):
        assert [variant["args"][m] for m in modules] == [j < i for j in range(4)], name
    assert all(set(variant) <= {"args", "train", "infer"} for variant in rows.values())
    x, labels, mask, _ = planted(4, 5)
    clips = trimmed_clips(2, 0)
    for name, variant in rows.items():  # tables V-VII; table VIII's rows change inference only
        if "args" not in variant:
            continue
        torch.manual_seed(0)
        args = {**cfg["args"], **cfg["datasets"]["demo"].get("args", {}), **variant["args"],
                "hidden": 8, "brm_hidden": 8, "trimmed_epochs": 1, "brm_start_epoch": 0,
                "max_oic": 1.0}
        variant = {"args": args}
        net = build_model("kt_mgfn", in_dim=8, num_classes=3, **args)
        pretrained = net.pretrain(PretrainInputs(
            videos=[v.numpy() for v in x], labels=labels.numpy(), trimmed=clips,
            settings=TrainSettings(), rng=np.random.default_rng(0), device=torch.device("cpu")))
        assert (pretrained.log["ktm"] == "on") == variant["args"]["ktm"], name
        net.train()
        loss, parts = net.loss(net(x, mask), labels, mask, epoch=0,
                               reference=pretrained.reference)
        assert torch.isfinite(loss), name
        assert parts["kt_on"] == float(variant["args"]["ktm"]), name
        assert parts["brm_on"] == float(variant["args"]["brm"]), name
        loss.backward()
        net.eval()
        with torch.no_grad():
            assert net.candidates(net(x[:1], mask[:1]), settings=InferSettings()), name
