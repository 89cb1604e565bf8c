"""The training loop: devices, seeding, NaN losses, early stopping with best-checkpoint restore."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reclib.neural import TrainConfig, resolve_device, train_module  # noqa: E402


class Line(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))


def constant_batches(rng):
    yield (torch.ones(1),)


def test_cpu_device_and_auto_fallback():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_missing_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="device == 'cuda'.*no CUDA"):
        resolve_device("cuda")


def test_unknown_device_is_named():
    with pytest.raises(ValueError, match="device == 'tpu'"):
        resolve_device("tpu")


def test_nan_loss_stops_with_epoch_and_lr():
    module = Line()

    def loss_fn(m, batch):
        return m.w.sum() * float("nan")

    with pytest.raises(FloatingPointError, match=r"epoch 1 .*lr == 0\.5"):
        train_module(module, constant_batches, loss_fn, TrainConfig(n_epochs=3, lr=0.5))


def test_diverging_loss_reports_the_epoch_it_broke():
    module = Line()
    calls = {"n": 0}

    def loss_fn(m, batch):
        calls["n"] += 1
        return m.w.sum() + (float("inf") if calls["n"] == 3 else 0.0)

    with pytest.raises(FloatingPointError, match="epoch 3"):
        train_module(module, constant_batches, loss_fn, TrainConfig(n_epochs=5, lr=0.1))


def test_early_stopping_restores_the_best_checkpoint():
    """The loss pushes w up by lr each epoch; validation likes w near 0.3, so the loop must stop
    after `patience` worse epochs and hand back the weights of the best one."""
    module = Line()
    seen = []

    def validate(m):
        seen.append(m.w.item())
        return -abs(m.w.item() - 0.3)

    config = TrainConfig(n_epochs=50, lr=0.1, patience=2)
    result = train_module(module, constant_batches, lambda m, b: -m.w.sum(), config, validate)
    assert len(result.loss_history) < 50                           # it stopped early
    best = int(np.argmax(result.val_history))
    assert result.best_epoch == best + 1
    assert len(result.val_history) == result.best_epoch + 2         # patience epochs after it
    assert module.w.item() == pytest.approx(seen[best])             # restored, not the last
    assert module.w.item() != pytest.approx(seen[-1])


def test_without_patience_the_last_weights_stay():
    module = Line()
    config = TrainConfig(n_epochs=4, lr=0.1)
    result = train_module(module, constant_batches, lambda m, b: -m.w.sum(), config,
                          validate=lambda m: -abs(m.w.item() - 0.1))
    assert result.best_epoch == 4 and len(result.val_history) == 4


def test_patience_needs_validation():
    with pytest.raises(ValueError, match="patience is set"):
        train_module(Line(), constant_batches, lambda m, b: m.w.sum(),
                     TrainConfig(patience=2))


def test_config_errors_are_named():
    with pytest.raises(ValueError, match="lr == -1"):
        TrainConfig(lr=-1.0).validate()
    with pytest.raises(ValueError, match="n_epochs == 0"):
        TrainConfig(n_epochs=0).validate()
