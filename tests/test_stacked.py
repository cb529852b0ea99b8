"""Seeds trained together (stn.training.stacked): the same runs as alone, deterministic, resumable."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import interrupt_fit, off_identity

from stn.errors import StnError
from stn.models.builder import load_model, save_model
from stn.params.run import TrainParams
from stn.training.loop import Trainer
from stn.training.stacked import StackedTrainer, stack_seeds
from stn.variant import VariantSpec

QUIET = lambda message: None  # noqa: E731
SEEDS = (3, 4)


def _trainers(
    train_data, spec: VariantSpec, params: TrainParams, validation=None, seeds: tuple[int, ...] = SEEDS
) -> list[Trainer]:
    trainers = [
        Trainer(spec, params, seed, *train_data, run_name=f"s{seed}", log=QUIET, validation=validation)
        for seed in seeds
    ]
    for trainer in trainers:  # off the kink of bilinear sampling at the identity (conftest)
        off_identity(trainer.model)
    return trainers


def _weights(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.model.parameters()]


@pytest.mark.parametrize(
    ("spec", "params"),
    [
        # The paper's nets have no dropout, so stacked and separate runs see the same numbers;
        # contiguous, as the stacked batch is: in channels-last, max pooling breaks MNIST's exact
        # ties (flat background) at other positions, which differs by more than rounding.
        (
            VariantSpec(architecture="paper", loc_lr_scale=0.1),
            TrainParams(epochs=2, momentum=0.9, channels_last=False),
        ),
        (
            VariantSpec(architecture="paper", stn=False),
            TrainParams(
                epochs=2,
                optimizer="adamw",
                lr=0.001,
                schedule="onecycle",
                weight_decay=0.01,
                channels_last=False,
            ),
        ),
    ],
    ids=["st-cnn-sgd-loclr", "cnn-adamw-onecycle"],
)
def test_stacked_seeds_train_as_each_seed_alone(train_data, spec: VariantSpec, params: TrainParams) -> None:
    _, images, labels = train_data
    validation = (images[:100], labels[:100])
    alone = []
    for trainer in _trainers(train_data, spec, params, validation):  # one after another, as on the CPU
        trainer.fit()
        alone.append(trainer)
    stacked = _trainers(train_data, spec, params, validation)
    histories = StackedTrainer(stacked, log=QUIET).fit()
    for one, together, history in zip(alone, stacked, histories, strict=True):
        assert history is together.history and len(history) == 2
        for a, b in zip(one.history, together.history, strict=True):
            assert b.loss == pytest.approx(a.loss, rel=1e-4)
            assert b.val_loss == pytest.approx(a.val_loss, rel=1e-3)
            assert abs(b.accuracy - a.accuracy) <= 2 / len(labels)  # a tie may flip
            assert abs(b.val_accuracy - a.val_accuracy) <= 2 / len(validation[1])
        for a, b in zip(_weights(one), _weights(together), strict=True):
            # Rounding, grown over 12 steps where a ReLU flips (1e-4 on MNIST, 3e-4 on random images).
            torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3)
    # The seeds did not train the same model.
    assert not torch.equal(_weights(stacked[0])[0], _weights(stacked[1])[0])


def test_stacked_training_is_deterministic_resumable_and_saves_each_seed(train_data, tmp_path: Path) -> None:
    """The tutorial STN: dropout under vmap and the classifier's custom first-layer gradient."""
    spec, params = VariantSpec(), TrainParams(epochs=2)
    first = _trainers(train_data, spec, params)
    StackedTrainer(first, log=QUIET).fit()
    again = _trainers(train_data, spec, params)
    checkpoint = tmp_path / "stacked.pt"
    interrupt_fit(StackedTrainer(again, checkpoint=checkpoint, log=QUIET), at_epoch=2)
    assert checkpoint.is_file() and all(len(t.history) == 1 for t in again)
    logs: list[str] = []
    resumed = _trainers(train_data, spec, params)
    StackedTrainer(resumed, checkpoint=checkpoint, log=logs.append).fit()
    assert any("resuming after epoch 1" in line for line in logs)
    finished = _trainers(train_data, spec, params)  # a stage rerun after its seeds all finished
    StackedTrainer(finished, checkpoint=checkpoint, log=logs.append).fit()
    assert any("resuming after epoch 2" in line for line in logs)
    for a, b, c in zip(first, resumed, finished, strict=True):
        assert [h.loss for h in a.history] == [h.loss for h in b.history] == [h.loss for h in c.history]
        assert all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(b), strict=True))
        assert all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(c), strict=True))
    # Each seed's model file holds its own weights only, not the K stacked ones.
    for trainer in first:
        path = tmp_path / f"{trainer.run_name}.pt"
        save_model(trainer.model, path)
        alone = tmp_path / "alone.pt"
        save_model(load_model(path), alone)
        assert path.stat().st_size == alone.stat().st_size
        loaded = load_model(path)
        assert all(torch.equal(x, y) for x, y in zip(loaded.parameters(), _weights(trainer), strict=True))


def test_a_stale_stacked_checkpoint_is_not_resumed(train_data, tmp_path: Path) -> None:
    checkpoint = tmp_path / "stacked.pt"
    spec = VariantSpec(architecture="paper", stn=False)
    StackedTrainer(_trainers(train_data, spec, TrainParams(epochs=1)), checkpoint=checkpoint, log=QUIET).fit()
    logs: list[str] = []
    trainers = _trainers(train_data, spec, TrainParams(epochs=1, lr=0.05))
    StackedTrainer(trainers, checkpoint=checkpoint, log=logs.append).fit()
    assert any("from other params; starting over" in line for line in logs)


def test_only_one_stages_seeds_can_be_stacked(train_data) -> None:
    runs = _trainers(train_data, VariantSpec(stn=False), TrainParams(epochs=1))
    other = Trainer(VariantSpec(), TrainParams(epochs=1), 5, *train_data, run_name="other", log=QUIET)
    with pytest.raises(StnError, match="other cannot be stacked with s3"):
        StackedTrainer([*runs, other])
    with pytest.raises(StnError, match="at least one"):
        StackedTrainer([])


def test_each_stacked_seed_draws_its_own_dropout(train_data) -> None:
    """Two copies of one seed (same start, same batches) part only through dropout's draws."""
    twins = _trainers(train_data, VariantSpec(), TrainParams(epochs=1), seeds=(3, 3))
    assert all(torch.equal(x, y) for x, y in zip(_weights(twins[0]), _weights(twins[1]), strict=True))
    StackedTrainer(twins, log=QUIET).fit()
    assert not torch.equal(_weights(twins[0])[-1], _weights(twins[1])[-1])


def test_stages_stack_their_seeds_on_a_gpu_and_resume_either_way() -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert stack_seeds(cuda, 5, stacked_checkpoint=False, seed_checkpoints=False)
    assert not stack_seeds(cuda, 1, stacked_checkpoint=False, seed_checkpoints=False)  # nothing to stack
    assert not stack_seeds(cpu, 5, stacked_checkpoint=False, seed_checkpoints=False)  # slower on a CPU
    # Interrupted work goes on where it stopped, on whichever device the stage runs now.
    assert not stack_seeds(cuda, 5, stacked_checkpoint=False, seed_checkpoints=True)
    assert stack_seeds(cpu, 5, stacked_checkpoint=True, seed_checkpoints=False)
