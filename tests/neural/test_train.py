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


def _reference_rows(weight, acc, rows, grads, lr, eps):
    """rowwise_adagrad_rows_'s rule written row by row: s_r += sum_o |g_o|^2 / f, then the step."""
    weight, acc = weight.copy(), acc.copy()
    flat = grads.reshape(len(rows), -1)
    for r in np.unique(rows):
        mine = flat[rows == r]
        acc[r] += (mine ** 2).sum() / flat.shape[1]
        weight[r] -= lr * mine.sum(0).reshape(weight[r].shape) / (np.sqrt(acc[r]) + eps)
    return weight, acc


def test_rowwise_adagrad_rows_is_its_rule_and_rowwise_adagrad_without_repeats():
    from reclib.neural._train import RowWiseAdagrad, rowwise_adagrad_rows_
    rng = np.random.default_rng(0)
    weight, acc = rng.normal(size=(6, 3)), rng.uniform(0.1, 1.0, 6)
    rows = np.array([4, 1, 4, 0, 4, 1])                       # repeated rows
    grads = rng.normal(size=(6, 3))
    w, a = torch.tensor(weight), torch.tensor(acc)
    rowwise_adagrad_rows_(w, a, torch.tensor(rows), torch.tensor(grads), lr=0.3, eps=1e-8)
    ref_w, ref_a = _reference_rows(weight, acc, rows, grads, 0.3, 1e-8)
    np.testing.assert_allclose(w.numpy(), ref_w, rtol=1e-12)
    np.testing.assert_allclose(a.numpy(), ref_a, rtol=1e-12)
    # a repeated row: the sum of its squared gradients, not the square of their sum
    assert ref_a[4] == pytest.approx(acc[4] + (grads[[0, 2, 4]] ** 2).sum() / 3)
    # rows that occur once: exactly RowWiseAdagrad's step on the sparse gradient
    unique = torch.tensor([5, 2, 0])
    table = torch.nn.Parameter(torch.tensor(weight))
    optimiser = RowWiseAdagrad([table], lr=0.3)
    optimiser.state[table]["sum"] = torch.tensor(acc)
    table.grad = torch.sparse_coo_tensor(unique[None], torch.tensor(grads[:3]), (6, 3),
                                         check_invariants=True)
    optimiser.step()
    w, a = torch.tensor(weight), torch.tensor(acc)
    rowwise_adagrad_rows_(w, a, unique, torch.tensor(grads[:3]), lr=0.3)
    torch.testing.assert_close(w, table.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(a, optimiser.state[table]["sum"], rtol=1e-12, atol=1e-14)
    # a table of one column (item biases) takes gradients of shape (m,)
    b, s = torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    rowwise_adagrad_rows_(b, s, torch.tensor([2, 2]), torch.tensor([0.5, -1.5],
                                                                  dtype=torch.float64), lr=1.0)
    assert s[2].item() == pytest.approx(2.5) and b[2, 0].item() == pytest.approx(1 / 2.5 ** 0.5)
