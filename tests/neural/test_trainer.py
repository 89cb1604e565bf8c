"""The Trainer: optimisers for sparse tables, bfloat16 autocast, batch sharding."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reclib.neural import RowWiseAdagrad, TrainConfig, Trainer, shard_batch  # noqa: E402
from reclib.neural._train import make_optimizer  # noqa: E402


def test_rowwise_adagrad_sparse_matches_the_formula():
    rng = np.random.default_rng(0)
    table = torch.nn.Embedding(6, 4, sparse=True)
    start = table.weight.detach().numpy().copy()
    optimiser = RowWiseAdagrad(table.parameters(), lr=0.1, eps=1e-8)
    rows = torch.tensor([1, 3, 1])
    target = torch.as_tensor(rng.standard_normal((3, 4)), dtype=torch.float32)
    acc, expected = np.zeros(6), start.astype(np.float64)
    for _ in range(3):
        loss = ((table(rows) - target) ** 2).sum()
        optimiser.zero_grad()
        loss.backward()
        # the reference: sum the duplicate rows' gradients, then one accumulator per row
        grad = np.zeros((6, 4))
        np.add.at(grad, rows.numpy(), 2 * (expected[rows.numpy()] - target.numpy()))
        touched = np.unique(rows.numpy())
        acc[touched] += (grad[touched] ** 2).mean(axis=1)
        expected[touched] -= 0.1 * grad[touched] / (np.sqrt(acc[touched]) + 1e-8)[:, None]
        optimiser.step()
    np.testing.assert_allclose(table.weight.detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    untouched = [0, 2, 4, 5]
    np.testing.assert_array_equal(table.weight.detach().numpy()[untouched], start[untouched])
    np.testing.assert_allclose(optimiser.state[table.weight]["sum"].numpy(), acc, rtol=1e-5)


def test_rowwise_adagrad_dense_and_scalar_parameters():
    w = torch.nn.Parameter(torch.tensor([[1.0, 2.0], [3.0, -1.0]]))
    b = torch.nn.Parameter(torch.tensor(0.5))
    optimiser = RowWiseAdagrad([w, b], lr=0.2)
    loss = (w ** 2).sum() + 3 * b
    loss.backward()
    gw, gb = 2 * np.array([[1.0, 2.0], [3.0, -1.0]]), 3.0
    optimiser.step()
    expected_w = np.array([[1.0, 2.0], [3.0, -1.0]]) - 0.2 * gw / (
        np.sqrt((gw ** 2).mean(axis=1)) + 1e-8)[:, None]
    np.testing.assert_allclose(w.detach().numpy(), expected_w, rtol=1e-6)
    assert b.item() == pytest.approx(0.5 - 0.2 * gb / (abs(gb) + 1e-8))


def test_optimiser_choice_errors_are_clear():
    sparse = torch.nn.Embedding(3, 2, sparse=True)
    dense = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="sparse gradients"):
        make_optimizer(sparse, "adam", 0.01)
    with pytest.raises(ValueError, match="no sparse embedding"):
        make_optimizer(dense, "sparse_adam", 0.01)
    with pytest.raises(ValueError, match="optimizer == 'sgd'"):
        make_optimizer(dense, "sgd", 0.01)
    with pytest.raises(ValueError, match="weight_decay == 0.1"):
        make_optimizer(sparse, "sparse_adam", 0.01, weight_decay=0.1)
    both = torch.nn.ModuleDict({"e": sparse, "l": dense})
    kinds = [type(o).__name__ for o in make_optimizer(both, "sparse_adam", 0.01)]
    assert kinds == ["SparseAdam", "Adam"]
    with pytest.raises(ValueError, match="precision == 'fp16'"):
        Trainer(TrainConfig(), precision="fp16")


def test_shard_batch_partitions_the_rows():
    batch = (torch.arange(7), torch.arange(14).reshape(7, 2), torch.tensor(3.0),
             torch.arange(5))
    shards = [shard_batch(batch, rank, 3) for rank in range(3)]
    rows = torch.sort(torch.cat([s[0] for s in shards])).values
    assert torch.equal(rows, torch.arange(7))
    for s in shards:
        assert torch.equal(s[1][:, 0], 2 * s[0])      # row-aligned tensors stay aligned
        assert s[2] is batch[2] and s[3] is batch[3]  # other entries are passed unchanged
    assert shard_batch(batch, 0, 1) is batch


def _regression(precision):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 16, generator=gen)
    y = x @ torch.randn(16, 1, generator=gen)
    module = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))

    def batches(rng):
        order = torch.as_tensor(rng.permutation(256))
        for start in range(0, 256, 64):
            rows = order[start:start + 64]
            yield x[rows], y[rows]

    seen = []

    def loss_fn(m, batch):
        out = m(batch[0])
        seen.append(out.dtype)
        return torch.nn.functional.mse_loss(out.float(), batch[1])

    config = TrainConfig(n_epochs=30, lr=1e-2, random_state=0)
    result = Trainer(config, precision=precision).fit(module, batches, loss_fn)
    return result, set(seen)


def test_bf16_autocast_runs_in_bfloat16_and_converges_like_fp32():
    fp32, dtypes32 = _regression("fp32")
    bf16, dtypes16 = _regression("bf16")
    assert dtypes32 == {torch.float32} and dtypes16 == {torch.bfloat16}
    assert fp32.loss_history[-1] < 0.05 * fp32.loss_history[0]
    assert bf16.loss_history[-1] < 0.05 * bf16.loss_history[0]
    assert len(bf16.epoch_seconds) == 30 and min(bf16.epoch_seconds) > 0
