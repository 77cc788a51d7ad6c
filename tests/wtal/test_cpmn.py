"""CPMN (wtal/models/cpmn.py): cascaded classifiers, erasing, pyramid attention (windows), the
two independent streams, the §3.5 localisation (detect), loss, config."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from extractors.grid import SnippetGrid
from wtal.evaluate import evaluate
from wtal.infer import InferSettings, infer
from wtal.models import build_model
from wtal.models.cpmn import (
    CPMN,
    CPMNInferOptions,
    CPMNStream,
    erasing_mask,
    masked_minmax,
    stream_columns,
    upsample_repeat,
)
from wtal.train import TrainSettings, train
from wtalio import save_npy, write_json

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"hidden": 32, "window": 8}


def small(**kwargs: object) -> CPMN:
    model = build_model("cpmn", in_dim=16, num_classes=3, **{**SMALL, **kwargs})
    assert isinstance(model, CPMN)
    return model


def one(**kwargs: object) -> CPMNStream:
    """The sub-network of a one-stream CPMN (no recorded stream ranges: all 16 columns)."""
    model = small(**kwargs)
    assert len(model.nets) == 1
    net = next(iter(model.nets.values()))
    assert isinstance(net, CPMNStream)
    return net


def batch(t: int = 21, pad: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Two videos: one of length t, one of length t - pad (padded with garbage)."""
    x = torch.randn(2, t, 16)
    mask = torch.ones(2, t, dtype=torch.bool)
    mask[1, t - pad :] = False
    x[1, t - pad :] = 100.0
    return x, mask


# -- shapes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("mining", "pam"), [(False, False), (True, False), (True, True),
                                             (False, True)])
def test_output_shapes(mining: bool, pam: bool) -> None:
    torch.manual_seed(0)
    model = one(mining=mining, pam=pam)
    x, mask = batch()
    out = model(x, mask)
    assert out.cas.shape == out.heatmap.shape == out.tcas_a.shape == (2, 21, 3)
    assert out.video_logits.shape == out.logits_a.shape == (2, 3)
    assert out.erased.shape == (2, 21)
    assert out.erased.dtype == torch.bool
    assert out.features.shape == (2, 21, 16)
    assert (out.tcas_b is not None) == mining
    assert (out.logits_b is not None) == mining
    assert (out.logits_pam is not None) == pam
    if not pam:
        assert torch.equal(out.heatmap, torch.ones_like(out.heatmap))
    if not mining:
        assert not out.erased.any()
        torch.testing.assert_close(out.cas, out.tcas_a)
    cas, scores = model.localisation(out), model.video_scores(out)
    assert cas.shape == (2, 21, 3)
    assert scores.shape == (2, 3)
    assert ((cas >= 0) & (cas <= 1)).all()
    assert ((scores >= 0) & (scores <= 1)).all()


def test_probabilities_are_eq4_and_scores_use_a_and_pam() -> None:
    torch.manual_seed(0)
    model = small().eval()
    fused = model(torch.randn(1, 12, 16))
    out = fused.streams["all"]
    cas, scores = model.probabilities(fused)
    torch.testing.assert_close(cas, torch.sigmoid(torch.maximum(out.tcas_a, out.tcas_b))
                               * out.heatmap)
    torch.testing.assert_close(scores, torch.sigmoid((out.logits_a + out.logits_pam) / 2))
    with_b = small(score_mining=True).eval()
    with_b.load_state_dict(model.state_dict())
    out_b = with_b(torch.zeros(1, 12, 16)).streams["all"]
    torch.testing.assert_close(
        with_b.nets["all"].video_scores(out_b),
        torch.sigmoid((out_b.logits_a + out_b.logits_b + out_b.logits_pam) / 3))


# -- cascaded classification module -------------------------------------------------------------


def test_tcas_is_the_fc_weights_applied_per_snippet() -> None:
    """Eq. (2): M_t^c = Σ_k w^c(k) Z_t(k); with GAP, s^c = mean_t M_t^c + b^c (Eq. 1)."""
    torch.manual_seed(0)
    model = one(mining=False, pam=False)
    x, mask = batch()
    out = model(x, mask)
    clf = model.classifier_a
    z = clf.embed(x * mask.unsqueeze(-1), mask)  # (B, T, K)
    w = clf.fc.weight  # (C, K)
    for b in range(2):
        for t in range(int(mask[b].sum())):
            for c in range(3):
                expected = torch.dot(w[c], z[b, t])  # Σ_k w^c(k) Z_t(k)
                torch.testing.assert_close(out.tcas_a[b, t, c], expected)
    for b in range(2):
        n = int(mask[b].sum())
        torch.testing.assert_close(out.logits_a[b], out.tcas_a[b, :n].mean(0) + clf.fc.bias)


def test_erasing_mask_hand_example() -> None:
    tcas = torch.zeros(1, 6, 2)
    tcas[0, :, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 99.0])  # last snippet is padding
    tcas[0, :, 1] = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0, 0.0])
    mask = torch.tensor([[True] * 5 + [False]])
    # class 0 normalised over the valid part: 0, .25, .5, .75, 1 → above ζ = 0.4 from index 2
    only0 = erasing_mask(tcas, mask, torch.tensor([[True, False]]), zeta=0.4)
    assert only0.tolist() == [[False, False, True, True, True, False]]
    # class 1: 1, .75, .5, .25, 0 → indices 0-2; the erasure is the union over target classes
    both = erasing_mask(tcas, mask, torch.tensor([[True, True]]), zeta=0.4)
    assert both.tolist() == [[True, True, True, True, True, False]]
    high = erasing_mask(tcas, mask, torch.tensor([[True, False]]), zeta=0.7)
    assert high.tolist() == [[False, False, False, True, True, False]]
    none = erasing_mask(tcas, mask, torch.tensor([[False, False]]), zeta=0.4)
    assert not none.any()
    flat = erasing_mask(torch.ones(1, 4, 1), torch.ones(1, 4, dtype=torch.bool),
                        torch.tensor([[True]]), zeta=0.4)
    assert not flat.any()  # a constant T-CAS has no discriminative region


def test_mining_classifier_sees_the_erased_features() -> None:
    torch.manual_seed(0)
    model = one(pam=False).eval()
    x, mask = batch()
    out = model(x, mask)
    targets = model.predicted_targets(out.logits_a)
    assert targets.any(dim=1).all()  # at least the top class
    erased = erasing_mask(out.tcas_a, mask, targets, zeta=0.4)
    assert torch.equal(out.erased, erased)
    assert erased.any()
    tcas_b, logits_b = model.classifier_b(model.erase(out.features, erased), mask)
    torch.testing.assert_close(out.tcas_b, tcas_b)
    torch.testing.assert_close(out.logits_b, logits_b)
    torch.testing.assert_close(out.cas, torch.maximum(out.tcas_a, out.tcas_b))


def test_loss_erases_after_the_labels_in_training() -> None:
    """Algorithm 1: classifier B is trained on features erased after M^c(A), c ∈ ψ_v."""
    torch.manual_seed(0)
    model = one(pam=False, l2_weight=0.0)
    x, mask = batch()
    out = model(x, mask)
    predicted = model.predicted_targets(out.logits_a)
    labels = (~predicted).float()  # every labelled class differs from the predicted ones
    labels[:, 0] = 1.0
    parts = model.loss(out, labels)
    erased = erasing_mask(out.tcas_a, mask, labels > 0.5, zeta=0.4)
    assert not torch.equal(erased, out.erased)
    _, logits_b = model.classifier_b(model.erase(out.features, erased), mask)
    expected = F.binary_cross_entropy_with_logits(logits_b, labels, reduction="none").sum(1)
    assert parts["cls_b"].item() == pytest.approx(expected.mean().item(), rel=1e-5)
    guided = one(pam=False, l2_weight=0.0, erase_guide="predictions")
    guided.load_state_dict(model.state_dict())
    parts_p = guided.loss(out, labels)
    expected_p = F.binary_cross_entropy_with_logits(out.logits_b, labels, reduction="none")
    assert parts_p["cls_b"].item() == pytest.approx(expected_p.sum(1).mean().item(), rel=1e-5)


def test_loss_parts_and_l2() -> None:
    torch.manual_seed(0)
    model = small()
    x, mask = batch()
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    total, parts = model.loss(model(x, mask), labels, mask, epoch=0)
    assert set(parts) == {"cls_a", "cls_b", "pam", "l2"}
    assert total.item() == pytest.approx(sum(parts.values()), rel=1e-5)
    net = model.nets["all"]
    weights = [p for clf in (net.classifier_a, net.classifier_b)
               for n, p in clf.named_parameters() if n.endswith("weight")]
    assert len(weights) == 6  # two convolutions and the FC, twice
    l2 = sum(float((w.detach() ** 2).sum()) for w in weights) / 2
    assert parts["l2"] == pytest.approx(0.0025 * l2, rel=1e-5)


# -- pyramid attention module -------------------------------------------------------------------


def test_upsample_by_repetition() -> None:
    k = torch.tensor([[[1.0], [2.0], [3.0]]])  # (1, 3, 1)
    assert upsample_repeat(k, 2, 5)[0, :, 0].tolist() == [1, 1, 2, 2, 3]
    assert upsample_repeat(k, 4, 10)[0, :, 0].tolist() == [1] * 4 + [2] * 4 + [3] * 2


@pytest.mark.parametrize("t", [1, 2, 7, 8, 13, 21, 64, 65])
def test_pyramid_level_lengths_and_heatmap(t: int) -> None:
    torch.manual_seed(0)
    model = one(mining=False, window=64)
    pyramid = model.pam
    assert pyramid is not None
    x = torch.randn(1, t, 16)
    mask = torch.ones(1, t, dtype=torch.bool)
    maps, masks = pyramid.label_maps(x, mask)
    lengths = [k.shape[1] for k in maps]
    # §3.3: the input and three stacked max poolings, T_l = T / 2^(l-1), l = 1 … 4
    assert lengths == [t, math.ceil(t / 2), math.ceil(t / 4), math.ceil(t / 8)]
    assert [m.shape[1] for m in masks] == lengths
    assert all(m.all() for m in masks)
    if t <= 64:  # one window: the pyramid pass on the video alone (padding is masked)
        logits, summed, heat = pyramid(x, mask)
    else:  # several windows: compare with a model whose window holds the whole video
        wide = one(mining=False, window=128).pam
        assert wide is not None
        wide.load_state_dict(pyramid.state_dict())
        logits, summed, heat = wide(x, mask)
    expected = sum(k.repeat_interleave(2**i, dim=1)[:, :t] for i, k in enumerate(maps))
    torch.testing.assert_close(summed, expected)
    torch.testing.assert_close(heat, masked_minmax(expected, mask, flat=1.0))  # Eq. (3)
    torch.testing.assert_close(logits, torch.stack([k.mean(1) for k in maps]).mean(0))
    assert heat.shape == (1, t, 3)
    if t > 1:
        assert torch.allclose(heat.amin(1), torch.zeros(3))
        assert torch.allclose(heat.amax(1), torch.ones(3))
    else:  # one snippet: nothing to normalise, the attention is neutral
        assert torch.equal(heat, torch.ones_like(heat))


def test_max_pooling_levels() -> None:
    torch.manual_seed(0)
    pyramid = one(mining=False).pam
    assert pyramid is not None
    x = torch.arange(5.0).reshape(1, 5, 1).repeat(1, 1, 16)
    captured: list[torch.Tensor] = []
    hooks = [conv.register_forward_hook(lambda _m, i, _o: captured.append(i[0]))
             for conv in pyramid.lateral]
    pyramid.label_maps(x, torch.ones(1, 5, dtype=torch.bool))
    for h in hooks:
        h.remove()
    assert [c[0, 0].tolist() for c in captured] == [[0, 1, 2, 3, 4], [1, 3, 4], [3, 4], [4]]


def test_default_pyramid_has_three_poolings() -> None:
    """§3.3: "we stack three 1-D max pooling layers": four levels T, T/2, T/4, T/8 by default."""
    net = build_model("cpmn", in_dim=16, num_classes=3, hidden=8)
    assert isinstance(net, CPMN)
    pyramid = next(iter(net.nets.values())).pam
    assert pyramid is not None
    assert pyramid.levels == 4
    assert len(pyramid.lateral) == 4
    maps, _ = pyramid.label_maps(torch.randn(1, 64, 16), torch.ones(1, 64, dtype=torch.bool))
    assert [k.shape[1] for k in maps] == [64, 32, 16, 8]


def test_ccm_samples_the_whole_video_sparsely_in_training_uniformly_at_test() -> None:
    """§3.4 / §3.5: a video longer than P units is cut into P segments; the classifiers see one
    random unit of each in training, the centres at prediction; M(Cas) goes back to every unit
    of its segment; the PAM sees every unit. A short video is seen whole."""
    torch.manual_seed(0)
    p, n = 5, 23
    net = one(mining=True, ccm_segments=p)
    x = torch.arange(float(n)).reshape(1, n, 1).repeat(1, 1, 16)  # unit t has value t
    mask = torch.ones(1, n, dtype=torch.bool)
    edges = np.linspace(0, n, p + 1)
    seen = []
    for _ in range(20):
        out = net.train()(x, mask)
        units = out.features[0, :, 0]  # the units classifier A saw
        assert out.features.shape[1] == p
        assert out.mask.all()
        assert all(edges[k] - 1 < float(u) < edges[k + 1] for k, u in enumerate(units))
        seen.append(tuple(units.tolist()))
    assert len(set(seen)) > 1  # a new draw at every step
    out = net.eval()(x, mask)
    centres = ((edges[:-1] + edges[1:]) / 2).astype(int)
    assert out.features[0, :, 0].tolist() == centres.tolist()
    segment = np.arange(n) * p // n  # the segment of every unit
    torch.testing.assert_close(out.cas[0], torch.maximum(out.tcas_a, out.tcas_b)[0, segment])
    assert out.cas.shape == out.heatmap.shape == (1, n, 3)
    short = net.train()(x[:, :p], mask[:, :p])  # at most P units: all of them
    assert short.features[0, :, 0].tolist() == list(range(p))
    whole = one(ccm_segments=p, ccm_sampling="all").train()(x, mask)
    assert whole.features.shape[1] == n
    with pytest.raises(ValueError, match="ccm_sampling"):
        one(ccm_sampling="shots")


def test_training_takes_whole_videos_by_default(tmp_path: Path) -> None:
    """The loop crops to ``train.max_seqlen``; CPMN's settings keep every video whole, so the
    CCM sees a long video's every segment and the PAM all its windows (no crop without an
    action that still carries the video's labels)."""
    from wtal.settings import resolve_model_settings, train_settings

    settings = resolve_model_settings(ROOT / "pipeline/config/models/cpmn.yaml", "thumos14")
    ts = train_settings(settings["train"])
    assert ts.sampling == "all"
    assert ts.max_seqlen >= 10000
    assert settings["args"]["ccm_sampling"] == "sparse"


def test_pyramid_runs_on_windows_and_they_equal_one_pass() -> None:
    """§3.4-3.5: the PAM sees consecutive windows of T_ω (the last one padded); every window is
    a pass of its own, and with aligned windows (multiples of 2^(levels-1)) the concatenated
    label maps equal one pass over the whole video."""
    torch.manual_seed(0)
    pyramid = one(mining=False, window=8).pam
    assert pyramid is not None
    x = torch.randn(1, 21, 16)
    ones = torch.ones(1, 21, dtype=torch.bool)
    maps, masks = pyramid.windowed_maps(x, ones)
    assert [k.shape[1] for k in maps] == [24, 12, 6, 3]  # 3 windows of 8, 4, 2, 1
    assert [int(m.sum()) for m in masks] == [21, 11, 6, 3]
    per_window = []
    for lo in range(0, 21, 8):
        w = x[:, lo : lo + 8]
        per_window.append(pyramid.label_maps(w, torch.ones(w.shape[:2], dtype=torch.bool))[0])
    for level, k in enumerate(maps):
        whole = torch.cat([p[level] for p in per_window], dim=1)
        torch.testing.assert_close(k[:, : whole.shape[1]], whole)
    one_pass, _ = pyramid.label_maps(x, ones)
    _, summed, _ = pyramid(x, ones)
    expected = sum(k.repeat_interleave(2**i, dim=1)[:, :21] for i, k in enumerate(one_pass))
    torch.testing.assert_close(summed, expected)
    with pytest.raises(ValueError, match="multiple"):
        one(window=6)


def test_short_inputs_are_padded_to_a_window_without_changing_outputs() -> None:
    torch.manual_seed(0)
    windowed = one(window=64).eval()
    assert windowed.pam is not None
    x = torch.randn(1, 11, 16)
    maps, masks = windowed.pam.windowed_maps(x, torch.ones(1, 11, dtype=torch.bool))
    assert maps[0].shape[1] == 64  # padded to one window
    assert int(masks[0].sum()) == 11
    a = windowed(x)
    assert a.heatmap.shape == (1, 11, 3)
    alone, _ = windowed.pam.label_maps(x, torch.ones(1, 11, dtype=torch.bool))  # no padding
    torch.testing.assert_close(a.logits_pam, torch.stack([k.mean(1) for k in alone]).mean(0))
    summed = sum(k.repeat_interleave(2**i, dim=1)[:, :11] for i, k in enumerate(alone))
    torch.testing.assert_close(a.heatmap, masked_minmax(summed, torch.ones(1, 11, dtype=bool),
                                                        flat=1.0))


# -- masking, streams, resizing -----------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"mining": False, "pam": False}, {"pam": False}])
def test_padding_does_not_change_the_valid_part(kwargs: dict[str, object]) -> None:
    torch.manual_seed(0)
    full = small(**kwargs).eval()
    model = full.nets["all"]
    x, mask = batch(t=21, pad=8)
    both = model(x, mask)
    alone = model(x[1:, :13])
    for name in ("logits_a", "logits_b", "logits_pam", "video_logits"):
        if getattr(alone, name) is not None:
            torch.testing.assert_close(getattr(both, name)[1:], getattr(alone, name))
    for name in ("cas", "heatmap", "tcas_a"):
        torch.testing.assert_close(getattr(both, name)[1:, :13], getattr(alone, name))
    assert not both.erased[1, 13:].any()
    assert (both.features[1, 13:] == 0).all()
    torch.testing.assert_close(full.probabilities(full(x, mask))[0][1:, :13],
                               full.probabilities(full(x[1:, :13]))[0])


@pytest.mark.parametrize(("stream", "kept"), [("rgb", slice(0, 8)), ("flow", slice(8, 16))])
def test_stream_selects_feature_columns(stream: str, kept: slice) -> None:
    torch.manual_seed(0)
    model = small(stream=stream).eval()
    assert list(model.nets) == [stream]
    assert model.nets[stream].classifier_a.convs[0].in_channels == 8
    x = torch.randn(1, 10, 16)
    other = x.clone()
    dropped = slice(8, 16) if kept.start == 0 else slice(0, 8)
    other[..., dropped] = torch.randn(1, 10, 8)
    torch.testing.assert_close(model(x).cas, model(other).cas)
    changed = x.clone()
    changed[..., kept] += 1.0
    assert not torch.allclose(model(x).cas, model(changed).cas)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="stream"):
        small(stream="depth")
    with pytest.raises(ValueError, match="theta"):
        CPMNInferOptions(theta=1.5)  # an inference knob (infer.model)
    with pytest.raises(ValueError, match="top_classes"):
        CPMNInferOptions(top_classes=0)
    with pytest.raises(ValueError, match="even"):
        build_model("cpmn", in_dim=15, num_classes=2, stream="rgb")
    with pytest.raises(ValueError, match="erase_guide"):
        small(erase_guide="random")


def test_resize_returns_the_input_length() -> None:
    torch.manual_seed(0)
    model = small(resize=8)
    x, mask = batch(t=21, pad=8)
    fused = model(x, mask)
    out = fused.streams["all"]
    assert out.cas.shape == out.heatmap.shape == fused.cas.shape == (2, 21, 3)
    assert out.tcas_a.shape == (2, 8, 3)
    assert out.mask.all()
    assert (out.cas[1, 13:] == 0).all()
    loss, _ = model.loss(fused, torch.tensor([[1.0, 0, 0], [0, 1, 0]]), mask, epoch=0)
    loss.backward()


# -- two streams --------------------------------------------------------------------------------

STREAMS = {"rgb": [0, 6], "flow": [6, 16]}


def two(**kwargs: object) -> CPMN:
    return small(streams=STREAMS, **kwargs)


def test_two_streams_are_independent_networks_fused_at_localisation() -> None:
    torch.manual_seed(0)
    model = two().eval()
    assert list(model.nets) == ["rgb", "flow"]
    assert [n.columns for n in model.nets.values()] == [(0, 6), (6, 16)]
    x, mask = batch()
    out = model(x, mask)
    assert set(out.streams) == {"rgb", "flow"}
    rgb, flow = out.streams["rgb"], out.streams["flow"]
    torch.testing.assert_close(out.cas, (rgb.cas + flow.cas) / 2)
    torch.testing.assert_close(out.video_logits, (rgb.video_logits + flow.video_logits) / 2)
    phi, scores = model.probabilities(out)
    phi_rgb = torch.sigmoid(rgb.cas) * rgb.heatmap  # Eq. (4)
    phi_flow = torch.sigmoid(flow.cas) * flow.heatmap  # Eq. (5)
    torch.testing.assert_close(phi, (phi_rgb + phi_flow) / 2)
    torch.testing.assert_close(scores, (model.nets["rgb"].video_scores(rgb)
                                        + model.nets["flow"].video_scores(flow)) / 2)
    # the rgb network reads only its columns
    other = x.clone()
    other[..., 6:] = torch.randn(2, 21, 10)
    torch.testing.assert_close(model(other, mask).streams["rgb"].cas, rgb.cas)
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    total, parts = model.loss(out, labels, mask, epoch=0)
    assert set(parts) == {f"{s}.{p}" for s in ("rgb", "flow") for p in ("cls_a", "cls_b", "pam",
                                                                          "l2")}
    assert total.item() == pytest.approx(sum(parts.values()), rel=1e-5)


def grads(model: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters()
            if n.startswith(prefix) and p.grad is not None}


def test_one_stream_gradient_does_not_depend_on_the_other_stream() -> None:
    """Sum of per-stream losses, disjoint parameters: the rgb network's gradient is that of the
    rgb network trained alone, whatever the flow input or the flow parameters are."""
    torch.manual_seed(0)
    model = two()
    x, mask = batch()
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])

    def rgb_grad(net: CPMN, inp: torch.Tensor) -> dict[str, torch.Tensor]:
        net.zero_grad(set_to_none=True)
        net.loss(net(inp, mask), labels, mask, epoch=0)[0].backward()
        return {n[len("nets.rgb."):]: g for n, g in grads(net, "nets.rgb.").items()}

    reference = rgb_grad(model, x)
    assert reference
    assert all(g.abs().sum() > 0 for g in reference.values())
    other = x.clone()
    other[..., 6:] = torch.randn(2, 21, 10) * 3.0  # other flow features
    changed = two()
    changed.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in changed.nets["flow"].parameters():
            p.add_(torch.randn_like(p))  # other flow parameters
    for a, b in ((reference, rgb_grad(model, other)), (reference, rgb_grad(changed, other))):
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(a[name], b[name])
    alone = small(stream="rgb", streams=STREAMS)
    alone.nets["rgb"].load_state_dict(model.nets["rgb"].state_dict())
    alone.zero_grad(set_to_none=True)
    alone.loss(alone(x, mask), labels, mask, epoch=0)[0].backward()
    separate = {n[len("nets.rgb."):]: g for n, g in grads(alone, "nets.rgb.").items()}
    assert separate.keys() == reference.keys()
    for name in separate:
        torch.testing.assert_close(separate[name], reference[name])


def test_two_stream_score_sequences_are_named_per_stream() -> None:
    torch.manual_seed(0)
    model = two().eval()
    x = torch.randn(1, 13, 16)
    seqs = model.score_sequences(x)
    per_stream = ("original_tcas", "mining_tcas", "cascaded_tcas", "attention", "erased")
    assert set(seqs) == {f"{s}.{k}" for s in ("rgb", "flow") for k in per_stream} | {
        "localisation"}
    torch.testing.assert_close(seqs["localisation"], model.probabilities(model(x))[0])
    out = model(x).streams["flow"]
    torch.testing.assert_close(seqs["flow.attention"], out.heatmap)
    assert seqs["rgb.erased"].shape == (1, 13)


def test_two_stream_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    model = two().eval()
    rebuilt = two().eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 30, 16)
    torch.testing.assert_close(model.probabilities(model(x))[0],
                               rebuilt.probabilities(rebuilt(x))[0])
    assert any(k.startswith("nets.flow.pam.") for k in model.state_dict())


# -- localisation (§3.5) ------------------------------------------------------------------------


def fixed_output(model: CPMN, phis: dict[str, np.ndarray], scores: np.ndarray):
    """A CPMNOutput whose streams give Φ_s = ``phis[s]`` (T, C) and p_class ``scores``: the CAS is
    the logit of Φ_s with H = 1, and A's logits the logit of the scores (no PAM, no mining)."""
    from wtal.models.cpmn import CPMNOutput, StreamOutput

    streams = {}
    for name, phi in phis.items():
        cas = torch.logit(torch.tensor(phi, dtype=torch.float64)).unsqueeze(0)  # (1, T, C)
        logits = torch.logit(torch.tensor(scores, dtype=torch.float64)).unsqueeze(0)
        streams[name] = StreamOutput(
            cas=cas, video_logits=logits, heatmap=torch.ones_like(cas), logits_a=logits,
            logits_b=None, logits_pam=None, tcas_a=cas, tcas_b=None,
            erased=torch.zeros(1, cas.shape[1], dtype=torch.bool), features=cas,
            mask=torch.ones(1, cas.shape[1], dtype=torch.bool))
    stacked = torch.stack([o.cas for o in streams.values()]).mean(0)
    return CPMNOutput(cas=stacked, video_logits=streams[next(iter(streams))].video_logits,
                      heatmap=torch.ones_like(stacked), streams=streams)


def test_detect_thresholds_each_modality_for_the_top_two_classes() -> None:
    model = two(mining=False, pam=False)
    eps = 1e-4
    rgb = np.full((8, 3), eps)
    flow = np.full((8, 3), eps)
    rgb[1:3, 0] = [0.8, 0.9]  # θ = 0.2 · 0.9 = 0.18
    rgb[5, 0] = 0.2
    flow[2:5, 0] = [0.5, 0.6, 0.1]  # θ = 0.12: run 2..3
    rgb[0:2, 1] = 0.5
    flow[6, 1] = 0.4
    rgb[3, 2] = flow[3, 2] = 0.9  # class 2 is the third class: not localised
    scores = np.array([0.9, 0.5, 0.3])
    found = model.candidates(fixed_output(model, {"rgb": rgb, "flow": flow}, scores), settings=None)
    fused = (rgb + flow) / 2

    def conf(c: int, first: int, last: int) -> float:
        return float(fused[first : last + 1, c].mean()) * scores[c]  # Eq. (7), (8)

    expected = [(0, 1, 2), (0, 5, 5), (0, 2, 3), (1, 0, 1), (1, 6, 6)]
    assert [(c, s, e) for c, s, e, _ in found] == [(c, f, la + 1) for c, f, la in expected]
    for (_, _, _, score), (c, f, la) in zip(found, expected, strict=True):
        assert score == pytest.approx(conf(c, f, la), rel=1e-6)
    top1 = two(mining=False, pam=False)
    found1 = top1.candidates(fixed_output(top1, {"rgb": rgb, "flow": flow}, scores), settings=None,
                             options=CPMNInferOptions(top_classes=1, theta=0.5))
    assert [(c, s, e) for c, s, e, _ in found1] == [(0, 1, 3), (0, 2, 4)]


def test_detect_on_a_real_output_gives_segments_inside_the_video() -> None:
    torch.manual_seed(0)
    model = two().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 25, 16))
    found = model.candidates(out, settings=InferSettings())
    assert found
    assert {c for c, *_ in found} <= set(torch.topk(model.probabilities(out)[1][0], 2)[1].tolist())
    for _, start, end, score in found:
        assert 0 <= start < end <= 25
        assert 0.0 <= score <= 1.0
    with pytest.raises(ValueError, match="one video"):
        model.candidates(model(torch.randn(2, 25, 16)), settings=None)


# -- training -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"mining": False, "pam": False},  # table 3: original T-CAS
    {"mining": True, "pam": False},  # + mining T-CAS
    {"mining": True, "pam": True},  # + PAM (CPMN)
    {"stream": "flow", "erase_guide": "predictions"},
    {"resize": 8, "stream": "rgb"},
])
def test_each_switch_trains_one_step(kwargs: dict[str, object]) -> None:
    torch.manual_seed(0)
    model = small(**kwargs)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    x, mask = batch()
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    loss, parts = model.loss(model(x, mask), labels, mask, epoch=0)
    assert torch.isfinite(loss)
    assert ("cls_b" in parts) == model.mining
    assert ("pam" in parts) == model.use_pam
    opt.zero_grad()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    opt.step()
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


CLASSES = ["A", "B", "C"]
FPS, LENGTH = 25.0, 16


def planted(root: Path, n: int, seed: int, prefix: str) -> tuple[list[Path], dict, dict]:
    """Feature files with a class-specific direction added inside known snippet runs."""
    rng = np.random.default_rng(seed)
    directions = np.random.default_rng(7).normal(size=(len(CLASSES), 32)) * 2.0
    paths, videos, gt = [], {}, {}
    for i in range(n):
        t = int(rng.integers(30, 45))
        x = rng.normal(size=(t, 32)).astype(np.float32)
        c = int(rng.integers(len(CLASSES)))
        first = int(rng.integers(3, t - 12))
        length = int(rng.integers(5, 9))
        x[first : first + length] += directions[c]
        name = f"{prefix}_{i:03d}"
        grid = SnippetGrid(fps=FPS, n_frames=t * LENGTH, length=LENGTH, stride=LENGTH)
        save_npy(root / f"{name}.npy", x)
        write_json(root / f"{name}.json", {"shape": list(x.shape), "grid": grid.to_dict(),
                                           "extractor": "synthetic",
                                           "streams": {"rgb": [0, 16], "flow": [16, 32]}})
        paths.append(root / f"{name}.npy")
        subset = "validation" if prefix == "tr" else "test"
        videos[name] = {"labels": [CLASSES[c]], "subset": subset,
                        "split": "train" if prefix == "tr" else "test"}
        span = [first * LENGTH / FPS, (first + length) * LENGTH / FPS]
        gt[name] = {"subset": subset, "annotations": [{"segment": span, "label": CLASSES[c]}]}
    return paths, videos, gt


@pytest.mark.slow
def test_short_training_on_planted_features(tmp_path: Path) -> None:
    """Two streams (the sidecars' ranges) trained by the loop, localised by ``detect``."""
    tr, tr_videos, tr_gt = planted(tmp_path, 24, 1, "tr")
    te, te_videos, te_gt = planted(tmp_path, 9, 2, "te")
    write_json(tmp_path / "index.json", {"dataset": "toy", "classes": CLASSES,
                                         "videos": {**tr_videos, **te_videos}})
    write_json(tmp_path / "gt.json", {"database": {**tr_gt, **te_gt}})
    log = train(tmp_path / "index.json", tr, tmp_path / "model.pt", tmp_path / "train.json",
                model="cpmn", model_args={"hidden": 32, "window": 16},
                settings=TrainSettings(epochs=30, batch_size=8, lr=1e-3, weight_decay=0.0,
                                       max_seqlen=32, seed=0),
                device="cpu")
    parts = log["loss_parts"]
    assert log["model_args"]["streams"] == {"rgb": [0, 16], "flow": [16, 32]}
    assert set(parts) == {f"{s}.{p}" for s in ("rgb", "flow") for p in ("cls_a", "cls_b", "pam",
                                                                          "l2")}
    assert log["loss"][-1] < 0.7 * log["loss"][0]  # the λ·L2 terms shrink slowly
    for s in ("rgb", "flow"):
        assert parts[f"{s}.cls_a"][-1] < 0.3 * parts[f"{s}.cls_a"][0]
        assert parts[f"{s}.pam"][-1] < 0.8 * parts[f"{s}.pam"][0]
        assert parts[f"{s}.cls_b"][-1] < parts[f"{s}.cls_b"][0]  # B sees what A leaves
    infer(tmp_path / "model.pt", te, tmp_path / "det.json", tmp_path / "cas",
          settings=InferSettings(cas_thresholds=(0.2,), nms="hard", nms_iou=0.3), device="cpu")
    result = evaluate(tmp_path / "gt.json", tmp_path / "det.json", subset="test", tious=[0.3])
    assert result["mAP"][0] > 0.5, result


# -- configuration ------------------------------------------------------------------------------


def test_config_is_valid_and_builds() -> None:
    config = yaml.safe_load((ROOT / "pipeline/config/models/cpmn.yaml").read_text())
    schema = yaml.safe_load((ROOT / "pipeline/schemas/model.schema.yaml").read_text())
    jsonschema.validate(config, schema)
    assert config["name"] == "cpmn"
    for block in [config, *config["datasets"].values()]:
        assert {f.name for f in fields(TrainSettings)} >= set(block.get("train", {}))
        infer = block.get("infer", {})
        assert {f.name for f in fields(InferSettings)} >= set(infer) - {"model"}
        args = {**config["args"], **block.get("args", {})}
        model = build_model("cpmn", in_dim=2048, num_classes=4, **args)
        assert isinstance(model, CPMN)
        # the model's own inference knobs are its InferOptions
        CPMNInferOptions(**{**config["infer"]["model"], **infer.get("model", {})})
    train_block = config["train"]
    # whole videos (§3.4): no crop shorter than a THUMOS14 video; the CCM samples them itself
    assert train_block["batch_size"] == 16
    assert train_block["max_seqlen"] >= 10000
    assert "max_seqlen" not in config["datasets"]["activitynet13"].get("train", {})
    assert (config["args"]["ccm_sampling"], config["args"]["levels"]) == ("sparse", 4)
    assert (config["args"]["zeta"], config["args"]["l2_weight"]) == (0.4, 0.0025)
    assert config["infer"]["cas_thresholds"] == [0.2]
    assert config["datasets"]["activitynet13"]["args"]["resize"] == 64


def test_ablations_are_table_3_rows_and_each_trains() -> None:
    config = yaml.safe_load((ROOT / "pipeline/config/models/cpmn.yaml").read_text())
    assert list(config["ablations"])[:3] == ["Original T-CAS", "+ Mining T-CAS", "+ PAM"]
    # the earlier readings are rows of their own, not the default
    extra = {name: v for name, v in config["ablations"].items() if "earlier reading" in name}
    assert [v.get("args") for v in extra.values()] == [{"levels": 3}, {"ccm_sampling": "all"}]
    assert [v.get("train") for v in extra.values()] == [None, {"max_seqlen": 64}]
    switches = [(False, False), (True, False), (True, True)]
    torch.manual_seed(0)
    x, mask = batch()
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    table3 = list(config["ablations"].items())[:3]
    for (name, variant), (mining, pam) in zip(table3, switches, strict=True):
        assert set(variant) <= {"args", "train", "infer"}
        args = {**config["args"], **variant.get("args", {}), **SMALL}
        model = build_model("cpmn", in_dim=16, num_classes=3, streams=STREAMS, **args)
        assert (model.mining, model.use_pam) == (mining, pam), name
        total, parts = model.loss(model(x, mask), labels, mask, epoch=0)
        assert ("rgb.cls_b" in parts) == mining
        assert ("flow.pam" in parts) == pam
        total.backward()
        assert all(p.grad is not None for p in model.parameters()), name


def test_stream_columns_come_from_the_sidecar_ranges() -> None:
    """With recorded stream ranges (e.g. 16 RGB + 48 flow columns), ``stream`` picks them, not
    the halves; an unknown stream name is an error."""
    from wtal.models import build_model

    net = build_model("cpmn", in_dim=64, num_classes=3, stream="flow", hidden=8,
                      streams={"rgb": [0, 16], "flow": [16, 64]})
    assert net.columns == {"flow": (16, 64)}
    assert build_model("cpmn", in_dim=64, num_classes=3, stream="flow", hidden=8).columns == {
        "flow": (32, 64)}
    both = build_model("cpmn", in_dim=64, num_classes=3, hidden=8,
                       streams={"rgb": [0, 16], "flow": [16, 64]})
    assert both.columns == {"rgb": (0, 16), "flow": (16, 64)}
    assert [n.classifier_a.convs[0].in_channels for n in both.nets.values()] == [16, 48]
    assert stream_columns("concat", 64, {"rgb": [0, 16], "flow": [16, 64]}) == {"all": (0, 64)}
    assert stream_columns("both", 64, None) == {"all": (0, 64)}
    with pytest.raises(ValueError, match="the features have streams"):
        build_model("cpmn", in_dim=64, num_classes=3, stream="flow", hidden=8,
                    streams={"audio": [0, 64]})


def test_training_without_stream_ranges_says_so(tmp_path, caplog) -> None:
    """Features without recorded streams: a one-stream CPMN uses all columns, and says so."""
    import logging

    import torch
    from test_train_infer import CLASSES, make_split

    from wtal.train import TrainSettings, train
    from wtalio import write_json

    paths, videos, _ = make_split(tmp_path, 4, 0, "tr")
    write_json(tmp_path / "index.json", {"dataset": "toy", "classes": CLASSES, "videos": videos})
    with caplog.at_level(logging.WARNING, logger="wtal.train"):
        train(tmp_path / "index.json", paths, tmp_path / "m.pt", tmp_path / "t.json",
              model="cpmn", model_args={"stream": "rgb", "hidden": 8},
              settings=TrainSettings(epochs=1, batch_size=4), device="cpu")
    assert "record no stream column ranges" in caplog.text
    ckpt = torch.load(tmp_path / "m.pt", weights_only=False)
    assert ckpt["model_args"]["stream"] == "both"
    assert ckpt["model_args"]["streams"] is None
