"""BPRMF: the triple loss against its formula, on-device batches, optimisers, and seeding."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import reclib  # noqa: E402
from reclib.neural import BPRMF  # noqa: E402
from reclib.neural.bprmf import BPRMFModule  # noqa: E402
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


@pytest.mark.parametrize("settings", [{"optimizer": "sparse_adam", "lr": 0.05, "reg": 0.03},
                                      {"optimizer": "rowwise_adagrad", "lr": 0.1, "reg": 0.01},
                                      {"optimizer": "adam", "sparse": False, "lr": 0.05,
                                       "reg": 0.01}])
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
