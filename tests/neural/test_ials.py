"""TorchImplicitALS: the batched CG against the numba model's CG, its exact solve and the dense
closed form, blocked against unblocked nonzeros, nDCG, bad input, save and load."""

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

import reclib  # noqa: E402
from reclib.datasets.synthetic import synthetic_interactions  # noqa: E402
from reclib.models import ImplicitALS, Recommender  # noqa: E402
from reclib.models.implicit_als import _solve_cg  # noqa: E402
from reclib.neural import TorchImplicitALS  # noqa: E402
from reclib.neural import ials  # noqa: E402
from reclib.neural._train import N_THREADS  # noqa: E402
from tests.conftest import planted_frame  # noqa: E402
from tests.models.test_implicit_als import dense_user_solve, random_problem  # noqa: E402


@pytest.fixture
def planted():
    return reclib.Interactions.from_dataframe(planted_frame())


def numba_model(dtype=np.float64, **params) -> ImplicitALS:
    """The reference, its factors and solves in ``dtype`` (float64: the float64 comparison)."""
    model = ImplicitALS(**params)
    model._dtype = dtype
    return model


def torch_half(C, X, Y, reg, steps, observed=False, block_nnz=3):
    """One :func:`ials._cg_half` on float64 copies; returns the new rows and the terms."""
    A, B = torch.tensor(X), torch.tensor(Y)
    nz = ials._Nonzeros(C, block_nnz, torch.device("cpu"), torch.float64, "csr")
    terms = ials._cg_half(A, B, B.T @ B, torch.tensor(reg), nz, steps, observed)
    return A.numpy(), float(terms)


# ---------------------------------------------------------------- one half-sweep
@pytest.mark.parametrize("steps", [1, 2, 3])
def test_batched_cg_is_the_numba_cg_row_for_row(steps):
    C, X, Y, reg = random_problem(n_users=30, n_items=11, f=5, density=0.4, seed=4)
    want = X.copy()
    _solve_cg(C.indptr, C.indices, C.data, want, Y, Y.T @ Y, reg, steps)
    got, _ = torch_half(C, X, Y, reg, steps)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_enough_cg_steps_give_the_dense_closed_form():
    C, X, Y, reg = random_problem(seed=1)
    got, _ = torch_half(C, X, Y, reg, steps=3 * Y.shape[1])
    np.testing.assert_allclose(got, dense_user_solve(C, Y, reg), rtol=1e-9, atol=1e-10)


def test_row_terms_are_the_objective_terms():
    C, X, Y, reg = random_problem(n_users=9, n_items=14, f=3, density=0.4, seed=5)
    # items solved against users: the observed terms come with the row terms
    Ct = C.T.tocsr()
    Ct.sort_indices()
    Y_new, terms = torch_half(Ct, Y, X, reg=np.linspace(0.2, 0.9, Y.shape[0]), steps=2,
                              observed=True)
    dense = C.toarray()
    s = X @ Y_new.T
    observed = np.sum(np.where(dense > 0, dense * s**2 + (dense + 1.0) * (1.0 - 2.0 * s), 0.0))
    ridge = np.linspace(0.2, 0.9, Y.shape[0]) @ (Y_new**2).sum(1)
    assert terms == pytest.approx(observed + ridge, rel=1e-11)


def test_a_row_with_no_residual_is_left_alone():
    C, X, Y, reg = random_problem(n_users=6, n_items=5, f=3, seed=6)
    exact = dense_user_solve(C, Y, reg)
    start = X.copy()
    start[2] = exact[2]                          # row 2 already solved: r = 0 up to rounding
    got, _ = torch_half(C, start, Y, reg, steps=3)
    np.testing.assert_allclose(got[2], exact[2], rtol=1e-10, atol=1e-12)
    assert np.isfinite(got).all()


# ---------------------------------------------------------------- whole fits
CONFIGS = [
    dict(),
    dict(confidence="log", epsilon=0.5, binary=False, alpha=3.0),
    dict(reg_basis="count", reg_exponent=1.0, reg=0.2),
    dict(reg_exponent=0.0, reg=2.0, alpha=5.0),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "log", "count", "plain"])
@pytest.mark.parametrize("cg_steps", [1, 3])
def test_float64_fit_equals_implicit_als_cg(planted, config, cg_steps):
    params = dict(n_factors=5, n_epochs=4, random_state=3, cg_steps=cg_steps, **config)
    want = numba_model(solver="cg", **params).fit(planted)
    got = TorchImplicitALS(dtype="float64", device="cpu", **params).fit(planted)
    assert got.user_factors_.dtype == np.float64
    np.testing.assert_allclose(got.user_factors_, want.user_factors_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(got.item_factors_, want.item_factors_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(got.loss_history_, want.loss_history_, rtol=1e-10)


def test_many_cg_steps_equal_the_exact_solver(planted):
    params = dict(n_factors=4, n_epochs=5, random_state=3, reg=0.5, alpha=4.0)
    exact = numba_model(solver="exact", **params).fit(planted)
    got = TorchImplicitALS(cg_steps=12, dtype="float64", device="cpu", **params).fit(planted)
    np.testing.assert_allclose(got.user_factors_, exact.user_factors_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got.item_factors_, exact.item_factors_, rtol=0, atol=1e-6)


def test_float32_fit_tracks_implicit_als(planted):
    params = dict(n_factors=5, n_epochs=4, random_state=0)
    want = ImplicitALS(**params).fit(planted)
    got = TorchImplicitALS(device="cpu", **params).fit(planted)
    assert got.user_factors_.dtype == np.float32
    np.testing.assert_allclose(got.user_factors_, want.user_factors_, rtol=0, atol=1e-4)
    np.testing.assert_allclose(got.loss_history_, want.loss_history_, rtol=1e-5)


def test_blocks_of_nonzeros_do_not_change_the_result(planted, monkeypatch):
    params = dict(n_factors=4, n_epochs=3, random_state=1, dtype="float64", device="cpu")
    whole = TorchImplicitALS(**params).fit(planted)
    # a budget of 3 rows of 4 float64 factors, per gathered matrix: 3 nonzeros per block, so
    # rows are cut across blocks (users have ~11 items, items ~15 users)
    monkeypatch.setitem(ials._GATHER_BUDGET, "cpu", 2 * 3 * 4 * 8)
    tiny = TorchImplicitALS(**params).fit(planted)
    np.testing.assert_allclose(tiny.user_factors_, whole.user_factors_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tiny.item_factors_, whole.item_factors_, rtol=0, atol=1e-12)
    # index_add_ (the MPS path) sums the same rows
    monkeypatch.setitem(ials._ACCUMULATE, "cpu", "index_add")
    other = TorchImplicitALS(**params).fit(planted)
    np.testing.assert_allclose(other.user_factors_, whole.user_factors_, rtol=0, atol=1e-12)


def test_block_bounds_cover_every_nonzero_once():
    C, *_ = random_problem(n_users=20, n_items=7, density=0.5, seed=2)
    keep = np.ones(C.shape[0])
    keep[3] = 0.0                                    # an empty row inside a block
    C = sp.csr_matrix(sp.diags(keep) @ C)
    C.eliminate_zeros()
    C.sort_indices()
    for block in (1, 2, 5, 1000):
        nz = ials._Nonzeros(C, block, torch.device("cpu"), torch.float64, "csr")
        covered = np.zeros(C.nnz, dtype=int)
        rows = nz.rows.numpy()
        for n0, n1, lo, hi, crow in nz.blocks:
            assert n1 - n0 <= block and crow[0] == 0 and crow[-1] == n1 - n0
            assert rows[n0] == lo and rows[n1 - 1] == hi - 1
            covered[n0:n1] += 1
        assert (covered == 1).all()


def test_ndcg_equals_implicit_als_on_synthetic_data():
    frame = synthetic_interactions(300, 120, 4000, alpha=1.0, seed=0, user_alpha=0.5)
    data = reclib.Interactions.from_dataframe(frame)
    train, test = reclib.split.stratified_split(data, ratio=0.8, seed=0)
    params = dict(n_factors=8, n_epochs=6, random_state=0)
    want = numba_model(**params).fit(train)
    got = TorchImplicitALS(dtype="float64", device="cpu", **params).fit(train)
    a = reclib.evaluation.evaluate_ranking(want, train, test)["ndcg@10"]
    b = reclib.evaluation.evaluate_ranking(got, train, test)["ndcg@10"]
    assert b == pytest.approx(a, abs=1e-6)
    pop = reclib.evaluation.evaluate_ranking(reclib.models.Popularity().fit(train), train, test)
    assert b > 0.5 * pop["ndcg@10"]                    # it learned something


def test_loss_never_increases_and_threads_are_limited(planted):
    model = TorchImplicitALS(n_factors=6, n_epochs=6, random_state=0, device="cpu")
    threads = []
    model._after_sweep = lambda sweep, X, Y: threads.append(torch.get_num_threads())
    before = torch.get_num_threads()
    model.fit(planted)
    loss = model.loss_history_
    assert np.all(np.diff(loss) <= 1e-5 * loss[:-1]), loss
    assert threads == [min(before, N_THREADS)] * 6
    assert torch.get_num_threads() == before
    assert len(model.epoch_seconds_) == 6 and (model.epoch_seconds_ > 0).all()


def test_same_seed_same_factors_and_scores_from_the_core(planted):
    a = TorchImplicitALS(n_factors=4, n_epochs=3, random_state=2, device="cpu").fit(planted)
    b = TorchImplicitALS(n_factors=4, n_epochs=3, random_state=2, device="cpu").fit(planted)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    users = planted.user_ids[:7]
    items, scores = a.recommend(users, k=5)
    U = a.user_factors_[a.user_index(users)].astype(np.float64)
    full = U @ a.item_factors_.astype(np.float64).T
    seen = a.seen_[a.user_index(users)]
    want_idx, want_scores = reclib.core.topk(full, 5, exclude=seen)
    np.testing.assert_array_equal(items, a.item_ids_[want_idx])
    np.testing.assert_allclose(scores, want_scores, rtol=1e-12)
    np.testing.assert_allclose(a.predict(users, items[:, 0]), scores[:, 0], rtol=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")    # the overflow it is about
def test_divergence_raises(planted):
    with pytest.raises(FloatingPointError, match="diverged"):
        TorchImplicitALS(n_factors=4, alpha=1e38, reg=0.0, n_epochs=3, random_state=0,
                         device="cpu").fit(planted)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("param, value, message", [
    ("n_factors", 0, "n_factors == 0"),
    ("reg", -1.0, "reg == -1.0"),
    ("alpha", -2.0, "alpha == -2.0"),
    ("confidence", "exp", "confidence == 'exp'"),
    ("epsilon", 0.0, "epsilon == 0.0"),
    ("reg_exponent", 2.0, "reg_exponent == 2.0"),
    ("n_epochs", 0, "n_epochs == 0"),
    ("solver", "exact", "solver == 'exact' is not supported"),
    ("solver", "lu", "solver == 'lu'"),
    ("cg_steps", 0, "cg_steps == 0"),
    ("init_std", 0.0, "init_std == 0.0"),
    ("reg_basis", "rows", "reg_basis == 'rows'"),
    ("device", "tpu", "device == 'tpu'"),
    ("dtype", "float16", "dtype == 'float16'"),
])
def test_bad_hyper_parameters_are_named(planted, param, value, message):
    with pytest.raises(ValueError, match=message):
        TorchImplicitALS(**{"device": "cpu", param: value}).fit(planted)


def test_wrong_types_are_named(planted):
    with pytest.raises(TypeError, match="binary must be True or False"):
        TorchImplicitALS(binary="yes", device="cpu").fit(planted)
    with pytest.raises(TypeError, match="n_factors must be an integer"):
        TorchImplicitALS(n_factors=4.0, device="cpu").fit(planted)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(planted):
    with pytest.raises(RuntimeError, match="device == 'cuda' but torch sees no CUDA GPU"):
        TorchImplicitALS(n_epochs=1, device="cuda").fit(planted)


def test_negative_ratings_are_refused():
    X = sp.csr_matrix(np.array([[1.0, -2.0], [0.0, 3.0]]))
    with pytest.raises(ValueError, match="confidence must not fall below 1"):
        TorchImplicitALS(binary=False, device="cpu").fit(X)


# ---------------------------------------------------------------- persistence
def test_save_and_load_without_pickle(planted, tmp_path):
    model = TorchImplicitALS(n_factors=4, n_epochs=3, random_state=0, reg_exponent=0.5,
                             cg_steps=2, device="cpu").fit(planted)
    path = model.save(tmp_path / "ials")
    with np.load(path, allow_pickle=False) as npz:
        assert "attr/user_factors_" in npz.files and "attr/item_factors_" in npz.files
    loaded = Recommender.load(path)
    assert type(loaded) is TorchImplicitALS
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.user_factors_, model.user_factors_)
    np.testing.assert_array_equal(loaded.loss_history_, model.loss_history_)
    a, b = model.recommend(planted.user_ids, k=5), loaded.recommend(planted.user_ids, k=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(loaded.similar_items(planted.item_ids[:2], k=3)[1],
                               model.similar_items(planted.item_ids[:2], k=3)[1])
