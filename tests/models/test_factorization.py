"""FunkSVD, BiasedMF and ExplicitALS: gradients, ALS steps, errors, and MovieLens accuracy."""

import numpy as np
import pytest

import reclib
from reclib.models import BiasedMF, ExplicitALS, FunkSVD
from reclib.models._factor_base import als_solve_rows, mf_gradient, mf_objective
from reclib.models._sgd_kernels import mf_epoch, mf_loss
from tests.conftest import planted_frame


def tiny_problem(seed=0, n_users=7, n_items=5, k=3, n=20):
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, size=n, replace=False)
    users, items = pairs // n_items, pairs % n_items
    ratings = rng.integers(1, 6, size=n).astype(float)
    params = dict(mean=ratings.mean(), user_bias=rng.normal(size=n_users),
                  item_bias=rng.normal(size=n_items), P=rng.normal(size=(n_users, k)),
                  Q=rng.normal(size=(n_items, k)), reg=0.3, reg_bias=0.2)
    return users, items, ratings, params


def numerical_gradient(f, x, h=1e-6):
    """Central finite differences of the scalar function ``f`` at the array ``x`` (in place)."""
    grad = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        up = f()
        x[idx] = old - h
        down = f()
        x[idx] = old
        grad[idx] = (up - down) / (2 * h)
    return grad


@pytest.mark.parametrize("biased", [True, False])
def test_hand_gradient_matches_finite_differences(biased):
    users, items, ratings, params = tiny_problem()
    if not biased:
        params.update(mean=0.0, user_bias=None, item_bias=None)
    ours = mf_gradient(users, items, ratings, **params)
    objective = lambda: mf_objective(users, items, ratings, **params)  # noqa: E731
    for name, grad in zip(["user_bias", "item_bias", "P", "Q"], ours):
        if grad is not None:
            expected = numerical_gradient(objective, params[name])
            np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("biased", [True, False])
def test_sgd_step_follows_one_ratings_gradient(biased):
    users, items, ratings, params = tiny_problem(seed=1)
    n, lr = 4, 0.01
    one = dict(params, mean=params["mean"] if biased else 0.0)
    if not biased:
        one.update(user_bias=None, item_bias=None)
    grads = mf_gradient(users[[n]], items[[n]], ratings[[n]], **one)
    b_u, b_i = params["user_bias"].copy(), params["item_bias"].copy()
    P, Q = params["P"].copy(), params["Q"].copy()
    mf_epoch(users, items, ratings, np.array([n]), one["mean"], b_u, b_i, P, Q, lr,
             params["reg"], params["reg_bias"], biased)
    np.testing.assert_allclose(P, params["P"] - lr * grads[2], rtol=1e-12)
    np.testing.assert_allclose(Q, params["Q"] - lr * grads[3], rtol=1e-12)
    if biased:
        np.testing.assert_allclose(b_u, params["user_bias"] - lr * grads[0], rtol=1e-12)
        np.testing.assert_allclose(b_i, params["item_bias"] - lr * grads[1], rtol=1e-12)


def test_als_rows_match_least_squares_reference():
    rng = np.random.default_rng(2)
    n_rows, n_other, d = 6, 9, 4
    design = rng.normal(size=(n_other, d))
    reg_diag = np.array([0.5, 0.5, 0.5, 0.1])
    indptr, indices, targets = [0], [], []
    for r in range(n_rows):
        cols = rng.choice(n_other, size=r + 1, replace=False)  # row r has r + 1 observations
        indices += list(cols)
        targets += list(rng.normal(size=r + 1))
        indptr.append(len(indices))
    W = als_solve_rows(np.array(indptr), np.array(indices), np.array(targets), design, reg_diag)
    for r in range(n_rows):
        s, e = indptr[r], indptr[r + 1]
        # ridge as ordinary least squares on the augmented system [X; sqrt(n_r Lambda)]
        A = np.vstack([design[indices[s:e]], np.diag(np.sqrt((e - s) * reg_diag))])
        b = np.r_[targets[s:e], np.zeros(d)]
        expected = np.linalg.lstsq(A, b, rcond=None)[0]
        np.testing.assert_allclose(W[r], expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("model", [ExplicitALS(n_factors=3, n_epochs=8, random_state=0),
                                   BiasedMF(n_factors=3, n_epochs=8, solver="als",
                                            random_state=0)], ids=["ExplicitALS", "BiasedMF"])
def test_als_objective_never_increases(model, planted):
    history = model.fit(planted).loss_history_
    assert len(history) == 8
    assert np.all(np.diff(history) <= 1e-9 * history[0])


def test_als_half_step_is_a_stationary_point(planted):
    model = ExplicitALS(n_factors=3, n_epochs=3, reg=0.2, random_state=0).fit(planted)
    d_bu, d_bi, dP, dQ = mf_gradient(planted.users, planted.items, planted.ratings, 0.0, None,
                                     None, model.user_factors_, model.item_factors_, 0.2, 0.0)
    # the last half-step solved for Q exactly, so dJ/dQ vanishes there
    np.testing.assert_allclose(dQ, 0.0, atol=1e-9)
    assert np.abs(dP).max() > 1e-6


def test_sgd_and_als_minimise_the_same_objective(planted):
    sgd = BiasedMF(n_factors=2, n_epochs=300, lr=0.01, reg=0.1, random_state=0).fit(planted)
    als = BiasedMF(n_factors=2, n_epochs=50, reg=0.1, solver="als", random_state=0).fit(planted)
    assert abs(sgd.loss_history_[-1] - als.loss_history_[-1]) < 0.05 * als.loss_history_[-1]


def test_sgd_loss_decreases(planted):
    history = BiasedMF(n_factors=4, n_epochs=30, lr=0.02, random_state=0).fit(planted).loss_history_
    assert history[-1] < 0.8 * history[0]


def test_unknown_ids_drop_unknown_terms(planted):
    model = BiasedMF(n_factors=3, n_epochs=5, random_state=0).fit(planted)
    u, i = model.user_index(["u1"])[0], model.item_index(["i2"])[0]
    got = model.predict(["nobody", "u1", "nobody"], ["i2", "nothing", "nothing"],
                        allow_unknown=True)
    np.testing.assert_allclose(got, [model.mean_ + model.item_bias_[i],
                                     model.mean_ + model.user_bias_[u], model.mean_])
    funk = FunkSVD(n_factors=3, n_epochs=5, random_state=0).fit(planted)
    np.testing.assert_allclose(funk.predict(["nobody"], ["i2"], allow_unknown=True),
                               planted.ratings.mean())


@pytest.mark.parametrize("cls, params, message", [
    (BiasedMF, {"n_factors": 0}, "n_factors == 0"),
    (BiasedMF, {"reg": -0.1}, "reg == -0.1"),
    (BiasedMF, {"reg_bias": -1.0}, "reg_bias == -1.0"),
    (BiasedMF, {"lr": 0.0}, "lr == 0.0"),
    (BiasedMF, {"solver": "newton"}, "solver == 'newton'"),
    (FunkSVD, {"n_epochs": 0}, "n_epochs == 0"),
    (ExplicitALS, {"reg": -2}, "reg == -2"),
    (ExplicitALS, {"init_std": -1.0}, "init_std == -1.0"),
])
def test_bad_hyper_parameters_are_named(cls, params, message, planted):
    with pytest.raises(ValueError, match=message):
        cls(**params).fit(planted)


@pytest.mark.parametrize("cls", [FunkSVD, BiasedMF])
def test_divergent_learning_rate_raises(cls, planted):
    with pytest.raises(FloatingPointError, match="diverged.*lower lr"):
        cls(n_factors=4, lr=5.0, n_epochs=20, random_state=0).fit(planted)


def test_verbose_and_seed(planted):
    a = BiasedMF(n_factors=3, n_epochs=3, random_state=3, verbose=True).fit(planted)
    b = BiasedMF(n_factors=3, n_epochs=3, random_state=3).fit(planted)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)


def test_factors_learn_the_planted_groups():
    data = reclib.Interactions.from_dataframe(planted_frame(n_users=60, n_items=40))
    model = ExplicitALS(n_factors=2, n_epochs=10, random_state=0).fit(data)
    similar, _ = model.similar_items(["i0", "i39"], k=5)
    assert all(int(i[1:]) < 20 for i in similar[0]) and all(int(i[1:]) >= 20 for i in similar[1])


@pytest.mark.slow
def test_movielens_fold_accuracy(ml100k):
    train, test = next(reclib.split.kfold(ml100k, n_splits=5, seed=0))
    biased = reclib.evaluation.evaluate_ratings(
        BiasedMF(n_factors=50, n_epochs=40, lr=0.007, reg=0.05, init_std=0.05,
                 random_state=0).fit(train), test)
    baseline = reclib.evaluation.evaluate_ratings(
        reclib.models.BaselinePredictor().fit(train), test)
    assert biased["rmse"] < 0.92
    assert biased["rmse"] < baseline["rmse"] - 0.02
    als = reclib.evaluation.evaluate_ratings(
        BiasedMF(solver="als", n_factors=10, reg=0.1, n_epochs=5, random_state=0).fit(train), test)
    assert als["rmse"] < baseline["rmse"]


@pytest.mark.parametrize("biased", [True, False])
def test_compiled_loss_equals_numpy_objective(biased):
    users, items, ratings, params = tiny_problem(seed=3)
    if not biased:
        params.update(mean=0.0, user_bias=np.zeros(1), item_bias=np.zeros(1))
    fast = mf_loss(users, items, ratings, *params.values(), biased)
    if not biased:
        params.update(user_bias=None, item_bias=None)
    assert fast == pytest.approx(mf_objective(users, items, ratings, **params), rel=1e-12)


def test_compiled_als_rows_match_the_numpy_reference():
    from reclib.models._sgd_kernels import als_rows

    rng = np.random.default_rng(3)
    n_rows, n_other, d = 30, 25, 5
    design = rng.normal(size=(n_other, d))
    reg_diag = np.r_[np.full(d - 1, 0.3), 0.05]
    counts = rng.integers(0, 12, size=n_rows)  # some rows have no observations
    indptr = np.r_[0, np.cumsum(counts)]
    indices = np.concatenate([rng.choice(n_other, size=c, replace=False) for c in counts])
    targets = rng.normal(size=indptr[-1])
    fast = als_rows(indptr, indices.astype(np.int32), targets, design, reg_diag)
    slow = als_solve_rows(indptr, indices, targets, design, reg_diag)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)
    assert not fast[counts == 0].any()


def strata_problem(seed=0, n_users=60, n_items=45, k=4, n=900):
    users, items, ratings, params = tiny_problem(seed, n_users, n_items, k, n)
    from reclib.models.factorization import sgd_strata

    order, starts = sgd_strata(users, items, n_users, n_items, 4, np.random.default_rng(seed))
    return users, items, ratings, params, order, starts


def test_strata_are_a_permutation_whose_concurrent_blocks_share_no_user_or_item():
    users, items, _, _, order, starts = strata_problem()
    np.testing.assert_array_equal(np.sort(order), np.arange(len(users)))
    S = 4
    for s in range(S):
        blocks = [order[starts[a * S + (a + s) % S]:starts[a * S + (a + s) % S + 1]]
                  for a in range(S)]
        for a in range(S):
            for b in range(a + 1, S):
                assert not set(users[blocks[a]]) & set(users[blocks[b]])
                assert not set(items[blocks[a]]) & set(items[blocks[b]])
    sizes = np.diff(starts)
    assert sizes.sum() == len(users) and sizes.max() < 3 * sizes.mean()


@pytest.mark.parametrize("biased", [True, False])
def test_stratified_epoch_is_the_reference_epoch_on_the_concatenated_order(biased):
    """Whatever the threads do, the parallel pass gives the numbers of mf_epoch run on the
    blocks one after another in schedule order."""
    from reclib.models._sgd_kernels import mf_epoch_strata

    users, items, ratings, params, order, starts = strata_problem(seed=2)
    S, schedule = 4, np.array([2, 0, 3, 1])
    serial = np.concatenate([order[starts[a * S + (a + s) % S]:starts[a * S + (a + s) % S + 1]]
                             for s in schedule for a in range(S)])
    args = [params["mean"] if biased else 0.0]
    ref = [params[k].copy() for k in ("user_bias", "item_bias", "P", "Q")]
    fast = [params[k].copy() for k in ("user_bias", "item_bias", "P", "Q")]
    mf_epoch(users, items, ratings, serial, *args, *ref, 0.01, 0.3, 0.2, biased)
    mf_epoch_strata(users, items, ratings, order, starts, S, schedule, *args, *fast, 0.01, 0.3,
                    0.2, biased)
    for a, b in zip(fast, ref):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert not np.allclose(ref[2], params["P"])                      # it did move


def test_block_shuffle_permutes_within_blocks_from_the_seeds():
    from reclib.models._sgd_kernels import shuffle_blocks

    users, _, _, _, order, starts = strata_problem(seed=3)
    a, b = order.copy(), order.copy()
    seeds = np.arange(len(starts) - 1)
    shuffle_blocks(a, starts, seeds)
    shuffle_blocks(b, starts, seeds)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, order)
    for lo, hi in zip(starts[:-1], starts[1:]):
        np.testing.assert_array_equal(np.sort(a[lo:hi]), np.sort(order[lo:hi]))


@pytest.mark.parametrize("biased", [True, False])
def test_chunked_loss_equals_numpy_objective(biased):
    from reclib.models._sgd_kernels import mf_loss_chunked

    users, items, ratings, params = tiny_problem(seed=4, n=30)
    if not biased:
        params.update(mean=0.0, user_bias=np.zeros(1), item_bias=np.zeros(1))
    counts = np.bincount(users, minlength=7), np.bincount(items, minlength=5)
    fast = mf_loss_chunked(users, items, ratings, *params.values(), biased, *counts)
    if not biased:
        params.update(user_bias=None, item_bias=None)
    assert fast == pytest.approx(mf_objective(users, items, ratings, **params), rel=1e-12)


def test_sgd_scratch_is_not_kept_on_the_model(planted):
    model = BiasedMF(n_factors=3, n_epochs=2, random_state=0).fit(planted)
    assert not hasattr(model, "_strata")


@pytest.mark.parametrize("biased", [True, False])
def test_record_epoch_is_the_index_epoch(biased):
    """The model's path (rows packed by block, shuffled as rows) takes the same steps as the
    index path: the same shuffle seeds put the rows in the order of the shuffled indices."""
    from reclib.models._sgd_kernels import (block_records, mf_epoch_records, mf_epoch_strata,
                                            shuffle_block_records, shuffle_blocks)

    users, items, ratings, params, order, starts = strata_problem(seed=4)
    S, schedule, seeds = 4, np.array([1, 3, 0, 2]), np.arange(16) + 7
    records = block_records(users, items, ratings, order)
    shuffled = order.copy()
    shuffle_blocks(shuffled, starts, seeds)
    shuffle_block_records(records, starts, seeds)
    np.testing.assert_array_equal(records, np.column_stack([users[shuffled], items[shuffled],
                                                            ratings[shuffled]]))
    args = [params["mean"] if biased else 0.0]
    ref = [params[k].copy() for k in ("user_bias", "item_bias", "P", "Q")]
    fast = [params[k].copy() for k in ("user_bias", "item_bias", "P", "Q")]
    mf_epoch_strata(users, items, ratings, shuffled, starts, S, schedule, *args, *ref, 0.01,
                    0.3, 0.2, biased)
    mf_epoch_records(records, starts, S, schedule, *args, *fast, 0.01, 0.3, 0.2, biased)
    for a, b in zip(fast, ref):
        np.testing.assert_array_equal(a, b)
