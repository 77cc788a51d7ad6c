"""Model registry and the CAS baseline: shapes, masking, backward, every registered model."""

import pytest
import torch

from wtal.models import build_model, list_models, register_model
from wtal.models.cas_baseline import temporal_pool


def test_registry_lists_and_rejects_duplicates() -> None:
    assert "cas_baseline" in list_models()
    with pytest.raises(ValueError, match="already registered"):
        register_model("cas_baseline")(lambda **_: torch.nn.Identity())
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        build_model("nope")


@pytest.mark.parametrize("name", list_models())
def test_every_model_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, in_dim=32, num_classes=3)
    x = torch.randn(2, 20, 32)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 12:] = False
    out = model(x, mask)
    assert out.cas.shape == (2, 20, 3)
    assert out.video_logits.shape == (2, 3)
    # every parameter reaches the outputs inference reads (ASSG: its video scores are the seed
    # network's, its CAS the SSG's heatmaps)
    (out.video_logits.sum() + out.cas.sum()).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_topk_pooling_ignores_padding() -> None:
    cas = torch.zeros(1, 8, 1)
    cas[0, :4, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    cas[0, 4:, 0] = 100.0  # padding: must not count
    mask = torch.tensor([[True] * 4 + [False] * 4])
    pooled = temporal_pool(cas, mask, pooling="topk", topk_ratio=0.5)
    assert pooled.item() == pytest.approx(3.5)  # mean of the top ceil(4*0.5)=2 valid values
    mean = temporal_pool(cas, mask, pooling="mean", topk_ratio=0.5)
    assert mean.item() == pytest.approx(2.5)


def test_padding_does_not_change_outputs_of_valid_part() -> None:
    torch.manual_seed(0)
    model = build_model("cas_baseline", in_dim=16, num_classes=2).eval()
    x = torch.randn(1, 10, 16)
    alone = model(x)
    padded = torch.cat([x, torch.randn(1, 5, 16) * 50], dim=1)
    mask = torch.tensor([[True] * 10 + [False] * 5])
    both = model(padded, mask)
    # the last valid snippet sees padding through the k=3 conv only at its border
    torch.testing.assert_close(both.cas[:, :8], alone.cas[:, :8])
