"""SVD++: the fast kernel against Koren's per-rating algorithm, predictions, gradient, errors."""

import numpy as np
import pytest

import reclib
from reclib.models import SVDpp
from reclib.models._sgd_kernels import svdpp_epoch, svdpp_loss
from reclib.models.svdpp import implicit_sum, svdpp_objective, user_blocks

LR, REG, REG_BIAS = 0.05, 0.1, 0.03


def state(data, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return dict(user_bias=rng.normal(0, 0.1, data.n_users), item_bias=rng.normal(0, 0.1, data.n_items),
                P=rng.normal(0, 0.3, (data.n_users, k)), Q=rng.normal(0, 0.3, (data.n_items, k)),
                Y=rng.normal(0, 0.3, (data.n_items, k)))


def copy(params):
    return {name: value.copy() for name, value in params.items()}


def koren_epoch(data, order, mean, s):
    """Koren (2008) SGD written literally: every y_j of N(u) moves at every rating."""
    implicit = data.to_csr(binary=True)
    for n in order:
        u, i, r = data.users[n], data.items[n], data.ratings[n]
        N = implicit.indices[implicit.indptr[u]:implicit.indptr[u + 1]]
        norm = len(N) ** -0.5
        z = norm * s["Y"][N].sum(axis=0)
        e = r - (mean + s["user_bias"][u] + s["item_bias"][i] + s["Q"][i] @ (s["P"][u] + z))
        p, q = s["P"][u].copy(), s["Q"][i].copy()
        s["user_bias"][u] += LR * (e - REG_BIAS * s["user_bias"][u])
        s["item_bias"][i] += LR * (e - REG_BIAS * s["item_bias"][i])
        s["P"][u] += LR * (e * q - REG * p)
        s["Q"][i] += LR * (e * (p + z) - REG * q)
        s["Y"][N] += LR * (e * norm * q - REG * s["Y"][N])


def fast_epoch(data, order, block_starts, mean, s):
    implicit = data.to_csr(binary=True)
    svdpp_epoch(implicit.indptr, implicit.indices, order, block_starts, data.users, data.items,
                data.ratings, mean, s["user_bias"], s["item_bias"], s["P"], s["Q"], s["Y"],
                LR, REG, REG_BIAS)


def test_fast_kernel_equals_per_rating_algorithm(planted):
    order, block_starts = user_blocks(planted.users, planted.n_users, np.random.default_rng(0))
    assert np.all(np.diff(planted.users[order])[np.setdiff1d(np.arange(len(order) - 1),
                                                             block_starts[1:-1] - 1)] == 0)
    mean = planted.ratings.mean()
    slow, fast = state(planted), state(planted)
    for _ in range(2):
        koren_epoch(planted, order, mean, slow)
        fast_epoch(planted, order, block_starts, mean, fast)
    for name in slow:
        np.testing.assert_allclose(fast[name], slow[name], rtol=1e-10, atol=1e-12)


def test_one_rating_step_is_minus_lr_times_its_gradient(planted):
    """The per-rating term of J, differentiated by central finite differences."""
    n = 7
    u = planted.users[n]
    implicit = planted.to_csr(binary=True)  # N(u) is all of u's items, not only this rating's
    mean = planted.ratings.mean()
    before = state(planted, seed=1)

    def term(s):
        N = implicit.indices[implicit.indptr[u]:implicit.indptr[u + 1]]
        i = planted.items[n]
        z = len(N) ** -0.5 * s["Y"][N].sum(axis=0)
        e = planted.ratings[n] - (mean + s["user_bias"][u] + s["item_bias"][i]
                                  + s["Q"][i] @ (s["P"][u] + z))
        return 0.5 * (e**2 + REG_BIAS * (s["user_bias"][u] ** 2 + s["item_bias"][i] ** 2)
                      + REG * (s["P"][u] @ s["P"][u] + s["Q"][i] @ s["Q"][i]
                               + (s["Y"][N] ** 2).sum()))

    after = copy(before)
    fast_epoch(planted, np.array([n]), np.array([0, 1]), mean, after)
    h = 1e-6
    for name, value in before.items():
        for idx in np.ndindex(value.shape):
            up, down = copy(before), copy(before)
            up[name][idx] += h
            down[name][idx] -= h
            grad = (term(up) - term(down)) / (2 * h)
            assert after[name][idx] == pytest.approx(value[idx] - LR * grad, abs=1e-8)


def test_objective_counts_each_y_once_per_rating(planted):
    s = state(planted)
    implicit = planted.to_csr(binary=True)
    mean = planted.ratings.mean()
    total = svdpp_objective(planted.users, planted.items, planted.ratings, implicit, mean,
                            s["user_bias"], s["item_bias"], s["P"], s["Q"], s["Y"], REG, REG_BIAS)
    s_zero_y = dict(s, Y=np.zeros_like(s["Y"]))
    base = svdpp_objective(planted.users, planted.items, planted.ratings, implicit, mean,
                           s["user_bias"], s["item_bias"], s["P"], s["Q"], s_zero_y["Y"], REG,
                           REG_BIAS)
    # y-penalty by hand: each rating (u, i) pays reg/2 * sum over j in N(u) of |y_j|^2
    counts = np.diff(implicit.indptr)
    y_sq = (s["Y"] ** 2).sum(axis=1)
    penalty = sum(0.5 * REG * y_sq[implicit.indices[implicit.indptr[u]:implicit.indptr[u + 1]]]
                  .sum() * counts[u] for u in range(planted.n_users))
    z = implicit_sum(implicit, s["Y"])
    e_with = (planted.ratings - mean - s["user_bias"][planted.users] - s["item_bias"][planted.items]
              - np.einsum("nk,nk->n", s["P"][planted.users] + z[planted.users],
                          s["Q"][planted.items]))
    e_without = (planted.ratings - mean - s["user_bias"][planted.users]
                 - s["item_bias"][planted.items]
                 - np.einsum("nk,nk->n", s["P"][planted.users], s["Q"][planted.items]))
    expected = base + penalty + 0.5 * (e_with @ e_with - e_without @ e_without)
    assert total == pytest.approx(expected, rel=1e-12)


def test_prediction_matches_per_user_reference(planted):
    model = SVDpp(n_factors=3, n_epochs=5, random_state=0).fit(planted)
    frame = planted.to_dataframe()
    for raw_user in ["u0", "u3", "u10"]:
        u = model.user_index([raw_user])[0]
        N = model.item_index(frame.loc[frame.user_id == raw_user, "item_id"].unique())
        z = model.implicit_factors_[N].sum(axis=0) / np.sqrt(len(N))
        for raw_item in ["i0", "i5", "i20"]:
            i = model.item_index([raw_item])[0]
            expected = (model.mean_ + model.user_bias_[u] + model.item_bias_[i]
                        + model.item_factors_[i] @ (model.user_factors_[u] + z))
            assert model.predict([raw_user], [raw_item])[0] == pytest.approx(expected, rel=1e-12)


def test_unknown_ids_drop_unknown_terms(planted):
    model = SVDpp(n_factors=3, n_epochs=5, random_state=0).fit(planted)
    u, i = model.user_index(["u1"])[0], model.item_index(["i2"])[0]
    got = model.predict(["nobody", "u1"], ["i2", "nothing"], allow_unknown=True)
    np.testing.assert_allclose(got, [model.mean_ + model.item_bias_[i],
                                     model.mean_ + model.user_bias_[u]])


def test_loss_history_decreases(planted):
    history = SVDpp(n_factors=3, n_epochs=20, lr=0.02, random_state=0).fit(planted).loss_history_
    assert len(history) == 20 and history[-1] < 0.8 * history[0]


@pytest.mark.parametrize("params, message", [
    ({"n_factors": 0}, "n_factors == 0"), ({"reg": -0.5}, "reg == -0.5"),
    ({"lr": -1.0}, "lr == -1.0"), ({"n_epochs": 0}, "n_epochs == 0"),
])
def test_bad_hyper_parameters_are_named(params, message, planted):
    with pytest.raises(ValueError, match=message):
        SVDpp(**params).fit(planted)


def test_divergent_learning_rate_raises(planted):
    with pytest.raises(FloatingPointError, match="diverged.*lower lr"):
        SVDpp(n_factors=4, lr=5.0, random_state=0).fit(planted)


@pytest.mark.slow
def test_movielens_fold_beats_biased_mf(ml100k):
    train, test = next(reclib.split.kfold(ml100k, n_splits=5, seed=0))
    svdpp = reclib.evaluation.evaluate_ratings(SVDpp(random_state=0).fit(train), test)
    funk = reclib.evaluation.evaluate_ratings(
        reclib.models.FunkSVD(n_factors=20, random_state=0).fit(train), test)
    assert svdpp["rmse"] < 0.915
    assert svdpp["rmse"] < funk["rmse"] - 0.02


def test_compiled_loss_equals_numpy_objective(planted):
    s = state(planted, seed=2)
    implicit, R = planted.to_csr(binary=True), planted.to_csr()
    mean = planted.ratings.mean()
    fast = svdpp_loss(R.indptr, R.indices, R.data, implicit.indptr, implicit.indices, mean,
                      s["user_bias"], s["item_bias"], s["P"], s["Q"], s["Y"], REG, REG_BIAS)
    slow = svdpp_objective(planted.users, planted.items, planted.ratings, implicit, mean,
                           s["user_bias"], s["item_bias"], s["P"], s["Q"], s["Y"], REG, REG_BIAS)
    assert fast == pytest.approx(slow, rel=1e-12)
