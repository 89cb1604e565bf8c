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


def random_csr(n_users=120, n_items=300, density=0.05, seed=0):
    X = sp.random(n_users, n_items, density=density, format="csr", random_state=seed)
    X.data[:] = 1.0
    X.sort_indices()
    users = np.repeat(np.arange(n_users), np.diff(X.indptr))
    return X, users


def test_batched_epoch_is_the_plain_epoch_number_for_number():
    from reclib.models.bpr import _bpr_epoch, _bpr_epoch_batched

    X, users = random_csr()
    rng = np.random.default_rng(0)
    P, Q, b = rng.normal(size=(120, 8)), rng.normal(size=(300, 8)), rng.normal(size=300)
    ref, fast = [a.copy() for a in (P, Q, b)], [a.copy() for a in (P, Q, b)]
    loss_ref = _bpr_epoch(X.indptr, X.indices, users, *ref, 0.05, 0.01, True, 7)
    loss_fast = _bpr_epoch_batched(X.indptr, X.indices, users, *fast, 0.05, 0.01, True, 7, 13)
    assert loss_fast == loss_ref
    for a, r in zip(fast, ref):
        np.testing.assert_array_equal(a, r)


def test_strata_plan_groups_and_blocks():
    from reclib.models.bpr import _strata_plan

    X, users = random_csr(seed=1)
    pairs, starts, members, member_starts = _strata_plan(X.indptr, X.indices, users, 300, 4,
                                                         np.random.default_rng(0))
    # every rating once, as its (user, item) pair
    got = np.lexsort((pairs[:, 1], pairs[:, 0]))
    want = np.lexsort((X.indices, users))
    np.testing.assert_array_equal(pairs[got], np.c_[users, X.indices][want])
    np.testing.assert_array_equal(np.sort(members), np.arange(300))
    assert np.all(np.diff(member_starts) == 75)                 # equal item groups
    group_of = np.empty(300, int)
    for g in range(4):
        group_of[members[member_starts[g]:member_starts[g + 1]]] = g
    for blk in range(16):
        block = pairs[starts[blk]:starts[blk + 1]]
        assert np.all(group_of[block[:, 1]] == blk % 4)         # items of group b only
    user_group = {}
    for blk in range(16):
        for u in pairs[starts[blk]:starts[blk + 1], 0]:
            assert user_group.setdefault(u, blk // 4) == blk // 4   # a user sits in one group


def test_block_sort_is_a_stable_counting_sort():
    from reclib.models.bpr import _block_sort

    rng = np.random.default_rng(3)
    users, items = rng.integers(0, 50, 2000), rng.integers(0, 80, 2000)
    g_u, g_i = rng.integers(0, 5, 50), rng.integers(0, 5, 80)
    pairs, starts = _block_sort(g_u, g_i, users, items, 5)
    block = g_u[users] * 5 + g_i[items]
    order = np.argsort(block, kind="stable")                   # the slow reference
    np.testing.assert_array_equal(pairs, np.c_[users, items][order])
    np.testing.assert_array_equal(starts, np.r_[0, np.cumsum(np.bincount(block, minlength=25))])


def test_strata_epoch_steps_like_the_plain_sampler():
    """The stratified epoch draws only true negatives, from the positive's item group, takes
    about one step per rating, and gives the same numbers on every run."""
    from reclib.models.bpr import _bpr_epoch_strata, _strata_plan

    X, users = random_csr(seed=2)
    rng = np.random.default_rng(1)
    P = (rng.normal(size=(120, 4)) * 0.1).astype(np.float32)
    Q = (rng.normal(size=(300, 4)) * 0.1).astype(np.float32)
    runs = []
    for _ in range(2):
        plan_rng = np.random.default_rng(5)
        plan = _strata_plan(X.indptr, X.indices, users, 300, 4, plan_rng)
        args = [a.copy() for a in (P, Q, np.zeros(300, dtype=np.float32))]
        loss = _bpr_epoch_strata(X.indptr, X.indices, users, *args, 0.05, 0.0, True, *plan, 4,
                                 plan_rng.permutation(4), plan_rng.integers(0, 2**31 - 1, 16))
        runs.append((loss, args))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    bias = runs[0][1][2]
    # with reg = 0 every step moves b_i up by lr g and b_j down by lr g: the biases add to 0,
    # and an item no user has is only ever a negative
    assert abs(bias.sum()) < 1e-5
    never = np.setdiff1d(np.arange(300), X.indices)
    assert len(never) and np.all(bias[never] <= 0) and bias[never].min() < 0
    assert 0.3 < runs[0][0] < 1.0                             # mean -ln sigma near ln 2


def test_large_catalogue_fit_is_reproducible_and_learns():
    X, _ = random_csr(n_users=200, n_items=400, density=0.05, seed=3)
    a = BPR(n_factors=4, n_epochs=5, random_state=0).fit(X)
    b = BPR(n_factors=4, n_epochs=5, random_state=0).fit(X)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    assert a.loss_history_[-1] < a.loss_history_[0]


@pytest.mark.parametrize("use_bias", [True, False])
def test_float32_row_step_is_the_reference_step(use_bias):
    """The strata epoch's in-place float32 step equals bpr_step to float32 rounding."""
    from reclib.models.bpr import _bpr_step_rows, bpr_step

    rng = np.random.default_rng(4)
    P = rng.normal(size=(5, 16)).astype(np.float32)
    Q = rng.normal(size=(6, 16)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    ref = [a.astype(np.float64) for a in (P, Q, b)]
    for u, i, j in [(0, 1, 2), (3, 2, 5), (3, 2, 1), (4, 0, 0 + 5)]:
        want = bpr_step(ref[0][u], ref[1][i], ref[1][j], ref[2], i, j, 0.05, 0.01, use_bias)
        got = _bpr_step_rows(P, Q, b, u, i, j, 0.05, 0.01, use_bias)
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
        for a, r in zip((P, Q, b), ref):
            np.testing.assert_allclose(a, r, rtol=2e-6, atol=2e-6)


def test_uniform_below_is_uniform_and_in_range():
    """Lemire's draw covers [0, n) with equal counts (a chi-square test), even for an n whose
    rejection zone is large, and one seed gives one stream."""
    import numba
    from scipy import stats

    from reclib.models.bpr import _uniform_below

    @numba.njit
    def draws(seed, n, size):
        state = np.empty(1, dtype=np.uint64)
        state[0] = np.uint64(seed)
        out = np.empty(size, dtype=np.int64)
        for t in range(size):
            out[t] = _uniform_below(state, n)
        return out

    for n in (1, 3, 7, 1000, 2**31 + 1):
        x = draws(11, n, 200_000)
        assert x.min() >= 0 and x.max() < n
        if 1 < n <= 1000:
            counts = np.bincount(x, minlength=n)
            assert stats.chisquare(counts).pvalue > 1e-4, n
    np.testing.assert_array_equal(draws(5, 97, 1000), draws(5, 97, 1000))
    assert not np.array_equal(draws(5, 97, 1000), draws(6, 97, 1000))
    big = draws(3, 2**31 + 1, 200_000)          # the upper half is reached as often as the lower
    assert abs((big >= 2**30).mean() - 0.5) < 0.01
