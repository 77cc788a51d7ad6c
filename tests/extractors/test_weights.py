"""Tests for extractors.weights: resolving, verifying and strictly loading checkpoints."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from extractors.i3d import InceptionI3d, init_random_
from extractors.weights import (
    WeightsError,
    build_weights_record,
    file_sha256,
    load_state_dict,
    load_strict,
    resolve_weights,
)


class Tiny(nn.Module):
    """A small conv + BN + linear model: # (B, 2, 4, 6, 6) -> (B, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 4, kernel_size=3)
        self.bn = nn.BatchNorm3d(4)
        self.head = nn.Linear(4 * 2 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))).flatten(1))


def randomised(seed: int) -> Tiny:
    """A Tiny model whose every parameter and BN statistic is random (eval mode)."""
    model = Tiny().eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(seed + 1)
            else:
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.1)
    return model


@pytest.fixture
def tiny_input() -> torch.Tensor:
    return torch.rand(2, 2, 4, 6, 6, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A Tiny state_dict saved with torch.save."""
    path = tmp_path / "src" / "tiny.pt"
    path.parent.mkdir()
    torch.save(randomised(1).state_dict(), path)
    return path


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_file_sha256(checkpoint: Path) -> None:
    assert file_sha256(checkpoint) == sha_of(checkpoint)
    assert file_sha256(str(checkpoint)) == sha_of(checkpoint)


def test_local_round_trip(checkpoint: Path, tiny_input: torch.Tensor) -> None:
    path = resolve_weights(checkpoint, sha256=sha_of(checkpoint).upper())
    assert path == checkpoint
    model = randomised(2)
    with torch.no_grad():
        assert not torch.allclose(model(tiny_input), randomised(1)(tiny_input))
        load_strict(model, load_state_dict(path), source=str(path))
        assert torch.equal(model(tiny_input), randomised(1)(tiny_input))
    assert int(model.bn.num_batches_tracked) == 2


def test_local_missing_or_bad_hash(tmp_path: Path, checkpoint: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        resolve_weights(missing)
    with pytest.raises(FileNotFoundError, match="src"):
        resolve_weights(checkpoint.parent)  # a folder is not a weights file
    with pytest.raises(WeightsError, match="sha256 mismatch") as info:
        resolve_weights(checkpoint, sha256="0" * 64)
    assert str(checkpoint) in str(info.value)
    assert checkpoint.exists()  # a local file is never deleted
    with pytest.raises(ValueError, match="64 hex"):
        resolve_weights(checkpoint, sha256="abc123")


def test_file_url_is_cached_and_reused(tmp_path: Path, checkpoint: Path) -> None:
    cache = tmp_path / "cache"
    digest = sha_of(checkpoint)
    path = resolve_weights(checkpoint.as_uri(), sha256=digest, cache_dir=cache)
    assert path == cache / "tiny.pt"
    assert path.read_bytes() == checkpoint.read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == ["tiny.pt"]  # no temporary left over
    checkpoint.unlink()  # a second call must not download again
    again = resolve_weights(checkpoint.as_uri(), sha256=digest, cache_dir=cache)
    assert again == path
    assert file_sha256(again) == digest
    # Without a hash the cached file is reused as well.
    assert resolve_weights(checkpoint.as_uri(), cache_dir=cache) == path


def test_file_url_with_wrong_hash_leaves_nothing(tmp_path: Path, checkpoint: Path) -> None:
    cache = tmp_path / "cache"
    wrong = "ab" * 32
    with pytest.raises(WeightsError) as info:
        resolve_weights(checkpoint.as_uri(), sha256=wrong, cache_dir=cache)
    message = str(info.value)
    assert "tiny.pt" in message
    assert wrong in message
    assert sha_of(checkpoint) in message
    assert not cache.exists() or list(cache.iterdir()) == []


def test_stale_cached_file_is_replaced(tmp_path: Path, checkpoint: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tiny.pt").write_bytes(b"truncated download")
    path = resolve_weights(checkpoint.as_uri(), sha256=sha_of(checkpoint), cache_dir=cache)
    assert path.read_bytes() == checkpoint.read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == ["tiny.pt"]


def test_url_without_hash_logs_it(
    tmp_path: Path, checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="extractors.weights"):
        path = resolve_weights(checkpoint.as_uri(), cache_dir=tmp_path / "cache")
    assert path.read_bytes() == checkpoint.read_bytes()
    assert sha_of(checkpoint) in caplog.text


def test_default_cache_dir_is_torch_hub(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    path = resolve_weights(checkpoint.as_uri(), sha256=sha_of(checkpoint))
    assert path == tmp_path / "hub" / "checkpoints" / "tiny.pt"


def test_missing_and_unexpected_keys_are_named() -> None:
    model = randomised(2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sd = dict(randomised(1).state_dict())
    del sd["conv.weight"]
    sd["extra.weight"] = torch.zeros(1)
    sd["head.bias"] = torch.zeros(5)
    with pytest.raises(WeightsError) as info:
        load_strict(model, sd, source="my-ckpt.pt")
    message = str(info.value)
    assert message.startswith("my-ckpt.pt")
    assert "1 missing, 1 unexpected, 1 shape-mismatched" in message
    assert "conv.weight" in message
    assert "extra.weight" in message
    assert "head.bias: checkpoint (5,) vs model (3,)" in message
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # left unchanged


def test_only_first_ten_keys_are_listed() -> None:
    sd = dict(randomised(1).state_dict())
    for i in range(13):
        sd[f"extra{i:02d}.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="13 unexpected") as info:
        load_strict(Tiny(), sd, source="x")
    message = str(info.value)
    assert "extra09.weight" in message
    assert "extra10.weight" not in message
    assert "(+3 more)" in message


def test_missing_num_batches_tracked_is_tolerated(tiny_input: torch.Tensor) -> None:
    sd = {k: v for k, v in randomised(1).state_dict().items() if "num_batches_tracked" not in k}
    model = randomised(2)
    load_strict(model, sd, source="old.pt")
    with torch.no_grad():
        assert torch.equal(model(tiny_input), randomised(1)(tiny_input))
    assert int(model.bn.num_batches_tracked) == 3  # kept the model's own value
    del sd["bn.running_var"]
    with pytest.raises(WeightsError, match=r"bn\.running_var"):
        load_strict(randomised(2), sd, source="old.pt")


def test_container_key_and_module_prefix(tmp_path: Path) -> None:
    state = randomised(1).state_dict()
    wrapped = tmp_path / "wrapped.pyth"
    torch.save({"model_state": state, "epoch": 3}, wrapped)
    loaded = load_state_dict(wrapped, container_key="model_state")
    assert list(loaded) == list(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    with pytest.raises(WeightsError, match="'state_dict'") as info:
        load_state_dict(wrapped, container_key="state_dict")
    assert "model_state" in str(info.value)  # lists what is there
    with pytest.raises(WeightsError, match="container_key"):
        load_state_dict(wrapped)

    parallel = tmp_path / "dp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, parallel)
    loaded = load_state_dict(parallel, container_key="state_dict")
    assert list(loaded) == list(state)
    model = Tiny()
    load_strict(model, loaded, source=str(parallel))
    assert torch.equal(model.conv.weight, state["conv.weight"])


def test_unsafe_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pt"
    torch.save({"weight": torch.zeros(1), "obj": Tiny}, path)  # a class: not weights-only
    with pytest.raises(WeightsError, match="weights_only"):
        load_state_dict(path)


def test_build_weights_record(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(checkpoint.parent)
    record = build_weights_record("https://example.org/tiny.pt", Path("tiny.pt"))
    assert record == {
        "source": "https://example.org/tiny.pt",
        "path": str(checkpoint.resolve()),
        "sha256": sha_of(checkpoint),
    }


@pytest.mark.parametrize("drop_num_batches_tracked", [False, True])
def test_i3d_checkpoint_round_trip(tmp_path: Path, drop_num_batches_tracked: bool) -> None:
    source = InceptionI3d()
    init_random_(source, seed=3)
    state = source.state_dict()
    if drop_num_batches_tracked:  # like checkpoints saved by older PyTorch
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "rgb_imagenet.pt"
    torch.save(state, path)

    target = InceptionI3d()
    init_random_(target, seed=4)
    load_strict(target, load_state_dict(resolve_weights(path)), source=str(path))
    x = torch.rand(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(9)) * 2 - 1
    with torch.no_grad():
        assert torch.equal(target.eval().extract_features(x), source.eval().extract_features(x))

    with pytest.raises(WeightsError, match=r"Conv3d_1a_7x7\.conv3d\.weight"):
        load_strict(InceptionI3d(in_channels=2), state, source=str(path))
