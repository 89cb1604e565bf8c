"""BPR: the hand-derived SGD step against torch autograd, sampling, bad hyper-parameters."""

import numpy as np
import pytest
import scipy.sparse as sp

import reclib
from reclib.models import BPR
from reclib.models.bpr import bpr_step

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("seed, scale", [(0, 0.5), (1, 3.0), (2, 20.0)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_sgd_step_is_minus_lr_times_autograd_gradient(seed, scale, use_bias):
    rng = np.random.default_rng(seed)
    f, lr, reg, i, j = 5, 0.1, 0.03, 1, 3
    p_u, q_i, q_j = (rng.standard_normal(f) * scale for _ in range(3))
    bias = rng.standard_normal(4)
    tensors = [torch.tensor(a, requires_grad=True) for a in (p_u, q_i, q_j, bias)]
    tp, ti, tj, tb = tensors
    x_uij = tp @ (ti - tj) + ((tb[i] - tb[j]) if use_bias else 0.0)
    penalty = tp @ tp + ti @ ti + tj @ tj + ((tb[i] ** 2 + tb[j] ** 2) if use_bias else 0.0)
    objective = -torch.nn.functional.logsigmoid(x_uij) + 0.5 * reg * penalty
    objective.backward()
    new = [a.copy() for a in (p_u, q_i, q_j, bias)]
    loss = bpr_step(*new, i, j, lr, reg, use_bias)
    assert loss == pytest.approx(-torch.nn.functional.logsigmoid(x_uij).item(), rel=1e-9)
    for before, after, t in zip((p_u, q_i, q_j, bias), new, tensors):
        grad = np.zeros_like(before) if t.grad is None else t.grad.numpy()
        np.testing.assert_allclose(after, before - lr * grad, rtol=1e-9, atol=1e-12)


def test_loss_decreases_and_planted_order(planted):
    model = BPR(n_factors=4, n_epochs=40, random_state=0).fit(planted)
    assert model.loss_history_[-1] < 0.7 * model.loss_history_[0]


def test_item_bias_off_keeps_zero_bias(planted):
    model = BPR(n_factors=4, n_epochs=5, item_bias=False, random_state=0).fit(planted)
    np.testing.assert_array_equal(model.item_bias_, 0.0)


def test_negatives_are_never_positives():
    # one user has every item but the last: every sampled negative must be that item, so its
    # bias only ever goes down while the positives' go up
    X = sp.csr_matrix(np.array([[1, 1, 1, 1, 0]], dtype=float))
    model = BPR(n_factors=2, n_epochs=20, reg=0.0, random_state=0).fit(X)
    assert model.item_bias_[4] < 0 and np.all(model.item_bias_[:4] > 0)


def test_no_negatives_raises():
    X = sp.csr_matrix(np.ones((3, 4)))
    with pytest.raises(ValueError, match="no negatives"):
        BPR().fit(X)


@pytest.mark.parametrize("param, value, message", [
    ("n_factors", 0, "n_factors == 0"),
    ("lr", 0.0, "lr == 0.0"),
    ("reg", -0.1, "reg == -0.1"),
    ("n_epochs", 0, "n_epochs == 0"),
])
def test_bad_hyper_parameters_are_named(planted, param, value, message):
    with pytest.raises(ValueError, match=message):
        BPR(**{param: value}).fit(planted)


def test_divergence_raises(planted):
    with pytest.raises(FloatingPointError, match="diverged"):
        BPR(n_factors=4, lr=1e200, reg=1.0, n_epochs=3, random_state=0).fit(planted)


@pytest.mark.slow
def test_movielens_beats_popularity(ml100k_topn):
    train, test = ml100k_topn
    pop = reclib.evaluation.evaluate_ranking(reclib.models.Popularity().fit(train), train, test)
    bpr = reclib.evaluation.evaluate_ranking(BPR(random_state=0).fit(train), train, test)
    assert bpr["ndcg@10"] > pop["ndcg@10"] + 0.1
