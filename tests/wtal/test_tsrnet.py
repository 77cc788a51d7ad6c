"""TSRNet (wtal/models/tsrnet.py): attention, the regularisers of Eq. 3-5 against their closed
form, the knowledge transfer's MMD terms (Eq. 6-8), detection (Eq. 10-11) on hand numbers, the
pretrain hook with and without trimmed clips, every ablation switch, and the model's config."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from wtal.infer import InferSettings
from wtal.models import build_model, builder_parameters
from wtal.models.base import PretrainInputs
from wtal.models.tsrnet import (
    TSRNetInferOptions,
    TSRNetOutput,
    class_mmd,
    masked_softmax,
    normalise_attention,
    smoothness,
    sparsity,
)
from wtal.train import TrainSettings

CONFIG = Path(__file__).resolve().parents[2] / "pipeline" / "config" / "models" / "tsrnet.yaml"
STREAMS = {"rgb": [0, 4], "flow": [4, 8]}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one thread avoids OpenMP synchronisation costs on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(**kwargs: object) -> torch.nn.Module:
    """A small two-stream TSRNet (4 + 4 input columns, 3 classes) with the given switches."""
    args = {"in_dim": 8, "num_classes": 3, "streams": STREAMS, "hops": 2,
            "attention_hidden": 6, "fc_hidden": 5, "dropout": 0.0, **kwargs}
    return build_model("tsrnet", **args)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two videos (7 and 5 valid snippets) with labels {0} and {1, 2}."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, 8, generator=g)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5:] = False
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    return x, mask, labels


@pytest.fixture
def trimmed_data() -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray], np.ndarray]:
    """Untrimmed videos and trimmed clips of 3 classes (8-d features)."""
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((int(rng.integers(6, 10)), 8)).astype(np.float32)
             for _ in range(6)]
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    clips = [rng.standard_normal((int(rng.integers(3, 6)), 8)).astype(np.float32)
             for _ in range(6)]
    clip_labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    return feats, labels, clips, clip_labels


# --------------------------------------------------------------------------------------------
# Attention and regularisers (Eq. 1, 3-5)
# --------------------------------------------------------------------------------------------


def test_attention_sums_to_one_over_valid_snippets_per_hop(batch) -> None:
    x, mask, _ = batch
    net = small(hops=3, attention_activation="softmax")  # Eq. 1 as written
    out = net(x, mask)
    assert out.attention.shape == (2, 2, 3, 7)  # (B, S, H, T)
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(2, 2, 3))
    assert torch.all(out.attention[1, :, :, 5:] == 0)  # padding gets no weight
    assert torch.all(out.attention[:, :, :, :5] > 0)
    # the hops differ (independent rows of w2)
    assert not torch.allclose(out.attention[0, 0, 0], out.attention[0, 0, 1])


def test_pooled_representation_is_x_times_mean_attention(batch) -> None:
    """m = X āᵀ / n (Eq. 1, sigmoid weights; n valid snippets) is the FC1 input of each
    stream."""
    x, mask, _ = batch
    net = small()
    out = net(x, mask)
    n = mask.sum(dim=1, keepdim=True).float()  # (B, 1)
    a = out.attention.mean(dim=2) / n.unsqueeze(1)  # (B, S, T)
    torch.testing.assert_close(out.pooled[0], torch.einsum("bt,btd->bd", a[:, 0], x[..., :4]))
    torch.testing.assert_close(out.pooled[1], torch.einsum("bt,btd->bd", a[:, 1], x[..., 4:]))


def test_video_logit_is_attention_weighted_frame_logit(batch) -> None:
    """With linear FC layers (and no dropout), the video logit is Σ_i p_i v_cᵀ x_i + b_c (p the
    pooling weights, ā / n or softmax ā): Eq. (10)'s per-frame score is the classifier the video
    score comes from."""
    x, mask, _ = batch
    for activation in ("sigmoid", "softmax"):
        net = small(attention_activation=activation).eval()
        out = net(x, mask)
        a = out.attention.mean(dim=2)  # (B, S, T)
        if activation == "sigmoid":
            a = a / mask.sum(dim=1).float()[:, None, None]
        bias = torch.stack([n.frame_logits(torch.zeros(1, 1, 4))[0, 0]
                            for n in net.nets.values()])  # (S, C)
        expected = torch.einsum("bst,bstc->bsc", a, out.frame_logits - bias[None, :, None])
        torch.testing.assert_close(out.stream_logits, expected + bias[None])


def test_frame_logits_apply_the_classifier_to_each_snippet(batch) -> None:
    x, mask, _ = batch
    for activation in ("none", "relu"):
        net = small(fc_activation=activation).eval()
        out = net(x, mask)
        stream = net.nets["flow"]
        torch.testing.assert_close(out.frame_logits[:, 1],
                                   stream.fc2(stream.act(stream.fc1(x[..., 4:]))))
    with pytest.raises(ValueError, match="fc_activation"):
        small(fc_activation="gelu")


def test_padding_does_not_change_the_valid_part(batch) -> None:
    x, _, _ = batch
    net = small().eval()
    alone = net(x[:1, :5])
    padded = torch.cat([x[:1, :5], 50.0 * torch.randn(1, 4, 8)], dim=1)
    both = net(padded, torch.tensor([[True] * 5 + [False] * 4]))
    torch.testing.assert_close(both.video_logits, alone.video_logits)
    torch.testing.assert_close(net.probabilities(both)[0][:, :5], net.probabilities(alone)[0])
    assert net.probabilities(both)[0][:, 5:].abs().max() == 0


def test_smoothness_equals_closed_form_of_eq4() -> None:
    n = 9
    a = torch.softmax(torch.randn(n, dtype=torch.float64), dim=0)
    p1 = np.zeros((n, n))
    p1[0, 0] = 1.0
    p2 = np.zeros((n, n))
    p2[-1, -1] = 1.0
    p3 = np.diag([1.0] * (n - 1) + [0.0])
    p4 = np.eye(n, k=-1)  # ones at (i + 1, i)
    v = a.numpy()
    closed = 2 * v @ v - v @ p1 @ v - v @ p2 @ v - 2 * v @ p3 @ p4.T @ v
    direct = sum((v[i] - v[i + 1]) ** 2 for i in range(n - 1))
    got = smoothness(a.view(1, 1, n), torch.ones(1, n, dtype=torch.bool))
    assert got.shape == (1,)
    assert got.item() == pytest.approx(closed, rel=1e-12)
    assert got.item() == pytest.approx(direct, rel=1e-12)


def test_smoothness_ignores_padding_and_sums_hops() -> None:
    a = torch.tensor([[[0.5, 0.3, 0.2, 0.0], [0.1, 0.1, 0.8, 0.0]]])  # (1, 2, 4)
    mask = torch.tensor([[True, True, True, False]])
    expected = (0.2**2 + 0.1**2) + (0.0**2 + 0.7**2)
    assert smoothness(a, mask).item() == pytest.approx(expected, rel=1e-6)
    constant = torch.full((1, 1, 4), 0.25)
    assert smoothness(constant, torch.ones(1, 4, dtype=torch.bool)).item() == 0.0


def test_sparsity_is_l1_norm_and_constant_under_softmax(batch) -> None:
    a = torch.tensor([[[0.5, -0.3, 0.2]]])
    assert sparsity(a, torch.ones(1, 3, dtype=torch.bool)).item() == pytest.approx(1.0)
    assert sparsity(a, torch.tensor([[True, True, False]])).item() == pytest.approx(0.8)
    x, mask, _ = batch
    out = small(hops=3, attention_activation="softmax")(x, mask)
    # softmax weights: ‖a‖₁ = hops for every video, whatever the input
    torch.testing.assert_close(sparsity(out.attention[:, 0], mask), torch.full((2,), 3.0))


def test_masked_softmax_of_empty_video_is_zero() -> None:
    a = masked_softmax(torch.randn(2, 1, 3), torch.tensor([[True, True, False], [False] * 3]))
    assert torch.all(a[1] == 0)
    assert a[0, 0, :2].sum().item() == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# Knowledge transfer (Eq. 6-8)
# --------------------------------------------------------------------------------------------


def test_class_mmd_zero_for_identical_and_grows_with_shift() -> None:
    g = torch.Generator().manual_seed(1)
    u = torch.randn(6, 4, generator=g, dtype=torch.float64)
    lab = torch.eye(2, dtype=torch.float64)[[0, 0, 0, 1, 1, 1]]
    same, n = class_mmd(u, lab, u, lab, sigma=1.0)
    assert n == 2
    assert same.item() == pytest.approx(0.0, abs=1e-12)
    values = [class_mmd(u + shift, lab, u, lab, sigma=1.0)[0].item() for shift in (0.3, 1.0, 3.0)]
    assert 0.0 < values[0] < values[1] < values[2]
    # classes absent on one side are not compared
    _, n_one = class_mmd(u[:3], lab[:3], u, lab, sigma=1.0)
    assert n_one == 1
    none, n_none = class_mmd(u[:3], lab[:3], u[3:], lab[3:], sigma=1.0)
    assert n_none == 0
    assert none.item() == 0.0


def test_transfer_loss_zero_for_identical_reps_and_grows_with_shift(batch) -> None:
    x, mask, labels = batch
    net = small(kt_sigma=1.0).eval()
    out = net(x, mask)
    reps = [m.detach().clone() for m in out.pooled]
    fc1, fc2, n_cls = net.transfer_loss(out, labels, net.trimmed_reference(reps, labels))
    assert n_cls == 3
    for term in fc1 + fc2:
        assert term.item() == pytest.approx(0.0, abs=1e-6)
    totals = []
    for shift in (0.5, 2.0):
        ref = net.trimmed_reference([r + shift for r in reps], labels)
        fc1, fc2, _ = net.transfer_loss(out, labels, ref)
        assert all(t.item() > 1e-4 for t in fc1 + fc2)
        totals.append(sum(t.item() for t in fc1 + fc2))
    assert totals[0] < totals[1]


def test_transfer_loss_trains_fc1_and_attention(batch) -> None:
    """L_FC2 compares FC1 of both sides with this network's FC1: its gradient reaches FC1; L_FC1
    reaches the attention through m."""
    x, mask, labels = batch
    net = small(kt_sigma=1.0)
    out = net(x, mask)
    ref = net.trimmed_reference([m.detach() + 1.0 for m in out.pooled], labels)
    fc1, fc2, _ = net.transfer_loss(out, labels, ref)
    fc2[0].backward(retain_graph=True)
    assert net.nets["rgb"].fc1.weight.grad.abs().sum() > 0
    assert net.nets["rgb"].fc2.weight.grad is None
    fc1[1].backward()
    assert net.nets["flow"].w1.weight.grad.abs().sum() > 0


def test_trimmed_reference_checks_shapes() -> None:
    net = small()
    with pytest.raises(ValueError, match="trimmed representations"):
        net.trimmed_reference([torch.zeros(2, 4), torch.zeros(2, 5)], torch.zeros(2, 3))
    with pytest.raises(ValueError, match="one tensor per stream"):
        net.trimmed_reference([torch.zeros(2, 4)], torch.zeros(2, 3))


def test_pretrain_without_trimmed_clips_switches_transfer_off(
    batch, trimmed_data, caplog: pytest.LogCaptureFixture
) -> None:
    feats, labels, _, _ = trimmed_data
    net = small()
    with caplog.at_level(logging.WARNING, logger="wtal.models.tsrnet"):
        log = net.pretrain(PretrainInputs(
            videos=feats, labels=labels, trimmed=None, settings=TrainSettings(epochs=2),
            rng=np.random.default_rng(0), device=torch.device("cpu"))).log
    assert log == {"kt": "off: the dataset has no trimmed clips"}
    assert any("no trimmed clips" in r.message for r in caplog.records)
    x, mask, y = batch
    _, parts = net.loss(net(x, mask), y, mask, epoch=0)
    assert parts["kt_on"] == 0.0
    assert not any(k.startswith("kt_fc") for k in parts)


def test_pretrain_with_trimmed_clips_turns_transfer_on(batch, trimmed_data) -> None:
    feats, labels, clips, clip_labels = trimmed_data
    net = small()
    x, mask, y = batch
    torch.manual_seed(0)
    before, _ = net.loss(net.eval()(x, mask), y, mask, epoch=0)
    pretrained = net.pretrain(PretrainInputs(
        videos=feats, labels=labels, trimmed=(clips, clip_labels),
        settings=TrainSettings(epochs=3, batch_size=2, lr=1e-2), rng=np.random.default_rng(0),
        device=torch.device("cpu")))
    log = pretrained.log
    assert log["kt"] == "on"
    assert log["trimmed_clips"] == 6
    assert log["kt_classes"] == 3
    assert len(log["trimmed_loss"]) == 3
    assert all(np.isfinite(log["trimmed_loss"]))
    after, parts = net.loss(net(x, mask), y, mask, epoch=0, reference=pretrained.reference)
    assert parts["kt_on"] == 1.0
    assert parts["kt_classes"] == 3.0
    for name in ("rgb", "flow"):
        assert parts[f"kt_fc1_{name}"] > 0
        assert parts[f"kt_fc2_{name}"] > 0
    kt = sum(parts[f"kt_fc{i}_{s}"] for i in (1, 2) for s in ("rgb", "flow"))
    assert after.item() == pytest.approx(before.item() + kt, rel=1e-5)


def test_pretrain_trimmed_network_learns_and_is_not_saved(trimmed_data) -> None:
    """The trimmed network's loss falls on separable clips, and nothing of it is in the state
    dict: a rebuilt model loads strictly and gives the same outputs."""
    feats, labels, _, _ = trimmed_data
    rng = np.random.default_rng(3)
    clip_labels = np.eye(3, dtype=np.float32)[np.arange(12) % 3]
    clips = [(rng.standard_normal((5, 8)) + 3.0 * np.eye(8)[k] + 3.0 * np.eye(8)[4 + k])
             .astype(np.float32) for k in np.arange(12) % 3]
    kwargs = {"in_dim": 8, "num_classes": 3, "streams": STREAMS, "hops": 2,
              "attention_hidden": 6, "fc_hidden": 5, "dropout": 0.0}
    torch.manual_seed(0)
    net = build_model("tsrnet", **kwargs)
    keys = set(net.state_dict())
    log = net.pretrain(PretrainInputs(
        videos=feats, labels=labels, trimmed=(clips, clip_labels),
        settings=TrainSettings(epochs=30, batch_size=4, lr=1e-2), rng=np.random.default_rng(0),
        device=torch.device("cpu"))).log
    assert log["trimmed_loss"][-1] < 0.5 * log["trimmed_loss"][0]
    state = net.state_dict()
    assert set(state) == keys
    rebuilt = build_model("tsrnet", **kwargs)
    rebuilt.load_state_dict(state, strict=True)
    x = torch.randn(1, 6, 8)
    a, b = net.eval()(x), rebuilt.eval()(x)
    torch.testing.assert_close(a.cas, b.cas)
    torch.testing.assert_close(net.probabilities(a)[0], rebuilt.probabilities(b)[0])


def test_pretrain_off_by_switch_or_without_shared_class(trimmed_data) -> None:
    feats, labels, clips, clip_labels = trimmed_data
    settings = TrainSettings(epochs=1)
    net = small(knowledge_transfer=False)
    done = net.pretrain(PretrainInputs(
        videos=feats, labels=labels, trimmed=(clips, clip_labels), settings=settings,
        rng=np.random.default_rng(0), device=torch.device("cpu")))
    assert done.log["kt"].startswith("off: switched off")
    assert done.transfer_missing is None  # asked for nothing
    net = small()
    only_class_0 = np.eye(3, dtype=np.float32)[[0] * len(feats)]
    done = net.pretrain(PretrainInputs(
        videos=feats, labels=only_class_0, trimmed=(clips[1:3], clip_labels[1:3]),
        settings=settings, rng=np.random.default_rng(0), device=torch.device("cpu")))
    assert done.log["kt"].startswith("off: no trimmed clip shares a class")
    assert done.transfer_missing.startswith("no trimmed clip shares a class")


# --------------------------------------------------------------------------------------------
# Detection (Eq. 10-11)
# --------------------------------------------------------------------------------------------


def hand_output(attention: list[list[float]], frame_logits: list[list[list[float]]],
                video_logits: list[float]) -> TSRNetOutput:
    """A one-video output of S streams (attention (S, T), frame logits (S, T, C))."""
    att = torch.tensor(attention).unsqueeze(0).unsqueeze(2)  # (1, S, 1, T)
    frames = torch.tensor(frame_logits).unsqueeze(0)  # (1, S, T, C)
    t = att.shape[-1]
    return TSRNetOutput(
        cas=frames.mean(1), video_logits=torch.tensor([video_logits]),
        stream_logits=torch.tensor([video_logits]).unsqueeze(1).expand(1, att.shape[1], -1),
        frame_logits=frames, attention=att, pooled=(), hidden=(),
        mask=torch.ones(1, t, dtype=torch.bool),
    )


def test_detect_hand_made_single_stream() -> None:
    # one stream of all columns; a_i divided by its maximum; the earlier OIC score
    net = build_model("tsrnet", in_dim=4, num_classes=2, attention_norm="max")
    oic = TSRNetInferOptions(segment_score="oic")
    big = 20.0  # sigmoid ≈ 1
    att = [[0.05, 0.3, 0.3, 0.25, 0.05, 0.05]]  # max-normalised: 1/6, 1, 1, 5/6, 1/6, 1/6
    frames = [[[big, -big]] * 6]
    out = hand_output(att, frames, [5.0, -5.0])
    settings = InferSettings(class_threshold=0.2, inflation=0.25, video_score_weight=0.2)
    found = net.candidates(out, settings=settings, options=oic)
    video = torch.softmax(torch.tensor([5.0, -5.0]), 0)[0].item()
    assert len(found) == 1
    c, s, e, score = found[0]
    assert (c, s, e) == (0, 1.0, 4.0)  # snippets 1-3: [1, 4) in snippet coordinates
    # outer-inner contrast (band of one snippet each side) + 0.2 × the video score
    inner, outer = (1 + 1 + 5 / 6) / 3, 1 / 6
    assert score == pytest.approx(inner - outer + 0.2 * video, rel=1e-5)
    cas, scores = net.probabilities(out)
    torch.testing.assert_close(cas[0, :, 0], torch.tensor([1 / 6, 1, 1, 5 / 6, 1 / 6, 1 / 6]),
                               rtol=1e-5, atol=1e-5)
    assert scores[0].sum().item() == pytest.approx(1.0)
    # min-max rescaling removes the background's share: 0, 1, 1, 0.8, 0, 0
    net = build_model("tsrnet", in_dim=4, num_classes=2, attention_norm="minmax")
    cas, _ = net.probabilities(out)
    torch.testing.assert_close(cas[0, :, 0], torch.tensor([0.0, 1, 1, 0.8, 0, 0]),
                               rtol=1e-5, atol=1e-5)
    assert [f[:3] for f in net.candidates(out, settings=settings)] == [(0, 1.0, 4.0)]


def test_detect_fuses_streams_with_theta() -> None:
    """w̄ = θ w_RGB + (1 − θ) w_FLOW: a run only the RGB stream sees has w̄ = θ · w_RGB."""
    big = 20.0
    att = [[0.1, 0.4, 0.4, 0.1], [0.25, 0.25, 0.25, 0.25]]
    frames = [[[big], [big], [big], [big]], [[-big], [-big], [-big], [-big]]]
    out = hand_output(att, frames, [3.0])
    for theta, expected in ((0.5, [(0, 1.0, 3.0)]), (0.3, [(0, 1.0, 3.0)]), (0.15, [])):
        net = build_model("tsrnet", in_dim=4, num_classes=1, theta=theta,
                          streams={"rgb": [0, 2], "flow": [2, 4]}, attention_norm="minmax")
        w, _ = net.probabilities(out)
        # RGB a_i min-max rescaled: 0, 1, 1, 0; the flow stream's σ ≈ 0 everywhere
        torch.testing.assert_close(w[0, :, 0], theta * torch.tensor([0.0, 1.0, 1.0, 0.0]),
                                   rtol=1e-5, atol=1e-6)
        found = [(c, s, e) for c, s, e, _ in net.candidates(out, settings=InferSettings())]
        assert found == expected
    # flow first in the stream dict: θ still weighs the RGB stream
    net = build_model("tsrnet", in_dim=4, num_classes=1, theta=0.3,
                      streams={"flow": [2, 4], "rgb": [0, 2]})
    assert net.fusion.tolist() == pytest.approx([0.7, 0.3])


def test_detect_chooses_classes_by_video_score_and_needs_one_video(batch) -> None:
    net = build_model("tsrnet", in_dim=4, num_classes=3)
    big = 20.0
    out = hand_output([[0.5, 0.5]], [[[big, big, big]] * 2], [0.0, 0.0, -9.0])
    classes = {c for c, *_ in net.candidates(out, settings=InferSettings(class_threshold=0.2))}
    assert classes == {0, 1}  # softmax scores ≈ 0.5, 0.5, 0
    top = {c for c, *_ in net.candidates(out, settings=InferSettings(class_threshold=0.9))}
    assert len(top) == 1  # none reaches: the top class alone
    assert top <= {0, 1}
    x, mask, _ = batch
    with pytest.raises(ValueError, match="one video"):
        small().candidates(small()(x, mask), settings=InferSettings())


def test_normalise_attention() -> None:
    a = torch.tensor([[0.2, 0.5, 0.3, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    torch.testing.assert_close(normalise_attention(a, mask, how="max"),
                               torch.tensor([[0.4, 1.0, 0.6, 0.0]]))
    torch.testing.assert_close(normalise_attention(a, mask, how="minmax"),
                               torch.tensor([[0.0, 1.0, 1 / 3, 0.0]]))
    torch.testing.assert_close(normalise_attention(a, mask, how="none"), a)
    flat = torch.tensor([[0.5, 0.5, 0.0]])
    torch.testing.assert_close(normalise_attention(flat, torch.tensor([[True, True, False]]),
                                                   how="minmax"), torch.tensor([[1.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match="attention_norm"):
        normalise_attention(a, mask, how="softmax")


# --------------------------------------------------------------------------------------------
# Shapes, switches, optimisation hooks
# --------------------------------------------------------------------------------------------


def test_shapes_and_loss_parts(batch) -> None:
    x, mask, labels = batch
    net = small()
    out = net(x, mask)
    assert out.cas.shape == (2, 7, 3)
    assert out.video_logits.shape == (2, 3)
    assert out.stream_logits.shape == (2, 2, 3)
    assert out.frame_logits.shape == (2, 2, 7, 3)
    assert [m.shape for m in out.pooled] == [(2, 4), (2, 4)]
    assert [h.shape for h in out.hidden] == [(2, 5), (2, 5)]
    total, parts = net.loss(out, labels, mask, epoch=0)
    total.backward()
    expected = sum(parts[f"cls_{s}"] + 1.0 * parts[f"smooth_{s}"] + 0.1 * parts[f"sparsity_{s}"]
                   for s in ("rgb", "flow"))  # α = 1, β = 0.1 (the builder's defaults)
    assert total.item() == pytest.approx(expected, rel=1e-5)
    assert all(p.grad is not None for n, p in net.named_parameters() if "fc" in n)
    assert net.nets["rgb"].w1.weight.grad.abs().sum() > 0


def test_score_sequences_for_reports(batch) -> None:
    x, mask, _ = batch
    net = small().eval()
    seqs = net.score_sequences(x, mask)
    assert set(seqs) == {"cas", "attention_rgb", "attention_flow"}
    torch.testing.assert_close(seqs["cas"], net.probabilities(net(x, mask))[0])
    assert seqs["attention_rgb"].shape == (2, 7)
    for value in seqs.values():
        assert value.min() >= 0.0
        assert value.max() <= 1.0


def test_alpha_weighs_the_smoothness(batch) -> None:
    x, mask, labels = batch
    torch.manual_seed(0)
    net = small(alpha=0.0, beta=0.0)
    out = net(x, mask)
    base, parts = net.loss(out, labels, mask, epoch=0)
    net.alpha = 10.0
    weighted, _ = net.loss(out, labels, mask, epoch=0)
    smooth = parts["smooth_rgb"] + parts["smooth_flow"]
    assert smooth > 0
    assert weighted.item() - base.item() == pytest.approx(10.0 * smooth, rel=1e-4)


def test_without_attention_weights_are_uniform(batch) -> None:
    x, mask, labels = batch
    net = small(attention=False, attention_activation="softmax")
    torch.testing.assert_close(net(x, mask).attention[1, 0, 0, :5], torch.full((5,), 0.2))
    net = small(attention=False)  # sigmoid weights: all ones, pooled by the mean
    out = net(x, mask)
    assert out.attention.shape == (2, 2, 1, 7)
    torch.testing.assert_close(out.attention[1, 0, 0, :5], torch.ones(5))
    assert torch.all(out.attention[1, 0, 0, 5:] == 0)
    _, parts = net.loss(out, labels, mask, epoch=0)
    assert "smooth_rgb" not in parts
    assert "sparsity_flow" not in parts


def test_kt_fc2_switch(batch) -> None:
    x, mask, labels = batch
    net = small(kt_fc2=False, kt_sigma=1.0)
    out = net(x, mask)
    ref = net.trimmed_reference([m.detach() + 1.0 for m in out.pooled], labels)
    _, parts = net.loss(out, labels, mask, epoch=0, reference=ref)
    assert parts["kt_fc1_rgb"] > 0
    assert parts["kt_fc2_rgb"] == 0.0


def test_single_stream_selection_and_no_streams(batch) -> None:
    x, mask, _ = batch
    flow = small(stream="flow")
    assert flow.stream_names == ["flow"]
    out = flow(x, mask)
    assert out.stream_logits.shape == (2, 1, 3)
    assert out.pooled[0].shape == (2, 4)
    one = build_model("tsrnet", in_dim=8, num_classes=3)
    assert one.stream_names == ["all"]
    assert one(x, mask).pooled[0].shape == (2, 8)
    with pytest.raises(ValueError, match="stream 'depth'"):
        small(stream="depth")
    with pytest.raises(ValueError, match="outside"):
        build_model("tsrnet", in_dim=8, num_classes=3, streams={"rgb": [0, 9]})


def test_param_groups_per_stream_learning_rates() -> None:
    net = small()
    groups = net.param_groups(1e-4)
    assert [g["lr"] for g in groups] == pytest.approx([1e-4, 5e-4])
    ids = [{id(p) for p in g["params"]} for g in groups]
    assert not ids[0] & ids[1]
    assert ids[0] | ids[1] == {id(p) for p in net.parameters()}
    one = build_model("tsrnet", in_dim=8, num_classes=3, lr_scales={"all": 2.0})
    assert [g["lr"] for g in one.param_groups(0.1)] == pytest.approx([0.2])


def planted_localisation(*, knowledge_transfer: bool, seed: int = 0) -> int:
    """Train on planted videos (noise with one 6-snippet action of a class direction) and the
    trimmed clips of the same actions; count the test videos whose best segment of their own
    class overlaps the action with tIoU ≥ 0.5 (out of 6). ``seed``: data and initialisation."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dim, classes, t = 8, 3, 24

    def action(c: int, n: int) -> np.ndarray:
        x = rng.standard_normal((n, dim)) * 0.5 + 2.0 * np.eye(dim)[c] + 2.0 * np.eye(dim)[4 + c]
        return x.astype(np.float32)

    def video(c: int) -> tuple[np.ndarray, int]:
        x = (rng.standard_normal((t, dim)) * 0.5).astype(np.float32)
        start = int(rng.integers(2, t - 8))
        x[start : start + 6] = action(c, 6)
        return x, start

    data = [video(i % classes) for i in range(30)]
    labels = np.eye(classes, dtype=np.float32)[np.arange(30) % classes]
    clips = [action(i % classes, 5) for i in range(12)]
    clip_labels = np.eye(classes, dtype=np.float32)[np.arange(12) % classes]
    net = small(hops=2, attention_hidden=8, fc_hidden=8, dropout=0.5,
                knowledge_transfer=knowledge_transfer)
    settings = TrainSettings(epochs=100, batch_size=10, lr=0.05, optimizer="sgd")
    reference = net.pretrain(PretrainInputs(
        videos=[d[0] for d in data], labels=labels, trimmed=(clips, clip_labels),
        settings=settings, rng=rng, device=torch.device("cpu"))).reference
    opt = torch.optim.SGD(net.param_groups(settings.lr), lr=settings.lr, momentum=0.9)
    x_all = torch.from_numpy(np.stack([d[0] for d in data]))
    y_all = torch.from_numpy(labels)
    mask = torch.ones(10, t, dtype=torch.bool)
    for _ in range(settings.epochs):
        for lo in range(0, 30, 10):
            loss, _ = net.loss(net(x_all[lo : lo + 10], mask), y_all[lo : lo + 10], mask,
                               epoch=0, reference=reference)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    hits = 0
    for i in range(6):
        c = i % classes
        x, start = video(c)
        with torch.no_grad():
            out = net(torch.from_numpy(x).unsqueeze(0))
        found = [f for f in net.candidates(out, settings=InferSettings(class_threshold=0.0))
                 if f[0] == c]
        if not found:
            continue
        _, s, e, _ = max(found, key=lambda f: f[3])
        inter = max(0.0, min(e, start + 6) - max(s, start))
        hits += inter / ((e - s) + 6 - inter) >= 0.5
    return hits


@pytest.mark.slow
def test_knowledge_transfer_localises_planted_actions() -> None:
    """With the trimmed clips the attention learns to pick the action (L_FC1 pulls the pooled
    untrimmed features towards the trimmed ones); without them it does much less on this data.
    Summed over four seeds (of 24 test videos): one seed's count moves by one or two with the
    floating-point order (seeds 0-19 with KT: 1-6 each, mean 3.4 of 6 by either form of the
    kernel; seeds 0-3 without KT: 0, 1, 4, 3)."""
    with_kt = sum(planted_localisation(knowledge_transfer=True, seed=s) for s in range(4))
    without = sum(planted_localisation(knowledge_transfer=False, seed=s) for s in range(4))
    # 15 of 24 with KT (the per-snippet sigmoid attention and mean-w̄ scores), 8 without
    assert with_kt >= 12
    assert with_kt >= without + 4


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


def test_config_args_and_ablations_build_and_train(batch) -> None:
    cfg = yaml.safe_load(CONFIG.read_text())
    params = builder_parameters("tsrnet")
    assert set(cfg["args"]) <= params
    settings = {f.name for f in fields(TrainSettings)}
    assert set(cfg["train"]) <= settings
    for block in cfg["datasets"].values():
        assert set(block.get("args", {})) <= params
        assert set(block.get("train", {})) <= settings
    assert cfg["trimmed"] is True
    assert cfg["train"]["optimizer"] == "sgd"
    assert cfg["train"]["momentum"] == 0.9
    assert cfg["args"]["dropout"] == 0.8
    assert cfg["args"]["theta"] == 0.5
    assert cfg["infer"]["model"]["detect_threshold"] == 0.2  # an inference knob
    assert cfg["args"]["lr_scales"]["flow"] / cfg["args"]["lr_scales"]["rgb"] == 5.0
    # lr ÷ 10 every 5,000 iterations at ceil(200 / 16) = 13 iterations per epoch
    assert cfg["train"]["lr_milestones"] == [round(5000 / 13), round(10000 / 13)]
    x, mask, labels = batch
    assert next(iter(cfg["ablations"])) == "Two-Stream"
    for name, variant in cfg["ablations"].items():
        assert set(variant) <= {"args", "train", "infer"}, name
        args = {**cfg["args"], **variant.get("args", {}), "hops": 2, "attention_hidden": 6,
                "fc_hidden": 5}
        net = build_model("tsrnet", in_dim=8, num_classes=3, streams=STREAMS, **args)
        loss, _ = net.loss(net(x, mask), labels, mask, epoch=0)
        loss.backward()
        assert torch.isfinite(loss), name
