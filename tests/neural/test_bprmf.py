"""BPRMF: the triple loss against its formula, on-device batches, optimisers, seeding, and the
fused row-wise Adagrad step against autograd and against its rule written out."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import reclib  # noqa: E402
from reclib.neural import BPRMF  # noqa: E402
from reclib.neural.bprmf import _REDRAWS, BPRMFModule, _first_negative  # noqa: E402
from tests.conftest import own_half, planted_frame  # noqa: E402


@pytest.fixture
def planted():
    return reclib.Interactions.from_dataframe(planted_frame())


def test_triple_loss_matches_the_formula_and_its_gradient():
    module = BPRMFModule(5, 7, 3, sparse=False, item_bias=True, init_std=1.0).double()
    with torch.no_grad():
        module.bias.weight.normal_()
    u, i, j = torch.tensor([0, 4, 2]), torch.tensor([1, 6, 1]), torch.tensor([3, 0, 5])
    reg = 0.05
    X, Y = module.user.weight.detach().numpy(), module.item.weight.detach().numpy()
    b = module.bias.weight.detach().numpy()[:, 0]
    m = (X[u] * (Y[i] - Y[j])).sum(1) + b[i] - b[j]
    norms = (X[u] ** 2).sum(1) + (Y[i] ** 2).sum(1) + (Y[j] ** 2).sum(1) + b[i] ** 2 + b[j] ** 2
    expected = np.mean(-np.log(1 / (1 + np.exp(-m))) + reg * norms)
    assert module.triple_loss(u, i, j, reg).item() == pytest.approx(expected, rel=1e-12)
    # the gradient of x_u: mean over the batch of -(1 - sigma(m)) (y_i - y_j) + 2 reg x_u
    loss = module.triple_loss(u, i, j, reg)
    loss.backward()
    g = -(1 - 1 / (1 + np.exp(-m)))[:, None] * (Y[i] - Y[j]) / 3 + 2 * reg * X[u] / 3
    np.testing.assert_allclose(module.user.weight.grad.numpy()[u.numpy()], g, rtol=1e-10)


def test_forward_and_score_all_agree():
    module = BPRMFModule(4, 6, 3, sparse=True, item_bias=True, init_std=1.0)
    users = torch.tensor([0, 3])
    full = module.score_all(users)
    pairs = module(users, torch.arange(6).expand(2, -1))
    torch.testing.assert_close(full, pairs)


def test_an_epoch_visits_every_pair_once_and_rarely_draws_a_positive(planted):
    model = BPRMF(n_epochs=1, batch_size=64, device="cpu", random_state=0).fit(planted)
    batches = list(model._batches(planted, np.random.default_rng(0)))
    users = torch.cat([b[0] for b in batches]).numpy()
    items = torch.cat([b[1] for b in batches]).numpy()
    negatives = torch.cat([b[2] for b in batches]).numpy()
    pairs = np.sort(users * planted.n_items + items)
    np.testing.assert_array_equal(pairs, np.sort(planted.users * planted.n_items + planted.items))
    positive = set((planted.users * planted.n_items + planted.items).tolist())
    density = planted.n_interactions / (planted.n_users * planted.n_items)
    hit_rate = np.mean([u * planted.n_items + j in positive for u, j in zip(users, negatives)])
    assert density > 0.3 and hit_rate < density ** 2    # uniform draws would hit ~density


def test_both_negative_searches_choose_the_same_negatives():
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 12
    keys = torch.as_tensor(np.unique(rng.integers(n_users * n_items, size=250)))
    users = torch.as_tensor(rng.integers(n_users, size=400))
    draws = torch.as_tensor(rng.integers(n_items, size=(400, _REDRAWS + 1)))
    a = _first_negative(keys, users * n_items, draws, compact=True)
    b = _first_negative(keys, users * n_items, draws, compact=False)
    torch.testing.assert_close(a, b)
    # the slow reference: walk each triple's draws
    positive = set(keys.tolist())
    for u, row, j in zip(users.tolist(), draws.tolist(), a.tolist()):
        first = next((d for d in row[:-1] if u * n_items + d not in positive), row[-1])
        assert j == first
    assert (a != draws[:, 0]).any() and (a == draws[:, -1]).any()    # redraws were needed


@pytest.mark.parametrize("settings", [{"optimizer": "sparse_adam", "lr": 0.05, "reg": 0.03},
                                      {"optimizer": "rowwise_adagrad", "lr": 0.1, "reg": 0.01},
                                      {"optimizer": "adam", "sparse": False, "lr": 0.05,
                                       "reg": 0.03}])
def test_each_optimiser_learns_the_planted_groups(planted, settings):
    model = BPRMF(n_factors=4, n_epochs=40, batch_size=32, device="cpu", random_state=0,
                  **settings).fit(planted)
    assert model.loss_history_[-1] < 0.8 * model.loss_history_[0]
    items, _ = model.recommend(planted.user_ids, k=3)
    share = np.mean([own_half(u, i) for u, row in zip(planted.user_ids, items) for i in row])
    assert share >= 0.8


def test_same_seed_same_weights_and_bad_settings(planted):
    a = BPRMF(n_factors=4, n_epochs=3, batch_size=64, device="cpu", random_state=3).fit(planted)
    b = BPRMF(n_factors=4, n_epochs=3, batch_size=64, device="cpu", random_state=3).fit(planted)
    for key in a.weights_:
        np.testing.assert_array_equal(a.weights_[key], b.weights_[key])
    with pytest.raises(ValueError, match="sparse == True needs"):
        BPRMF(optimizer="adam").fit(planted)
    with pytest.raises(ValueError, match="needs sparse=True"):
        BPRMF(sparse=False, optimizer="sparse_adam").fit(planted)
    with pytest.raises(ValueError, match="precision == 'half'"):
        BPRMF(precision="half").fit(planted)


def _fused_reference(X, Y, b, u, i, j, lr, reg, sums, eps=1e-8):
    """fused_bpr_step's rule, triple by triple in NumPy: closed-form gradients per occurrence."""
    X, Y, b = X.copy(), Y.copy(), b.copy()
    s_x, s_y, s_b = (s.copy() for s in sums)
    n, f = len(u), X.shape[1]
    c = 2 * reg / n
    m = (X[u] * (Y[i] - Y[j])).sum(1) + b[i] - b[j]
    d = -1 / (1 + np.exp(m)) / n                              # -sigma(-m) / B
    g_x = d[:, None] * (Y[i] - Y[j]) + c * X[u]
    g_y = np.concatenate([d[:, None] * X[u] + c * Y[i], -d[:, None] * X[u] + c * Y[j]])
    g_b = np.concatenate([d + c * b[i], -d + c * b[j]])
    out = []
    for table, acc, rows, grads in ((X, s_x, u, g_x), (Y, s_y, np.concatenate([i, j]), g_y),
                                    (b[:, None], s_b, np.concatenate([i, j]), g_b[:, None])):
        table = table.copy()
        for r in np.unique(rows):
            acc[r] += (grads[rows == r] ** 2).sum() / table.shape[1]
        for r in np.unique(rows):
            table[r] -= lr * grads[rows == r].sum(0) / (np.sqrt(acc[r]) + eps)
        out.append(table)
    return out[0], out[1], out[2][:, 0], (s_x, s_y, s_b)


def _module(seed=0):
    torch.manual_seed(seed)
    module = BPRMFModule(6, 9, 4, sparse=True, item_bias=True, init_std=1.0).double()
    with torch.no_grad():
        module.bias.weight.normal_()
    return module


def test_fused_step_is_autograd_and_rowwise_adagrad_when_no_row_repeats():
    from reclib.neural._train import RowWiseAdagrad
    from reclib.neural.bprmf import fused_bpr_step
    u, i, j = torch.tensor([0, 4, 2]), torch.tensor([1, 6, 3]), torch.tensor([5, 0, 8])
    reference, fused = _module(), _module()
    optimiser = RowWiseAdagrad(reference.parameters(), lr=0.2)
    state = {}
    for _ in range(3):                         # three steps: the accumulators carry over
        loss = reference.triple_loss(u, i, j, 0.05)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        fused_loss = fused_bpr_step(fused, state, u, i, j, lr=0.2, reg=0.05)
        assert fused_loss.item() == pytest.approx(loss.item(), rel=1e-12)
    for name, p in reference.named_parameters():
        torch.testing.assert_close(dict(fused.named_parameters())[name].detach(), p.detach(),
                                   rtol=1e-6, atol=1e-6)
    for key, p in (("user", reference.user.weight), ("item", reference.item.weight),
                   ("bias", reference.bias.weight)):
        torch.testing.assert_close(state[key], optimiser.state[p]["sum"], rtol=1e-6, atol=1e-9)


def test_fused_step_with_repeated_rows_is_its_documented_rule():
    from reclib.neural.bprmf import fused_bpr_step
    # user 2 three times; item 1 as a positive twice and a negative once; item 3 both ways
    u, i, j = np.array([2, 0, 2, 2, 5]), np.array([1, 3, 1, 4, 0]), np.array([3, 1, 7, 8, 3])
    module, state = _module(1), {}
    X, Y = module.user.weight.detach().numpy().copy(), module.item.weight.detach().numpy().copy()
    b = module.bias.weight.detach().numpy()[:, 0].copy()
    sums = (np.zeros(6), np.zeros(9), np.zeros(9))
    for _ in range(2):
        X, Y, b, sums = _fused_reference(X, Y, b, u, i, j, 0.3, 0.02, sums)
        fused_bpr_step(module, state, torch.tensor(u), torch.tensor(i), torch.tensor(j),
                       lr=0.3, reg=0.02)
    np.testing.assert_allclose(module.user.weight.detach().numpy(), X, rtol=1e-10)
    np.testing.assert_allclose(module.item.weight.detach().numpy(), Y, rtol=1e-10)
    np.testing.assert_allclose(module.bias.weight.detach().numpy()[:, 0], b, rtol=1e-10)
    for key, ref in zip(("user", "item", "bias"), sums):
        np.testing.assert_allclose(state[key].numpy(), ref, rtol=1e-10)


def test_rowwise_adagrad_fits_through_the_fused_step_and_a_smaller_last_batch(planted):
    from reclib.neural.bprmf import _FusedTrainer
    model = BPRMF(n_factors=4, n_epochs=2, batch_size=48, device="cpu", random_state=0)
    assert isinstance(model.trainer(), _FusedTrainer)
    assert not isinstance(BPRMF(optimizer="sparse_adam").trainer(), _FusedTrainer)
    assert not isinstance(BPRMF(precision="bf16").trainer(), _FusedTrainer)
    assert planted.n_interactions % 48                     # the last batch is smaller
    model.fit(planted)
    assert len(model.loss_history_) == 2 and np.all(np.isfinite(model.loss_history_))


def test_fused_step_without_item_bias_or_reg():
    from reclib.neural._train import RowWiseAdagrad
    from reclib.neural.bprmf import fused_bpr_step
    torch.manual_seed(0)
    module = BPRMFModule(4, 5, 3, sparse=True, item_bias=False, init_std=1.0).double()
    reference = BPRMFModule(4, 5, 3, sparse=True, item_bias=False, init_std=1.0).double()
    reference.load_state_dict(module.state_dict())
    optimiser = RowWiseAdagrad(reference.parameters(), lr=0.1)
    u, i, j = torch.tensor([0, 3]), torch.tensor([1, 2]), torch.tensor([4, 0])
    reference.triple_loss(u, i, j, 0.0).backward()
    optimiser.step()
    fused_bpr_step(module, {}, u, i, j, lr=0.1, reg=0.0)
    for p, q in zip(reference.parameters(), module.parameters()):
        torch.testing.assert_close(q.detach(), p.detach(), rtol=1e-6, atol=1e-6)


def test_a_non_finite_fused_loss_stops_the_fit_naming_its_batch(planted, monkeypatch):
    from reclib.neural import bprmf
    step, calls = bprmf.fused_bpr_step, []

    def breaks_at_the_third(*args, **kwargs):
        calls.append(1)
        loss = step(*args, **kwargs)
        return loss * float("nan") if len(calls) == 3 else loss
    monkeypatch.setattr(bprmf, "fused_bpr_step", breaks_at_the_third)
    with pytest.raises(FloatingPointError, match=r"at epoch 1 \(batch 3\)"):
        BPRMF(n_factors=4, n_epochs=2, batch_size=16, device="cpu", random_state=0).fit(planted)
