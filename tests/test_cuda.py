"""The GPU path: training on CUDA computes what the CPU computes; checkpoints cross devices.

Skipped without CUDA (CI has none); bench/gpu_check.sh runs them on a GPU machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import interrupt_fit, off_identity

from stn.datasets.normalization import Normalization
from stn.datasets.store import DatasetMeta
from stn.models.builder import InputShape, build_model, load_model, save_model
from stn.params.run import TrainParams
from stn.training.loop import Trainer, select_device, train_step
from stn.training.optim import build_optimizer
from stn.training.stacked import StackedTrainer, stack_seeds
from stn.variant import VariantSpec

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

# Every model family the study trains: (VariantSpec fields, input side); the paper's nets
# only where the code has them (`architecture: paper`).
FAMILIES = {
    "stn-28": ({"output_size": (28, 28)}, 28),
    "stn-42": ({"output_size": (28, 28)}, 42),
    "cnn-28": ({"stn": False}, 28),
    "cnn-42": ({"stn": False}, 42),
}
if "architecture" in VariantSpec.model_fields:
    FAMILIES |= {
        "paper-cnn-28": ({"stn": False, "architecture": "paper"}, 28),
        "paper-cnn-42": ({"stn": False, "architecture": "paper"}, 42),
        "paper-stn-28": ({"architecture": "paper"}, 28),
        "paper-stn-42": ({"architecture": "paper"}, 42),
    }
QUIET = lambda message: None  # noqa: E731


def a_few_steps(family: str, device: str, steps: int = 3) -> tuple[list[float], list[torch.Tensor]]:
    """Losses and final weights of `steps` SGD steps (momentum 0.9, channels-last) on fixed
    random batches, dropout off so that both devices compute the same function."""
    fields, side = FAMILIES[family]
    torch.manual_seed(0)
    model = build_model(VariantSpec(**fields), InputShape(size=(side, side)))
    off_identity(model)
    model = model.to(device).to(memory_format=torch.channels_last).eval()
    optimizer = build_optimizer(model, TrainParams(momentum=0.9))
    data = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps):
        x = torch.randn(32, 1, side, side, generator=data).to(device)
        y = torch.randint(0, 10, (32,), generator=data).to(device)
        loss, _ = train_step(model, optimizer, x.contiguous(memory_format=torch.channels_last), y)
        losses.append(loss.item())
    return losses, [p.detach().cpu() for p in model.parameters()]


def assert_same_training(family: str, device: str, reference: str = "cpu") -> None:
    """`device` trains `family` as `reference` does, up to the order of float additions."""
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # plain fp32
    try:
        losses, weights = a_few_steps(family, device)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    ref_losses, ref_weights = a_few_steps(family, reference)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4, atol=1e-5)
    for w, ref in zip(weights, ref_weights, strict=True):
        torch.testing.assert_close(w, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_cuda_steps_match_cpu(family: str) -> None:
    assert_same_training(family, "cuda")


def tiny_dataset(n: int = 256) -> tuple[DatasetMeta, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    meta = DatasetMeta(
        name="tiny",
        size=(28, 28),
        classes=10,
        normalization=Normalization(0.1307, 0.3081),
        counts={"train": n},
        content_sha256="0" * 64,
        raw={},
    )
    return meta, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n)


def test_auto_device_picks_cuda() -> None:
    assert select_device("auto").type == "cuda"
    trainer = Trainer(VariantSpec(), TrainParams(epochs=1), 0, *tiny_dataset(), log=QUIET)
    assert trainer.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in trainer.model.parameters())
    assert trainer.x.device.type == "cuda" and trainer.y.device.type == "cuda"


def test_checkpoint_from_cuda_resumes_on_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run interrupted on a GPU machine resumes on a machine without one (train.device auto)."""
    checkpoint = tmp_path / "run.pt"
    spec, data, params = (
        VariantSpec(output_size=(28, 28)),
        tiny_dataset(),
        TrainParams(epochs=2, momentum=0.9),
    )
    first = Trainer(spec, params, 0, *data, checkpoint=checkpoint, log=QUIET)
    interrupt_fit(first, at_epoch=2)
    assert first.device.type == "cuda" and checkpoint.is_file() and len(first.history) == 1
    save_model(first.model, tmp_path / "model.pt")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # now a machine without a GPU
    logs: list[str] = []
    second = Trainer(spec, params, 0, *data, checkpoint=checkpoint, log=logs.append)
    assert second.device.type == "cpu"
    history = second.fit()
    assert any("resuming after epoch 1" in line for line in logs), logs
    assert len(history) == 2 and np.isfinite(history[-1].loss)
    assert second.trained_on == "cpu+cuda"  # recorded as such in its model and curve
    assert history[0] == first.history[0]
    model = load_model(tmp_path / "model.pt", "cpu")  # a model saved on the GPU loads on the CPU
    for p, q in zip(model.parameters(), first.model.parameters(), strict=True):
        torch.testing.assert_close(p, q.detach().cpu(), rtol=0, atol=0)


@pytest.mark.parametrize("fields", [{"architecture": "paper"}, {"architecture": "paper", "stn": False}])
def test_stacked_seeds_on_cuda_step_as_each_seed_alone_on_cpu(fields: dict, monkeypatch) -> None:
    """The GPU path of a train stage (stn.training.stacked): one stacked step updates each seed as
    its own step on the CPU does, to rounding (over more steps the two drift apart where a ReLU or
    a max-pool tie flips, as any two devices do); then a whole epoch trains. The paper's nets
    have no dropout, and contiguous tensors break max-pooling ties alike."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # plain fp32
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    spec, data = VariantSpec(**fields), tiny_dataset()

    def trainers(device: str) -> list[Trainer]:
        params = TrainParams(epochs=1, momentum=0.9, channels_last=False, device=device)
        made = [Trainer(spec, params, seed, *data, log=QUIET) for seed in (0, 1)]
        for trainer in made:
            off_identity(trainer.model)
        return made

    assert stack_seeds(select_device("auto"), 2, stacked_checkpoint=False, seed_checkpoints=False)
    on_gpu, alone = trainers("cuda"), trainers("cpu")
    stacked = StackedTrainer(on_gpu, log=QUIET)
    stacked.step([torch.arange(64, device="cuda")] * 2, epoch=1)
    for gpu, cpu in zip(on_gpu, alone, strict=True):
        train_step(cpu.model, cpu.optimizer, cpu.x[:64], cpu.y[:64])
        for p, q in zip(gpu.model.parameters(), cpu.model.parameters(), strict=True):
            torch.testing.assert_close(p.detach().cpu(), q.detach(), rtol=1e-4, atol=1e-5)
    for history in stacked.fit():
        assert len(history) == 1 and np.isfinite(history[0].loss)
    assert [t.trained_on for t in on_gpu] == ["cuda", "cuda"]
