"""ASSG (wtal/models/assg.py): the growing rule (Eq. 1) on hand-made heatmaps, the seeding loss
(Eq. 4), SAP (Eq. 2-3), the classification loss (Eq. 5), seeds, the alternation of Algorithm 1,
independent streams and their fusion (Eq. 6), detection, pretrain + state_dict round trip, the
table 1 / 2 switches and the config file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import torch
import yaml

from wtal.infer import InferSettings
from wtal.models import build_model, list_models
from wtal.models.assg import (
    ASSG,
    ASSGOutput,
    ASSGStreamOutput,
    classification_loss,
    grow_seeds,
    masked_minmax,
    sap_weights,
    seeding_loss,
    self_adaptive_pool,
    shot_change_seeds,
)
from wtal.models.base import PretrainInputs
from wtal.train import TrainSettings

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"hidden": 16, "seed_hidden": 16, "seed_dropout": 0.0}


pytestmark = pytest.mark.usefixtures("one_thread")


def make(**kwargs: Any) -> ASSG:
    torch.manual_seed(0)
    model = build_model("assg", in_dim=kwargs.pop("in_dim", 8), num_classes=kwargs.pop("C", 3),
                        **{**SMALL, **kwargs})
    assert isinstance(model, ASSG)
    return model


# ---- Eq. 1: growing ---------------------------------------------------------------------------


def heat_of(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows).unsqueeze(0)  # (1, K, T)


def test_growing_rule_on_a_hand_made_heatmap() -> None:
    # K = 3 (background, class 1, class 2), T = 10
    heat = heat_of([
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.99, 0.00, 0.00, 0.995, 0.999],  # background
        [0.995, 0.99, 0.5, 0.999, 0.995, 0.0, 0.999, 0.995, 0.0, 0.0],  # class 1
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.0, 0.0],  # class 2
    ])
    seeds = torch.zeros(1, 3, 10, dtype=torch.bool)
    seeds[0, 1, 3] = True  # class 1 seed at t = 3
    seeds[0, 0, 9] = True  # background seed at t = 9
    thr = torch.tensor([0.99, 0.99, 0.99])
    mask = torch.ones(1, 10, dtype=torch.bool)
    got = grow_seeds(heat, seeds, thr, mask)[0]
    # class 1 grows from 3 to 4 (0.995), stops at 2 (0.5 < θ) and 5 (below θ); 0, 1, 6, 7 are
    # above θ but not connected to the seed
    assert got[1].nonzero().flatten().tolist() == [3, 4]
    # background: the seed at 9 grows to 8, and 5 is not connected
    assert got[0].nonzero().flatten().tolist() == [8, 9]
    assert not got[2].any()
    # a lower threshold for class 1 lets it cross t = 2 and reach 0, 1 (but not 5: its argmax
    # is the background)
    got = grow_seeds(heat, seeds, torch.tensor([0.99, 0.4, 0.99]), mask)[0]
    assert got[1].nonzero().flatten().tolist() == [0, 1, 2, 3, 4]


def test_growing_needs_the_class_to_be_the_argmax() -> None:
    # unnormalised heatmaps: class 1 is above θ at t = 1..3, but class 2 is higher at t = 2
    heat = heat_of([
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [0.999, 0.995, 0.995, 0.995, 0.0],
        [0.0, 0.0, 0.999, 0.0, 0.0],
    ])
    seeds = torch.zeros(1, 3, 5, dtype=torch.bool)
    seeds[0, 1, 0] = True
    seeds[0, 2, 4] = True  # a seed is labelled even where the rule would not hold
    got = grow_seeds(heat, seeds, torch.full((3,), 0.99), torch.ones(1, 5, dtype=torch.bool))[0]
    assert got[1].nonzero().flatten().tolist() == [0, 1]
    assert got[2].nonzero().flatten().tolist() == [4]


def test_growing_is_class_by_class_and_respects_padding() -> None:
    # two classes seeded at the same place grow independently; a location may get both labels
    heat = heat_of([
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.999, 0.999, 0.999, 0.999, 0.999, 0.999],
        [0.999, 0.999, 0.999, 0.999, 0.999, 0.999],
    ])  # ties: argmax is class 1 everywhere
    seeds = torch.zeros(1, 3, 6, dtype=torch.bool)
    seeds[0, 1, 2] = True
    seeds[0, 2, 2] = True
    mask = torch.tensor([[True, True, True, True, False, False]])
    got = grow_seeds(heat, seeds, torch.full((3,), 0.99), mask)[0]
    assert got[1].nonzero().flatten().tolist() == [0, 1, 2, 3]  # stops at the padding
    assert got[2].nonzero().flatten().tolist() == [2]  # never the argmax: no growth
    # batched: each video grows on its own
    both = grow_seeds(torch.cat([heat, heat]), torch.cat([seeds, torch.zeros_like(seeds)]),
                      torch.full((3,), 0.99), torch.cat([mask, mask]))
    torch.testing.assert_close(both[0], got)
    assert not both[1].any()


# ---- Eq. 4, Eq. 2-3, Eq. 5 --------------------------------------------------------------------


def test_seeding_loss_is_eq4_and_ignores_unlabelled_locations() -> None:
    heat = torch.softmax(torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(0)), dim=1)
    labelled = torch.zeros(2, 3, 7, dtype=torch.bool)
    labelled[0, 1, 2] = labelled[0, 1, 3] = labelled[1, 0, 6] = labelled[1, 2, 0] = True
    expected = -(heat[0, 1, 2].log() + heat[0, 1, 3].log() + heat[1, 0, 6].log()
                 + heat[1, 2, 0].log()) / 4
    torch.testing.assert_close(seeding_loss(heat, labelled), expected)
    changed = heat.clone()
    changed[~labelled] = 1e-3  # anything at unlabelled locations
    torch.testing.assert_close(seeding_loss(changed, labelled), expected)
    # gradient only at labelled locations
    h = heat.clone().requires_grad_(True)
    seeding_loss(h, labelled).backward()
    assert (h.grad[~labelled] == 0).all()
    assert (h.grad[labelled] < 0).all()
    # nothing labelled: 0, still differentiable
    zero = seeding_loss(h, torch.zeros_like(labelled))
    assert zero.item() == 0.0
    assert zero.requires_grad


def test_sap_weights_sum_to_one_over_valid_snippets() -> None:
    act = torch.randn(2, 4, 9, generator=torch.Generator().manual_seed(1)) * 20
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 5:] = False
    w = sap_weights(act, mask)
    torch.testing.assert_close(w.sum(dim=-1), torch.ones(2, 4))
    assert (w[1, :, 5:] == 0).all()
    # Eq. 3 by hand: a softmax over time of the summed activations
    torch.testing.assert_close(w[0, 2], torch.softmax(act[0, 2], dim=0))
    torch.testing.assert_close(w[1, 0, :5], torch.softmax(act[1, 0, :5], dim=0))


def test_pooling_by_hand() -> None:
    heat = torch.tensor([[[0.1, 0.9, 0.5, 0.7]]])  # (1, 1, 4)
    act = torch.tensor([[[0.0, 1.0, 0.0, 50.0]]])
    mask = torch.tensor([[True, True, True, False]])
    w = torch.softmax(torch.tensor([0.0, 1.0, 0.0]), dim=0)
    sap = self_adaptive_pool(heat, act, mask, pooling="sap")
    torch.testing.assert_close(sap[0, 0], (w * heat[0, 0, :3]).sum())  # Eq. 2
    gap = self_adaptive_pool(heat, act, mask, pooling="gap")
    torch.testing.assert_close(gap[0, 0], torch.tensor(0.5))
    gmp = self_adaptive_pool(heat, act, mask, pooling="gmp")
    torch.testing.assert_close(gmp[0, 0], torch.tensor(0.9))
    with pytest.raises(ValueError, match="pooling"):
        self_adaptive_pool(heat, act, mask, pooling="max")


def test_classification_loss_is_eq5() -> None:
    pooled = torch.tensor([[0.5, 0.25, 0.9], [0.1, 0.2, 0.3]])
    labels = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    expected = (-(np.log(0.5) + np.log(0.25)) - np.log(0.3)) / 2
    assert classification_loss(pooled, labels).item() == pytest.approx(expected, rel=1e-6)


def test_masked_minmax_and_shot_change_seeds() -> None:
    x = torch.tensor([[[1.0], [3.0], [2.0], [100.0]]])
    mask = torch.tensor([[True, True, True, False]])
    torch.testing.assert_close(masked_minmax(x, mask)[0, :, 0], torch.tensor([0.0, 1.0, 0.5, 0.0]))
    # two shots of distinct directions: the two snippets around the change are background seeds
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=8), rng.normal(size=8)
    seq = np.stack([a + 0.01 * rng.normal(size=8) for _ in range(6)]
                   + [b + 0.01 * rng.normal(size=8) for _ in range(6)]).astype(np.float32)
    feats = torch.from_numpy(seq).unsqueeze(0)
    seeds = shot_change_seeds(feats, torch.ones(1, 12, dtype=torch.bool))
    assert seeds[0].nonzero().flatten().tolist() == [5, 6]


# ---- the model --------------------------------------------------------------------------------


def test_registered_and_shapes() -> None:
    assert "assg" in list_models()
    model = make(in_dim=8, C=3)
    x = torch.randn(2, 13, 8)
    mask = torch.ones(2, 13, dtype=torch.bool)
    mask[1, 9:] = False
    out = model(x, mask)
    assert out.cas.shape == (2, 13, 3)
    assert out.video_logits.shape == (2, 3)
    assert out.seed_cas.shape == (2, 13, 3)
    assert len(out.streams) == 1
    assert out.streams[0].features.shape == (2, 13, 16)
    assert out.streams[0].heat_logits.shape == (2, 13, 4)  # C + 1 heatmaps
    assert out.shots is not None
    assert out.shots.shape == (2, 13)
    cas, scores = model.probabilities(out)
    assert cas.shape == (2, 13, 3)
    assert scores.shape == (2, 3)
    assert ((cas >= 0) & (cas <= 1)).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    assert (cas[1, 9:] == 0).all()
    heat = torch.softmax(out.streams[0].heat_logits, dim=-1)
    torch.testing.assert_close(cas[0], heat[0, :, 1:])
    assert model.eval()(x, mask).shots is None  # seeds are a training-time thing
    # SSG's architecture (§3.2.2): k = 1 convolutions of `hidden` filters, C + 1 heatmaps
    ssg = model.ssg["all"]
    assert [ssg.conv1.kernel_size, ssg.conv2.kernel_size, ssg.head.kernel_size] == [(1,)] * 3
    assert ssg.conv2.out_channels == 16
    assert ssg.head.out_channels == 4
    assert ssg.head.in_channels == 32  # the pair of opposite ReLUs


def test_invalid_switches_are_rejected() -> None:
    for bad in ({"pooling": "max"}, {"modules": "all"}, {"bg_seeds": "saliency"},
                {"fusion_lambda": 1.5}, {"streams": {"rgb": [0, 20]}}, {"video_scores": "sap"}):
        with pytest.raises(
                ValueError, match=r"pooling|modules|bg_seeds|fusion_lambda|stream|video_scores"):
            make(**bad)


def test_video_scores_are_the_seed_networks_or_the_larger_with_sap() -> None:
    x = torch.randn(2, 13, 8)
    mask = torch.ones(2, 13, dtype=torch.bool)
    mask[1, 10:] = False
    seed = make(in_dim=8, C=3).eval()  # default: the seed network's classification
    with torch.no_grad():
        seed.seed_net.classifier.bias[0] -= 20.0  # class 0: the seed network says no
        out = seed(x, mask)
        torch.testing.assert_close(out.video_logits, seed.seed_net(x * mask.unsqueeze(-1), mask)
                                   .video_logits)
        both = make(in_dim=8, C=3, video_scores="max").eval()
        both.load_state_dict(seed.state_dict())
        out_max = both(x, mask)
        sap = torch.logit(both._fused_video_probs(out_max.streams, mask).clamp(1e-6, 1 - 1e-6))
    torch.testing.assert_close(out_max.video_logits, torch.maximum(out.video_logits, sap))
    assert (sap[:, 0] > out.video_logits[:, 0]).all()  # where SAP says more, "max" takes it
    torch.testing.assert_close(out_max.cas, out.cas)  # the heatmaps do not depend on it


def stream_out(logits: torch.Tensor, feats: torch.Tensor | None = None) -> ASSGStreamOutput:
    if feats is None:
        feats = torch.ones(*logits.shape[:2], 4)
    return ASSGStreamOutput(features=feats, heat_logits=logits)


def test_seeds_of_labelled_classes_and_background() -> None:
    model = make(in_dim=8, C=3)
    seed_cas = torch.zeros(1, 6, 3)
    seed_cas[0, :, 0] = torch.tensor([0.0, 2.0, 10.0, 9.0, 0.0, 0.0])  # peaks at 2, 3
    seed_cas[0, :, 1] = torch.tensor([10.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # class 1: not labelled
    shots = torch.tensor([[False, False, True, False, True, True]])
    mask = torch.tensor([[True] * 5 + [False]])
    out = ASSGOutput(cas=seed_cas, video_logits=torch.zeros(1, 3), streams=(),
                     seed_cas=seed_cas, shots=shots, mask=mask)
    seeds = model.seeds_of(out, torch.tensor([[1.0, 0.0, 0.0]]))[0]
    assert seeds[1].nonzero().flatten().tolist() == [2, 3]  # min-max ≥ 0.8
    assert not seeds[2].any()
    assert not seeds[3].any()
    assert seeds[0].nonzero().flatten().tolist() == [4]  # shots minus foreground and padding
    model.bg_seeds = "shots+cas"  # adds snippets with low CAS for every labelled class
    seeds = model.seeds_of(out, torch.tensor([[1.0, 0.0, 0.0]]))[0]
    assert seeds[0].nonzero().flatten().tolist() == [0, 4]


def test_alternating_steps_update_what_algorithm_1_says() -> None:
    model = make(in_dim=8, C=3)
    x = torch.randn(2, 12, 8)
    mask = torch.ones(2, 12, dtype=torch.bool)
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    ssg = model.ssg["all"]
    kinds = []
    for step in range(4):
        model.zero_grad(set_to_none=True)
        out = model(x, mask)
        loss, parts = model.loss(out, labels, mask, epoch=0, step=step)
        loss.backward()
        assert set(parts) == {"seed", "class", "seed_step", "seeded", "grown"}
        assert parts["grown"] >= parts["seeded"] > 0
        kinds.append(parts["seed_step"])
        assert loss.item() == pytest.approx(parts["seed"] if step % 2 == 0 else parts["class"])
        assert ssg.conv1.weight.grad is not None
        assert ssg.conv2.weight.grad is not None
        if step % 2 == 0:  # L_seed: all of SSG
            assert ssg.head.weight.grad is not None
        else:  # L_class: the shared feature map only (line 17)
            assert ssg.head.weight.grad is None
            assert ssg.head.bias.grad is None
        assert all(p.grad is None for p in model.seed_net.parameters())  # frozen
    assert kinds == [1.0, 0.0, 1.0, 0.0]
    # table 2 "SSG": seeding loss only, every step
    only = make(in_dim=8, C=3, modules="ssg")
    for _ in range(2):
        _, parts = only.loss(only(x, mask), labels, mask, epoch=0)
        assert parts["seed_step"] == 1.0
    # "CAS": nothing to fit, a zero loss that back-propagates to nothing
    cas = make(in_dim=8, C=3, modules="cas")
    out = cas(x, mask)
    assert out.streams == ()
    loss, parts = cas.loss(out, labels, mask, epoch=0)
    loss.backward()
    assert loss.item() == 0.0
    assert parts == {"cas_only": 1.0}
    assert all(p.grad is None for p in cas.parameters())
    torch.testing.assert_close(cas.probabilities(out)[0], torch.sigmoid(out.seed_cas))


def test_classifier_erases_confident_regions() -> None:
    # one stream; H of class 1 is above θ_a at t = 0..2, which are erased: L_class (Eq. 5) sees
    # Ĥ, the softmax over the foreground channels, only at 3..5
    model = make(in_dim=8, C=2, hidden=4)
    ssg = model.ssg["all"]
    with torch.no_grad():
        ssg.head.weight.zero_()
        ssg.head.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))  # background logit 1
        ssg.head.weight[1, :4, 0] = 1.0  # class 1 logit = Σ ReLU(F)
    feats = torch.tensor([[[3.0] * 4] * 3 + [[0.1] * 4] * 3])  # (1, 6, 4)
    out = stream_out(ssg.heat_logits(feats), feats)
    mask = torch.ones(1, 6, dtype=torch.bool)
    labelled = torch.zeros(1, 3, 6, dtype=torch.bool)
    _, l_class = model.stream_losses(ssg, out, labelled, torch.tensor([[1.0, 0.0]]), mask)
    heat = torch.softmax(out.heat_logits, dim=-1)[0, :, 1]  # (6,) H of class 1
    assert (heat[:3] > 0.4).all()
    assert (heat[3:] <= 0.4).all()
    act = torch.tensor([0.0, 0.0, 0.0, 0.4, 0.4, 0.4])  # erased: zero features
    kept = 1.0 / (1.0 + float(np.exp(-0.4)))  # softmax of the foreground logits (0.4, 0)
    eroded = torch.tensor([0.5] * 3 + [kept] * 3)  # erased: softmax of the bias (0, 0)
    sap = (torch.softmax(act, dim=0) * eroded).sum()
    torch.testing.assert_close(l_class, -sap.log())
    # the erased snippets get no gradient through the features: only the kept ones do
    f = feats.clone().requires_grad_(True)
    _, l_class = model.stream_losses(ssg, stream_out(ssg.heat_logits(f), f), labelled,
                                     torch.tensor([[1.0, 0.0]]), mask)
    l_class.backward()
    assert (f.grad[0, :3] == 0).all()
    assert (f.grad[0, 3:] != 0).any()


def test_streams_are_independent_and_fused_with_lambda() -> None:
    streams = {"rgb": [0, 5], "flow": [5, 8]}
    model = make(in_dim=8, C=2, streams=streams)
    assert set(model.ssg) == {"rgb", "flow"}
    assert model.ssg["rgb"].conv1.in_channels == 5
    assert model.ssg["flow"].conv1.in_channels == 3
    assert model.fusion == {"rgb": pytest.approx(0.3), "flow": pytest.approx(0.7)}
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 10, 8, generator=g)
    mask = torch.ones(2, 10, dtype=torch.bool)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])

    other = x.clone()
    other[..., 5:] = torch.randn(2, 10, 3, generator=g) * 5  # only the flow columns change
    # the seeds come from all columns (one seed network, shot changes of all features): pin
    # with the seeds pinned, the rgb stream's gradients never depend on the flow features
    out_x, out_o = model(x, mask), model(other, mask)
    pinned = out_o._replace(seed_cas=out_x.seed_cas, shots=out_x.shots)
    model.zero_grad(set_to_none=True)
    model.loss(out_x, labels, mask, epoch=0)[0].backward()
    ref = [p.grad.clone() for p in model.ssg["rgb"].parameters()]
    flow_ref = [p.grad.clone() for p in model.ssg["flow"].parameters()]
    model.zero_grad(set_to_none=True)
    model.loss(pinned, labels, mask, epoch=0)[0].backward()
    for a, b in zip(ref, model.ssg["rgb"].parameters(), strict=True):
        torch.testing.assert_close(a, b.grad)
    assert any(not torch.allclose(a, b.grad) for a, b in
               zip(flow_ref, model.ssg["flow"].parameters(), strict=True))
    # Eq. 6: the fused heatmap is λ·H_rgb + (1 − λ)·H_flow
    out = model.eval()(x, mask)
    h_rgb = torch.softmax(out.streams[0].heat_logits, dim=-1)[..., 1:]
    h_flow = torch.softmax(out.streams[1].heat_logits, dim=-1)[..., 1:]
    torch.testing.assert_close(model.probabilities(out)[0], 0.3 * h_rgb + 0.7 * h_flow)


def test_detect_scores_runs_of_the_fused_heatmap_by_eq6() -> None:
    model = make(in_dim=8, C=2).eval()
    probs = torch.full((1, 8, 3), 0.0)
    probs[0, :, 0] = 1.0
    probs[0, 2:5, 1] = torch.tensor([0.6, 0.9, 0.6])
    probs[0, 2:5, 0] = 1.0 - probs[0, 2:5, 1]
    logits = probs.clamp(min=1e-9).log()
    out = ASSGOutput(cas=torch.zeros(1, 8, 2), video_logits=torch.tensor([[3.0, -3.0]]),
                     streams=(stream_out(logits),), seed_cas=torch.zeros(1, 8, 2), shots=None,
                     mask=torch.ones(1, 8, dtype=torch.bool))
    settings = InferSettings(class_threshold=0.5, cas_thresholds=(0.5, 0.8),
                             video_score_weight=0.0)
    got = sorted(model.candidates(out, settings=settings))
    assert [(c, s, e) for c, s, e, _ in got] == [(0, 2.0, 5.0), (0, 3.0, 4.0)]
    assert got[0][3] == pytest.approx(0.7, rel=1e-5)  # mean of 0.6, 0.9, 0.6
    assert got[1][3] == pytest.approx(0.9, rel=1e-5)
    # the video score is added with its weight; class 1 (score σ(−3)) is not localised
    weighted = model.candidates(out, settings=InferSettings(class_threshold=0.5,
                                                        cas_thresholds=(0.8,),
                                                        video_score_weight=0.5))
    assert weighted == [(0, 3.0, 4.0, pytest.approx(0.9 + 0.5 / (1 + np.exp(-3.0)), rel=1e-5))]


def planted(n: int, t: int, d: int, c: int, seed: int
            ) -> tuple[list[np.ndarray], np.ndarray, list[tuple[int, int, int]]]:
    """Videos of noise with one action of class k at [s, e), shown by a class direction added to
    the features (so shot changes fall at the action's ends)."""
    dirs = np.random.default_rng(100).normal(size=(c, d)) * 2  # the same in every set
    rng = np.random.default_rng(seed)
    feats, labels, spans = [], np.zeros((n, c), np.float32), []
    for i in range(n):
        k = i % c
        s = int(rng.integers(2, t // 2))
        e = s + int(rng.integers(4, t // 3))
        x = rng.normal(size=d) + rng.normal(size=(t, d)) * 0.3  # one scene
        x[s:e] += dirs[k]
        feats.append(x.astype(np.float32))
        labels[i, k] = 1.0
        spans.append((k, s, e))
    return feats, labels, spans


def test_pretrain_trains_freezes_and_survives_a_state_dict_round_trip() -> None:
    feats, labels, _ = planted(6, 24, 8, 2, seed=0)
    model = make(in_dim=8, C=2, seed_epochs=3, seed_batch_size=4, seed_lr=1e-2)
    before = [p.detach().clone() for p in model.seed_net.parameters()]
    ssg_before = [p.detach().clone() for p in model.ssg.parameters()]
    pretrained = model.pretrain(PretrainInputs(
        videos=feats, labels=labels, trimmed=None, settings=TrainSettings(max_seqlen=16),
        rng=np.random.default_rng(0), device=torch.device("cpu")))
    log = pretrained.log
    assert pretrained.reference is None  # nothing but the seed network's own weights
    assert list(model.frozen_modules()) == [model.seed_net]
    assert log["seed_net"]["epochs"] == 3
    assert len(log["seed_net"]["loss"]) == 3
    assert "not used" in log["trimmed"]
    assert all(not torch.equal(a, b) for a, b in zip(before, model.seed_net.parameters(),
                                                     strict=True))
    assert all(torch.equal(a, b) for a, b in zip(ssg_before, model.ssg.parameters(),
                                                 strict=True))
    model.train()
    assert not model.seed_net.training  # frozen: dropout off while the SSG trains
    groups = model.param_groups(1e-4)
    ids = {id(p) for g in groups for p in g["params"]}
    assert ids == {id(p) for p in model.ssg.parameters()}
    assert all(g["lr"] == 1e-4 for g in groups)
    # round trip: rebuild from the same kwargs, strict load, same outputs
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert any(k.startswith("seed_net.") for k in state)
    rebuilt = make(in_dim=8, C=2, seed_epochs=3, seed_batch_size=4, seed_lr=1e-2)
    rebuilt.load_state_dict(state, strict=True)
    x = torch.from_numpy(np.stack(feats[:2]))
    a, b = model.eval()(x), rebuilt.eval()(x)
    torch.testing.assert_close(a.cas, b.cas)
    torch.testing.assert_close(a.video_logits, b.video_logits)
    torch.testing.assert_close(a.seed_cas, b.seed_cas)


# ---- switches and config ----------------------------------------------------------------------


def load_config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "pipeline/config/models/assg.yaml").read_text())


def test_config_matches_paper_and_validates() -> None:
    cfg = load_config()
    schema = yaml.safe_load((ROOT / "pipeline/schemas/model.schema.yaml").read_text())
    jsonschema.validate(cfg, schema)
    args, train = cfg["args"], cfg["train"]
    assert (args["hidden"], args["theta_g_fg"], args["theta_g_bg"], args["theta_a"]) == (
        512, 0.99, 0.99, 0.4)
    assert args["fusion_lambda"] == 0.3
    assert args["pooling"] == "sap"
    assert args["modules"] == "assg"
    assert (train["lr"], train["sampling"], train["num_segments"]) == (1e-4, "uniform", 400)
    assert train.get("optimizer", "adam") == "adam"
    assert list(cfg["ablations"]) == ["GMP", "GAP", "SAP", "CAS", "CAS w/ SSG",
                                      "CAS w/ SSG w/ classifier (ASSG)"]


@pytest.mark.parametrize("name", list(load_config()["ablations"]))
def test_every_ablation_builds_and_trains_one_step(name: str) -> None:
    cfg = load_config()
    args = {**cfg["args"], **cfg["ablations"][name].get("args", {}), **SMALL}
    torch.manual_seed(0)
    model = build_model("assg", in_dim=8, num_classes=3, **args)
    params = list(model.param_groups(1e-3)[0]["params"])
    opt = torch.optim.Adam(params, lr=1e-3)
    x = torch.randn(2, 12, 8)
    mask = torch.ones(2, 12, dtype=torch.bool)
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for step in range(2):
        out = model.train()(x, mask)
        loss, _ = model.loss(out, labels, mask, epoch=0, step=step)
        assert torch.isfinite(loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    cas, scores = model.probabilities(model.eval()(x, mask))
    assert cas.shape == (2, 12, 3)
    assert scores.shape == (2, 3)


@pytest.mark.slow
@pytest.mark.parametrize(("modules", "margin"), [("ssg", 0.3), ("assg", 0.15)])
def test_short_training_on_planted_features_localises(modules: str, margin: float) -> None:
    # the planted actions start and end with a feature change: the shot detector puts background
    # seeds on the actions' first and last snippets, so the low-CAS background seeds are added
    feats, labels, _ = planted(24, 32, 16, 3, seed=0)
    model = make(in_dim=16, C=3, seed_epochs=40, seed_batch_size=8, seed_lr=3e-3, hidden=32,
                 bg_seeds="shots+cas", modules=modules)
    model.pretrain(PretrainInputs(
        videos=feats, labels=labels, trimmed=None, settings=TrainSettings(),
        rng=np.random.default_rng(0), device=torch.device("cpu")))
    opt = torch.optim.Adam(model.param_groups(1e-3), lr=1e-3)
    x = torch.from_numpy(np.stack(feats))
    y = torch.from_numpy(labels)
    mask = torch.ones(x.shape[:2], dtype=torch.bool)
    model.train()
    grown, seeded = [], []
    for step in range(150):
        out = model(x, mask)
        loss, parts = model.loss(out, y, mask, epoch=0, step=step)
        grown.append(parts["grown"])
        seeded.append(parts["seeded"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if modules == "ssg":
        assert grown[-1] > seeded[-1]  # the seeds grew
    test, _, spans = planted(12, 32, 16, 3, seed=1)  # same class directions, new videos
    cas, scores = model.probabilities(model.eval()(torch.from_numpy(np.stack(test))))
    inside, outside = [], []
    for i, (k, s, e) in enumerate(spans):
        inside.append(cas[i, s:e, k].mean().item())
        outside.append(torch.cat([cas[i, :s, k], cas[i, e:, k]]).mean().item())
        assert scores[i].argmax().item() == k
    assert np.mean(inside) > np.mean(outside) + margin
