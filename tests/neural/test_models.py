"""Model-specific checks: LightGCN's graph against dense references, NCF's GMF formula,
AutoRec's fallbacks for unknown ids."""

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from reclib.neural import GMF, AutoRec  # noqa: E402
from reclib.neural.lightgcn import LightGCNModule, normalized_adjacency, to_torch_sparse  # noqa: E402
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


@pytest.mark.parametrize("n_layers", [0, 1, 3])
def test_sparse_propagation_equals_dense_reference(R, n_layers):
    torch.manual_seed(n_layers)
    module = LightGCNModule(7, 5, n_factors=4, n_layers=n_layers).double()
    module.adjacency = to_torch_sparse(normalized_adjacency(R)).double()
    assert module.adjacency.is_sparse
    with torch.no_grad():
        users, items = module.propagate()
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
        scores = module.score_all(torch.arange(7)).numpy()
    np.testing.assert_allclose(scores, expected[:7] @ expected[7:].T, rtol=1e-6, atol=1e-9)


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


def test_gmf_full_scores_equal_pairwise_scores(planted):
    model = GMF(n_factors=4, n_epochs=2, device="cpu", random_state=0).fit(planted)
    block = model.score_block(np.arange(3), exclude_seen=False)
    again = model.predict(np.repeat(planted.user_ids[:3], 2), np.tile(planted.item_ids[:2], 3))
    np.testing.assert_allclose(block[:, :2].ravel(), again, rtol=1e-10)


def test_autorec_falls_back_to_means_for_unknown_ids(planted):
    model = AutoRec(n_hidden=4, n_epochs=2, device="cpu", random_state=0).fit(planted)
    df = planted.to_dataframe()
    got = model.predict(["nobody", "u0", "nobody"], ["i0", "nothing", "nothing"],
                        allow_unknown=True)
    assert got[0] == pytest.approx(df.loc[df.item_id == "i0", "rating"].mean())
    assert got[1] == pytest.approx(df.loc[df.user_id == "u0", "rating"].mean())
    assert got[2] == pytest.approx(df["rating"].mean())
    assert np.isfinite(model.predict(["u0"], ["i0"])).all()
