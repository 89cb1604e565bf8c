"""Model-specific checks: LightGCN's graph against dense references, NCF's GMF formula,
AutoRec's fallbacks for unknown ids."""

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from reclib.neural import GMF, AutoRec, NeuMF  # noqa: E402
from reclib.neural.lightgcn import (LightGCNModule, normalized_adjacency,  # noqa: E402
                                   propagate_symmetric, sparse_times, to_torch_sparse)
from reclib.neural.pairs import pair_scores  # noqa: E402
from reclib.neural.ncf import NCFModule  # noqa: E402


@pytest.fixture
def R():
    matrix = sp.random(7, 5, density=0.4, random_state=3, format="csr")
    matrix[6, :] = 0                               # a user without edges
    matrix.eliminate_zeros()
    return matrix


def dense_normalised(R):
    B = (R.toarray() > 0).astype(float)
    n_users, n_items = B.shape
    A = np.block([[np.zeros((n_users, n_users)), B], [B.T, np.zeros((n_items, n_items))]])
    degree = A.sum(axis=1)
    inv_sqrt = np.zeros_like(degree)
    inv_sqrt[degree > 0] = degree[degree > 0] ** -0.5
    return np.diag(inv_sqrt) @ A @ np.diag(inv_sqrt)


def test_normalised_adjacency_equals_dense_formula(R):
    A_hat = normalized_adjacency(R)
    assert sp.issparse(A_hat) and A_hat.nnz == 2 * R.nnz
    np.testing.assert_allclose(A_hat.toarray(), dense_normalised(R), rtol=1e-6)


@pytest.mark.parametrize("layout", ["csr", "coo"])
@pytest.mark.parametrize("n_layers", [0, 1, 3])
def test_sparse_propagation_equals_dense_reference(R, n_layers, layout):
    torch.manual_seed(n_layers)
    module = LightGCNModule(7, 5, n_factors=4, n_layers=n_layers).double()
    adjacency = to_torch_sparse(normalized_adjacency(R), layout=layout).double()
    assert adjacency.layout == {"csr": torch.sparse_csr, "coo": torch.sparse_coo}[layout]
    with torch.no_grad():
        users, items = module.propagate(adjacency)
    E = module.embedding.weight.detach().numpy()
    A_hat, layer, total = dense_normalised(R), E, E.copy()
    for _ in range(n_layers):
        layer = A_hat @ layer
        total += layer
    expected = total / (n_layers + 1)
    # the adjacency is stored in float32 (relative error ~1e-7 on entries of size ~0.1)
    np.testing.assert_allclose(np.vstack([users.numpy(), items.numpy()]), expected, rtol=1e-6,
                               atol=1e-7)
    with torch.no_grad():
        scores = module.score_all(torch.arange(7), adjacency).numpy()
    np.testing.assert_allclose(scores, expected[:7] @ expected[7:].T, rtol=1e-6, atol=1e-9)


def test_symmetric_propagation_gradient_equals_autograd_through_the_dense_matrix(R):
    """The hand-written backward pass (A G, using A = A^T) against autograd on dense A."""
    A = to_torch_sparse(normalized_adjacency(R)).to(torch.float64)
    A_dense = torch.from_numpy(dense_normalised(R))
    X = torch.randn(12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0),
                    requires_grad=True)
    weights = torch.randn(12, 3, dtype=torch.float64)
    (propagate_symmetric(A, propagate_symmetric(A, X)) * weights).sum().backward()
    ours = X.grad.clone()
    X.grad = None
    ((A_dense @ (A_dense @ X)) * weights).sum().backward()
    torch.testing.assert_close(ours, X.grad, rtol=1e-6, atol=1e-8)
    assert torch.autograd.gradcheck(lambda x: propagate_symmetric(A, x), (X.detach().clone()
                                                                          .requires_grad_(),))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sparse_times_equals_torch_and_scipy(R, dtype):
    """The compiled CSR loop against scipy's product, for a contiguous and a transposed X."""
    A_sp = normalized_adjacency(R)
    A = to_torch_sparse(A_sp).to(dtype)
    X = torch.randn(3, A.shape[0], dtype=dtype, generator=torch.Generator().manual_seed(2)).T
    expected = A_sp.toarray() @ X.double().numpy()
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    np.testing.assert_allclose(sparse_times(A, X).double().numpy(), expected, rtol=tol, atol=tol)
    coo = to_torch_sparse(A_sp, layout="coo").to(dtype)                     # torch's own path
    np.testing.assert_allclose(sparse_times(coo, X).double().numpy(), expected, rtol=tol,
                               atol=tol)


def test_pair_scores_gradient_equals_autograd_through_the_gathered_rows():
    """The two sparse products of the backward pass against autograd on the plain gather,
    with users and items repeated within the batch (their gradients add up)."""
    gen = torch.Generator().manual_seed(1)
    U = torch.randn(5, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    V = torch.randn(6, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    users = torch.tensor([0, 2, 2, 4, 0, 1, 4, 4])
    items = torch.randint(0, 6, (8, 3), generator=gen)
    weights = torch.randn(8, 3, dtype=torch.float64, generator=gen)
    scores = pair_scores(U, V, users, items)
    slow = (U[users][:, None, :] * V[items]).sum(-1)
    torch.testing.assert_close(scores, slow, rtol=1e-14, atol=0)
    ours = torch.autograd.grad((scores * weights).sum(), (U, V))
    reference = torch.autograd.grad((slow * weights).sum(), (U, V))
    for mine, theirs in zip(ours, reference):
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-14)
    assert torch.autograd.gradcheck(lambda a, b: pair_scores(a, b, users, items), (U, V))


def test_to_torch_sparse_rejects_an_unknown_layout(R):
    with pytest.raises(ValueError, match="layout"):
        to_torch_sparse(R, layout="dense")


def test_gmf_is_a_weighted_elementwise_product():
    module = NCFModule(3, 4, n_factors=5, layers=(8,), gmf=True, mlp=False).double()
    users, items = torch.tensor([0, 2]), torch.tensor([[1, 3], [0, 0]])
    with torch.no_grad():
        got = module(users, items)
        p, q = module.gmf.user.weight, module.gmf.item.weight
        h, b = module.output.weight[0], module.output.bias
        expected = torch.stack([torch.stack([h @ (p[u] * q[i]) + b[0] for i in row])
                                for u, row in zip(users, items)])
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("gmf,mlp,layers", [(True, False, (8,)), (False, True, (8, 6, 3)),
                                             (True, True, (8, 6, 3)), (False, True, (6,))])
def test_ncf_full_scoring_equals_the_pairwise_forward(gmf, mlp, layers):
    """score_all (GMF as a matrix product, the MLP's item projection once per item) against
    forward() on every (user, item) pair."""
    torch.manual_seed(0)
    module = NCFModule(5, 7, n_factors=4, layers=layers, gmf=gmf, mlp=mlp).double()
    with torch.no_grad():
        for p in module.parameters():       # weights of order one, so every term counts
            p.normal_()
        users = torch.tensor([0, 3, 4, 3])
        full = module.score_all(users)
        pairwise = module(users, torch.arange(7).expand(len(users), -1))
    assert full.shape == (4, 7)
    torch.testing.assert_close(full, pairwise, rtol=1e-12, atol=1e-12)


def test_gmf_full_scores_equal_pairwise_scores(planted):
    model = GMF(n_factors=4, n_epochs=2, device="cpu", random_state=0).fit(planted)
    block = model.score_block(np.arange(3), exclude_seen=False)
    again = model.predict(np.repeat(planted.user_ids[:3], 2), np.tile(planted.item_ids[:2], 3))
    np.testing.assert_allclose(block[:, :2].ravel(), again, rtol=1e-10)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_pretrained_neumf_starts_as_the_weighted_sum_of_gmf_and_mlp(planted, alpha):
    """He et al.'s initialisation: before joint training NeuMF = a GMF + (1 - a) MLP."""
    model = NeuMF(n_factors=4, layers=(8, 4), pretrain=True, alpha=alpha, pretrain_params={"n_epochs": 2},
                  device="cpu", random_state=0)
    gmf, mlp = model.pretrained_parts(planted)
    model.pretrain, model.n_epochs = False, 1
    model.fit(planted)                                  # the id maps, without pretraining
    model.pretrain = True
    module = model._build_module()
    model.pretrained_parts = lambda train: (gmf, mlp)
    model._initialise(module, planted)
    users = np.arange(planted.n_users)
    with torch.no_grad():
        got = module.double()(torch.as_tensor(users),
                              torch.arange(planted.n_items).expand(len(users), -1)).numpy()
    expected = (alpha * gmf.score_block(users, exclude_seen=False)
                + (1 - alpha) * mlp.score_block(users, exclude_seen=False))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_neumf_pretraining_is_seeded_and_checked(planted):
    kwargs = dict(n_factors=4, layers=(8, 4), n_epochs=2, pretrain=True, pretrain_params={"n_epochs": 2},
                  device="cpu", random_state=0)
    first = NeuMF(**kwargs).fit(planted).score_block(np.arange(5), exclude_seen=False)
    second = NeuMF(**kwargs).fit(planted).score_block(np.arange(5), exclude_seen=False)
    np.testing.assert_array_equal(first, second)
    with pytest.raises(ValueError, match="alpha"):
        NeuMF(alpha=1.5).fit(planted)
    with pytest.raises(TypeError, match="pretrain"):
        NeuMF(pretrain="yes").fit(planted)
    with pytest.raises(ValueError, match="unknown keys.*'epochs'"):
        NeuMF(pretrain_params={"epochs": 3}).fit(planted)
    with pytest.raises(TypeError, match="pretrain_params"):
        NeuMF(pretrain_params=3).fit(planted)


def test_neumf_from_given_parts_equals_neumf_that_pretrains_them(planted):
    kwargs = dict(n_factors=4, layers=(8, 4), n_epochs=2, pretrain_params={"n_epochs": 2},
                  device="cpu", random_state=0)
    itself = NeuMF(**kwargs).fit(planted)
    model = NeuMF(**kwargs)
    gmf, mlp = model.pretrained_parts(planted)
    given = model.fit_from_parts(planted, gmf, mlp)
    assert given is model and not hasattr(model, "_given_parts")
    users = np.arange(planted.n_users)
    np.testing.assert_array_equal(given.score_block(users, exclude_seen=False),
                                  itself.score_block(users, exclude_seen=False))
    with pytest.raises(TypeError, match="mlp must be a fitted MLP, got GMF"):
        NeuMF(**kwargs).fit_from_parts(planted, gmf, gmf)
    with pytest.raises(ValueError, match="gmf has n_factors=4, NeuMF has 8"):
        NeuMF(**{**kwargs, "n_factors": 8}).fit_from_parts(planted, gmf, mlp)
    with pytest.raises(ValueError, match=r"mlp has layers=\(8, 4\), NeuMF has \(8, 2\)"):
        NeuMF(**{**kwargs, "layers": (8, 2)}).fit_from_parts(planted, gmf, mlp)
    with pytest.raises(ValueError, match="pretrain is False"):
        NeuMF(**{**kwargs, "pretrain": False}).fit_from_parts(planted, gmf, mlp)
    frame = planted.to_dataframe()
    other = type(planted).from_dataframe(frame[frame.user_id != frame.user_id.iloc[0]])
    with pytest.raises(ValueError, match="gmf was fitted on other users or items"):
        NeuMF(**kwargs).fit_from_parts(other, gmf, mlp)


def test_autorec_falls_back_to_means_for_unknown_ids(planted):
    model = AutoRec(n_hidden=4, n_epochs=2, device="cpu", random_state=0).fit(planted)
    df = planted.to_dataframe()
    got = model.predict(["nobody", "u0", "nobody"], ["i0", "nothing", "nothing"],
                        allow_unknown=True)
    assert got[0] == pytest.approx(df.loc[df.item_id == "i0", "rating"].mean())
    assert got[1] == pytest.approx(df.loc[df.user_id == "u0", "rating"].mean())
    assert got[2] == pytest.approx(df["rating"].mean())
    assert np.isfinite(model.predict(["u0"], ["i0"])).all()
