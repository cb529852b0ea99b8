"""The training loop: equivalence with the tutorial's loop, determinism, resume, divergence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import N_TRAIN, interrupt_fit
from reference import (
    TUTORIAL_NORMALIZATION,
    reference_step,
    tutorial_dataset,
    tutorial_model,
    write_torchvision_root,
)

from stn.datasets.store import load_arrays, read_meta
from stn.errors import DivergenceError
from stn.models.builder import build_model
from stn.models.coordconv import CoordConv2d
from stn.models.single_input_conv import SingleInputConv2d
from stn.params.run import TrainParams
from stn.training.loop import Trainer, save_history, train_step
from stn.variant import VariantSpec

SPEC = VariantSpec()
QUIET = lambda message: None  # noqa: E731


def test_fast_batch_equals_tutorial_batch(train_data, tmp_path: Path) -> None:
    meta, images, labels = train_data
    assert meta.normalization == TUTORIAL_NORMALIZATION and len(labels) == N_TRAIN
    dataset = tutorial_dataset(write_torchvision_root(tmp_path, (images, labels)))
    idx = [5, 0, 17, 3]
    tutorial = torch.stack([dataset[i][0] for i in idx])
    assert torch.equal(meta.normalization(images[idx]), tutorial)
    assert [dataset[i][1] for i in idx] == labels[idx].tolist()


@pytest.mark.parametrize("layer", ["conv", "coordconv"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_step_equals_reference_step(train_data, channels_last: bool, layer: str) -> None:
    """Same weights, same batch, same dropout state: same loss and same updated weights."""
    meta, images, labels = train_data
    spec = VariantSpec(layer=layer)
    torch.manual_seed(0)
    fast = build_model(spec)
    torch.manual_seed(0)
    ref = tutorial_model(spec)  # the tutorial's stock layers: same weights, same RNG state after
    rng_after_ref = torch.get_rng_state()
    assert not any(isinstance(m, SingleInputConv2d | CoordConv2d) for m in ref.modules())
    assert rng_after_ref.equal(_rng_after_build(spec))
    for (k_fast, w_fast), (k_ref, w_ref) in zip(
        fast.state_dict().items(), ref.state_dict().items(), strict=True
    ):
        assert k_fast == k_ref and torch.equal(w_fast, w_ref)
    # Both in the same memory format: channels-last max pooling breaks exact ties (MNIST's flat
    # background) at other positions than the contiguous kernel, for stock layers too, so across
    # formats the gradients differ by more than rounding; what is compared here is our layers.
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    fast, ref = fast.to(memory_format=memory_format), ref.to(memory_format=memory_format)
    opt_fast = torch.optim.SGD(fast.parameters(), lr=0.01)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.01)
    x = meta.normalization(images[:64]).contiguous(memory_format=memory_format)
    y = torch.as_tensor(labels[:64], dtype=torch.long)
    for step in range(3):
        torch.manual_seed(100 + step)
        loss_fast, _ = train_step(fast, opt_fast, x, y)
        torch.manual_seed(100 + step)
        loss_ref = reference_step(ref, opt_ref, x, y)
        assert loss_fast.item() == pytest.approx(loss_ref, rel=1e-5, abs=1e-6)
    for p_fast, p_ref in zip(fast.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p_fast, p_ref, rtol=1e-4, atol=1e-6)  # float rounding only


def _rng_after_build(spec: VariantSpec) -> torch.Tensor:
    torch.manual_seed(0)
    build_model(spec)
    return torch.get_rng_state()


def _fit(train_data, checkpoint: Path | None = None, **overrides) -> Trainer:
    params = TrainParams(**{"epochs": 2, **overrides})
    trainer = Trainer(SPEC, params, 3, *train_data, checkpoint=checkpoint, log=QUIET)
    trainer.fit()
    return trainer


def _weights(trainer: Trainer) -> list[torch.Tensor]:
    return [t.clone() for t in trainer.model.state_dict().values()]


def test_same_seed_same_bits(train_data) -> None:
    a, b = _fit(train_data), _fit(train_data)
    assert [(h.loss, h.accuracy) for h in a.history] == [(h.loss, h.accuracy) for h in b.history]
    assert all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(b), strict=True))


def test_other_seed_other_result(train_data) -> None:
    a = _fit(train_data)
    b = Trainer(SPEC, TrainParams(epochs=2), 4, *train_data, log=QUIET)
    b.fit()
    assert a.history[-1].loss != b.history[-1].loss


def test_interrupted_run_resumes_to_the_same_result(train_data, tmp_path: Path) -> None:
    uninterrupted = _fit(train_data, epochs=3)
    checkpoint = tmp_path / "ck" / "run.pt"
    first = Trainer(SPEC, TrainParams(epochs=3), 3, *train_data, checkpoint=checkpoint, log=QUIET)
    interrupt_fit(first, at_epoch=3)
    assert checkpoint.is_file() and len(first.history) == 2
    logs: list[str] = []
    second = Trainer(SPEC, TrainParams(epochs=3), 3, *train_data, checkpoint=checkpoint, log=logs.append)
    second.fit()
    assert any("resuming after epoch 2" in line for line in logs)
    assert [h.loss for h in second.history] == [h.loss for h in uninterrupted.history]
    assert all(torch.equal(x, y) for x, y in zip(_weights(second), _weights(uninterrupted), strict=True))


def test_a_run_resumed_on_another_device_says_so(train_data, tmp_path: Path) -> None:
    checkpoint = tmp_path / "run.pt"
    first = Trainer(SPEC, TrainParams(epochs=2), 3, *train_data, checkpoint=checkpoint, log=QUIET)
    interrupt_fit(first, at_epoch=2)
    assert first.trained_on == "cpu"
    state = torch.load(checkpoint, weights_only=False)
    assert state["trained_on"] == ["cpu"]
    torch.save(state | {"trained_on": ["cuda"]}, checkpoint)  # as if the first epoch ran on a GPU
    second = Trainer(SPEC, TrainParams(epochs=2), 3, *train_data, checkpoint=checkpoint, log=QUIET)
    second.fit()
    assert second.trained_on == "cpu+cuda"  # not a CPU run: its model and curve record it
    del state["trained_on"]  # a checkpoint written before the device was recorded
    torch.save(state, checkpoint)
    third = Trainer(SPEC, TrainParams(epochs=2), 3, *train_data, checkpoint=checkpoint, log=QUIET)
    third.fit()
    assert third.trained_on == "cpu"


def test_stale_checkpoint_is_not_resumed(train_data, tmp_path: Path) -> None:
    checkpoint = tmp_path / "run.pt"
    _fit(train_data, checkpoint=checkpoint, epochs=1, lr=0.05)
    logs: list[str] = []
    trainer = Trainer(SPEC, TrainParams(epochs=1), 3, *train_data, checkpoint=checkpoint, log=logs.append)
    trainer.fit()
    assert any("from other params; starting over" in line for line in logs)


def test_damaged_checkpoint_starts_over(train_data, tmp_path: Path) -> None:
    checkpoint = tmp_path / "run.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    logs: list[str] = []
    Trainer(SPEC, TrainParams(epochs=1), 3, *train_data, checkpoint=checkpoint, log=logs.append).fit()
    assert any("ignoring unreadable checkpoint" in line for line in logs)


def test_divergence_stops_with_a_clear_message(train_data, tmp_path: Path) -> None:
    trainer = Trainer(SPEC, TrainParams(epochs=3, lr=1e12), 3, *train_data, run_name="stn-conv-s3", log=QUIET)
    with pytest.raises(
        DivergenceError, match=r"stn-conv-s3: training diverged: loss is (nan|inf) at epoch 1, step \d+"
    ):
        trainer.fit()


def test_validation_split_is_scored_each_epoch(prepared_mnist: Path, tmp_path: Path) -> None:
    meta, images, labels = read_meta(prepared_mnist), *load_arrays(prepared_mnist, "train")
    train, held_out = (images[:-64], labels[:-64]), (images[-64:], labels[-64:])
    trainer = Trainer(SPEC, TrainParams(epochs=1), 3, meta, *train, validation=held_out, log=QUIET)
    (stats,) = trainer.fit()
    assert 0.0 <= stats.val_accuracy <= 1.0 and np.isfinite(stats.val_loss)
    save_history(trainer.history, tmp_path / "h.csv")
    header = (tmp_path / "h.csv").read_text().splitlines()[0]
    assert header == "epoch,loss,accuracy,val_loss,val_accuracy"


def test_empty_validation_split_is_not_scored(train_data, tmp_path: Path) -> None:
    """A dataset with validation 0 (the original protocol) stores an empty val split: no val columns."""
    empty = (train_data[1][:0], train_data[2][:0])
    trainer = Trainer(SPEC, TrainParams(epochs=1), 3, *train_data, validation=empty, log=QUIET)
    (stats,) = trainer.fit()
    assert stats.val_accuracy is None
    save_history(trainer.history, tmp_path / "h.csv")
    assert (tmp_path / "h.csv").read_text().splitlines()[0] == "epoch,loss,accuracy"
