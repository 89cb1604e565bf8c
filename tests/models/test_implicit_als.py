"""ImplicitALS: the exact solve against a dense reference, CG against the exact solve, the
objective, confidence options and bad hyper-parameters."""

import numpy as np
import pytest
import scipy.sparse as sp

import reclib
from reclib.models import ImplicitALS
from reclib.models.implicit_als import (_balanced_chunks, _cg_sweep, _gram, _solve_cg,
                                        _solve_exact, ials_objective)


def random_problem(n_users=12, n_items=9, f=4, density=0.35, seed=0):
    rng = np.random.default_rng(seed)
    C = sp.random(n_users, n_items, density=density, format="csr", random_state=seed,
                  data_rvs=lambda n: rng.uniform(0.5, 5.0, n))      # c_ui - 1 on observed
    C.sort_indices()
    X = rng.standard_normal((n_users, f))
    Y = rng.standard_normal((n_items, f))
    reg = rng.uniform(0.1, 1.0, n_users)
    return C, X, Y, reg


def dense_user_solve(C, Y, reg):
    """x_u = (Y^T C_u Y + reg_u I)^-1 Y^T C_u p_u with the full |I| x |I| diagonal C_u."""
    conf = C.toarray() + 1.0                                         # c_ui (1 where unobserved)
    pref = (C.toarray() > 0).astype(float)                           # p_ui
    out = np.empty((C.shape[0], Y.shape[1]))
    for u in range(C.shape[0]):
        Cu = np.diag(conf[u])
        lhs = Y.T @ Cu @ Y + reg[u] * np.eye(Y.shape[1])
        out[u] = np.linalg.solve(lhs, Y.T @ Cu @ pref[u])
    return out


def test_exact_solve_matches_dense_reference():
    C, X, Y, reg = random_problem()
    _solve_exact(C.indptr, C.indices, C.data, X, Y, Y.T @ Y, reg)
    np.testing.assert_allclose(X, dense_user_solve(C, Y, reg), rtol=1e-9, atol=1e-10)


def test_cg_converges_to_exact_solve():
    C, X, Y, reg = random_problem(seed=1)
    exact = dense_user_solve(C, Y, reg)
    few = X.copy()
    _solve_cg(C.indptr, C.indices, C.data, few, Y, Y.T @ Y, reg, 1)
    enough = X.copy()                                   # f steps solve an f x f system exactly
    _solve_cg(C.indptr, C.indices, C.data, enough, Y, Y.T @ Y, reg, Y.shape[1])
    np.testing.assert_allclose(enough, exact, rtol=1e-6, atol=1e-8)
    assert np.abs(few - exact).max() > 1e-3             # one step alone is not the answer


def test_objective_matches_brute_force():
    C, X, Y, reg = random_problem(seed=2)
    reg_i = np.linspace(0.1, 1.0, Y.shape[0])
    conf, pref = C.toarray() + 1.0, (C.toarray() > 0).astype(float)
    brute = (np.sum(conf * (pref - X @ Y.T) ** 2) + np.sum(reg * (X ** 2).sum(1))
             + np.sum(reg_i * (Y ** 2).sum(1)))
    assert ials_objective(C, X, Y, reg, reg_i) == pytest.approx(brute, rel=1e-10)


@pytest.mark.parametrize("solver", ["exact", "cg"])
def test_loss_never_increases(planted, solver):
    # every half-sweep minimises (exact) or decreases (CG steps) a convex quadratic per row
    model = ImplicitALS(n_factors=6, n_epochs=8, solver=solver, random_state=0).fit(planted)
    loss = model.loss_history_
    assert np.all(np.diff(loss) <= 1e-5 * loss[:-1]), loss
    assert loss[-1] < loss[0]


def test_cg_fit_agrees_with_exact_fit(planted):
    # with as many CG steps as factors, every CG solve is the exact one
    params = dict(n_factors=4, n_epochs=5, random_state=3, reg=0.5, alpha=4.0)
    cg = ImplicitALS(solver="cg", cg_steps=4, **params).fit(planted)
    exact = ImplicitALS(solver="exact", **params).fit(planted)
    np.testing.assert_allclose(cg.user_factors_, exact.user_factors_, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(cg.item_factors_, exact.item_factors_, rtol=1e-3, atol=1e-4)
    # the default 3 warm-started steps reach nearly the same objective
    fast = ImplicitALS(solver="cg", cg_steps=3, **params).fit(planted)
    assert fast.loss_history_[-1] == pytest.approx(exact.loss_history_[-1], rel=2e-2)


def test_confidence_options():
    X = sp.csr_matrix(np.array([[0.0, 1.0, 4.0], [2.0, 0.0, 0.0]]))
    linear = ImplicitALS(alpha=2.0, binary=False).confidence_matrix(X)
    np.testing.assert_allclose(linear.data, [2.0, 8.0, 4.0])
    log = ImplicitALS(alpha=2.0, confidence="log", epsilon=0.5, binary=False).confidence_matrix(X)
    np.testing.assert_allclose(log.data, 2.0 * np.log1p(np.array([1.0, 4.0, 2.0]) / 0.5),
                               rtol=1e-6)
    binary = ImplicitALS(alpha=2.0).confidence_matrix(X)
    np.testing.assert_allclose(binary.data, [2.0, 2.0, 2.0])


def test_frequency_scaled_regularisation_is_used(planted):
    plain = ImplicitALS(n_factors=4, n_epochs=3, random_state=0, reg=0.01,
                        reg_exponent=0.0).fit(planted)
    scaled = ImplicitALS(n_factors=4, n_epochs=3, random_state=0, reg=0.01,
                         reg_exponent=1.0).fit(planted)
    # lambda_u = reg * (n_items + sum c_ui - 1)^1 is far larger: factors shrink
    assert np.linalg.norm(scaled.user_factors_) < 0.5 * np.linalg.norm(plain.user_factors_)


@pytest.mark.parametrize("param, value, message", [
    ("n_factors", 0, "n_factors == 0"),
    ("reg", -1.0, "reg == -1.0"),
    ("alpha", -2.0, "alpha == -2.0"),
    ("solver", "lu", "solver == 'lu'"),
    ("confidence", "exp", "confidence == 'exp'"),
    ("reg_exponent", 2.0, "reg_exponent == 2.0"),
    ("cg_steps", 0, "cg_steps == 0"),
    ("n_epochs", 0, "n_epochs == 0"),
])
def test_bad_hyper_parameters_are_named(planted, param, value, message):
    with pytest.raises(ValueError, match=message):
        ImplicitALS(**{param: value}).fit(planted)


@pytest.mark.parametrize("reg_exponent", [0.0, 1.0])
def test_divergence_raises(planted, reg_exponent):
    with pytest.raises(FloatingPointError, match="diverged"):
        ImplicitALS(n_factors=4, alpha=1e38, reg=0.0, reg_exponent=reg_exponent, n_epochs=3,
                    random_state=0).fit(planted)


@pytest.mark.slow
def test_movielens_beats_popularity(ml100k_topn):
    train, test = ml100k_topn
    pop = reclib.evaluation.evaluate_ranking(reclib.models.Popularity().fit(train), train, test)
    model = ImplicitALS(random_state=0).fit(train)
    ials = reclib.evaluation.evaluate_ranking(model, train, test)
    assert ials["ndcg@10"] > pop["ndcg@10"] + 0.1


def test_implicit_library_fed_our_confidence_reaches_the_same_objective():
    """The ranking benchmark hands implicit's ALS the confidence matrix ImplicitALS builds and
    claims both then fit one objective (at reg_exponent=0): the exact solvers of both libraries
    must end at the same value of J."""
    als = pytest.importorskip("implicit.cpu.als")
    rng = np.random.default_rng(3)
    dense = (rng.random((40, 30)) < 0.3) * rng.integers(1, 6, (40, 30))
    R = sp.csr_matrix(dense.astype(np.float32))
    ours = ImplicitALS(n_factors=5, reg=2.0, reg_exponent=0.0, alpha=5.0, confidence="log",
                       binary=False, solver="exact", n_epochs=60, random_state=0)
    ours.fit(R)
    C = ours.confidence_matrix(R)                                   # c - 1 on observed entries
    given = C.copy()
    given.data = given.data + 1.0                                   # implicit reads c itself
    reg_u, reg_i = np.full(C.shape[0], 2.0), np.full(C.shape[1], 2.0)
    j_ours = ials_objective(C, ours.user_factors_, ours.item_factors_, reg_u, reg_i)

    def peer_objective(matrix):
        peer = als.AlternatingLeastSquares(factors=5, regularization=2.0, use_cg=False,
                                           iterations=60, random_state=0)
        peer.fit(matrix, show_progress=False)
        return ials_objective(C, np.asarray(peer.user_factors, dtype=np.float32),
                              np.asarray(peer.item_factors, dtype=np.float32), reg_u, reg_i)

    assert peer_objective(given) == pytest.approx(j_ours, rel=1e-3)
    assert peer_objective(C) > j_ours * (1 + 2e-3)      # fed c - 1 instead, it fits another J


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("steps", [1, 3])
def test_fused_cg_sweep_matches_the_plain_cg_kernel_and_the_objective(dtype, steps):
    """The fast kernel the model runs is the plain CG kernel row for row, and the terms it
    returns add up, with the Gram trace, to ials_objective."""
    C, X, Y, reg = random_problem(n_users=30, n_items=11, f=5, density=0.4, seed=4)
    X, Y, reg = X.astype(dtype), Y.astype(dtype), reg.astype(dtype)
    C.data = C.data.astype(dtype)
    reg_i = np.linspace(0.2, 0.9, Y.shape[0]).astype(dtype)
    Ct = C.T.tocsr()
    Ct.sort_indices()
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-4, atol=1e-5)
    plain_x, fast_x = X.copy(), X.copy()
    _solve_cg(C.indptr, C.indices, C.data, plain_x, Y, Y.T @ Y, reg, steps)
    terms_u = np.full(C.shape[0], np.nan)
    _cg_sweep(C.indptr, C.indices, C.data, fast_x, Y, Y.T @ Y, reg, steps,
              _balanced_chunks(C.indptr, 5), False, terms_u)
    np.testing.assert_allclose(fast_x, plain_x, **tol)
    plain_y, fast_y = Y.copy(), Y.copy()
    gram_x = fast_x.T @ fast_x
    _solve_cg(Ct.indptr, Ct.indices, Ct.data, plain_y, fast_x, gram_x, reg_i, steps)
    terms_i = np.full(Ct.shape[0], np.nan)
    _cg_sweep(Ct.indptr, Ct.indices, Ct.data, fast_y, fast_x, gram_x, reg_i, steps,
              _balanced_chunks(Ct.indptr, 5), True, terms_i)
    np.testing.assert_allclose(fast_y, plain_y, **tol)
    fused = np.sum(gram_x * (fast_y.T @ fast_y)) + terms_u.sum() + terms_i.sum()
    rel = 1e-9 if dtype == np.float64 else 1e-4
    assert fused == pytest.approx(ials_objective(C, fast_x, fast_y, reg, reg_i), rel=rel)


@pytest.mark.parametrize("n_rows", [0, 1, 7, 5000])
def test_balanced_chunks_cover_every_row_once_with_similar_work(n_rows):
    rng = np.random.default_rng(n_rows)
    lengths = rng.zipf(1.5, n_rows).clip(max=10_000)
    indptr = np.r_[0, np.cumsum(lengths)]
    chunks = _balanced_chunks(indptr, 16)
    assert chunks[0] == 0 and chunks[-1] == n_rows
    assert np.all(np.diff(chunks) > 0) or n_rows == 0
    if n_rows == 5000:
        cost = np.add.reduceat(16 + 2 * lengths, chunks[:-1])
        longest_row = 16 + 2 * lengths.max()
        assert cost.max() <= max(2.5 * cost.mean(), longest_row + cost.mean())


def test_cg_fit_loss_history_is_the_objective_of_its_factors(planted):
    model = ImplicitALS(n_factors=5, n_epochs=2, reg=0.05, reg_exponent=0.5,
                        random_state=0).fit(planted)
    C = model.confidence_matrix(planted.to_csr(binary=False))
    n_users, n_items = C.shape
    reg_u = 0.05 * (n_items + np.asarray(C.sum(axis=1)).ravel()) ** 0.5
    reg_i = 0.05 * (n_users + np.asarray(C.sum(axis=0)).ravel()) ** 0.5
    assert model.loss_history_[-1] == pytest.approx(
        ials_objective(C, model.user_factors_, model.item_factors_, reg_u, reg_i), rel=1e-4)
    assert _gram(model.item_factors_).dtype == np.float32
