r"""LightGCN: collaborative filtering by propagating embeddings over the user-item graph.

Users and items are the nodes of a bipartite graph with an edge for every training
interaction. Its adjacency and symmetric normalisation are

.. math::

    A = \begin{pmatrix} 0 & R \\ R^\top & 0 \end{pmatrix}, \qquad
    \tilde A = D^{-1/2} A D^{-1/2},

with :math:`R` the users x items interaction matrix and :math:`D` the diagonal degree matrix.
Starting from free embeddings :math:`E^{(0)}` (one row per user, then one per item), each layer
averages the neighbours' embeddings, with no weight matrix and no non-linearity, and the final
embedding is the mean over layers:

.. math::

    E^{(k+1)} = \tilde A E^{(k)}, \qquad E = \frac{1}{K+1} \sum_{k=0}^{K} E^{(k)}, \qquad
    \hat y_{ui} = e_u^\top e_i,

trained with BPR and an L2 penalty on the batch's layer-0 embeddings. :math:`\tilde A` is kept
sparse (scipy to build, a torch sparse tensor to multiply): it has :math:`2|R|` non-zeros,
whereas a dense one would hold :math:`(|U| + |I|)^2` numbers.

References
----------
X. He, K. Deng, X. Wang, Y. Li, Y. Zhang, M. Wang, "LightGCN: simplifying and powering graph
convolution network for recommendation", SIGIR 2020. https://arxiv.org/abs/2002.02126
"""

from __future__ import annotations

import warnings

import numba
import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .._validation import check_choice, check_int
from .estimator import NeuralRecommender
from .losses import gathered_squared_norm
from .pairs import pair_scores


def normalized_adjacency(X: sp.spmatrix) -> sp.csr_matrix:
    r""":math:`D^{-1/2} A D^{-1/2}` of the bipartite graph of ``X`` (users first, then items).

    Nodes without edges get a zero row and column (instead of a division by zero).
    """
    R = sp.csr_matrix(X, dtype=np.float32)
    R.data[:] = 1.0
    A = sp.bmat([[None, R], [R.T, None]], format="csr")          # (n_users + n_items)^2
    degree = np.asarray(A.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(degree)
    inv_sqrt[degree > 0] = degree[degree > 0] ** -0.5
    D = sp.diags(inv_sqrt)
    return (D @ A @ D).tocsr().astype(np.float32)


def to_torch_sparse(matrix: sp.spmatrix, device=None, layout: str = "csr") -> torch.Tensor:
    """A scipy sparse matrix as a torch sparse tensor, CSR (default) or coalesced COO.

    CSR is the faster layout for sparse x dense products on the CPU: on the MovieLens 100K
    graph one product took 0.6 ms against 4.3 ms for COO (one thread, this book's machine).
    """
    check_choice("layout", layout, {"csr", "coo"})
    if layout == "coo":
        coo = sp.coo_matrix(matrix)
        indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        values = torch.from_numpy(coo.data.astype(np.float32))
        return torch.sparse_coo_tensor(indices, values, coo.shape, device=device,
                                       check_invariants=False).coalesce()
    csr = sp.csr_matrix(matrix)
    csr.sort_indices()
    with warnings.catch_warnings():   # torch calls its CSR support "beta" once per process
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(torch.from_numpy(csr.indptr.astype(np.int64)),
                                       torch.from_numpy(csr.indices.astype(np.int64)),
                                       torch.from_numpy(csr.data.astype(np.float32)),
                                       csr.shape, device=device, check_invariants=False)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _csr_times_dense(indptr, indices, data, X, out):  # pragma: no cover (compiled)
    for r in range(len(indptr) - 1):
        row = out[r]
        row[:] = 0
        for p in range(indptr[r], indptr[r + 1]):
            weight, source = data[p], X[indices[p]]
            for k in range(len(row)):
                row[k] += weight * source[k]


def sparse_times(A: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    r"""``A @ X`` for a sparse ``A`` and a dense ``X``, not differentiable.

    On the CPU, for a CSR ``A`` and float32 or float64 ``X`` of ``A``'s dtype, a compiled
    loop (numba) walks each row's non-zeros once, :math:`(AX)_r = \sum_{p} a_{rp} X_{c_p}`,
    on one thread; chapter 6 times it against torch's CSR kernel, also on one thread. Every
    other case is torch's ``A @ X``.
    """
    if (A.device.type != "cpu" or A.layout != torch.sparse_csr or X.dtype != A.dtype
            or X.dtype not in (torch.float32, torch.float64) or X.dim() != 2):
        return A @ X
    X = X.detach().contiguous()
    out = torch.empty(A.shape[0], X.shape[1], dtype=X.dtype)
    _csr_times_dense(A.crow_indices().numpy(), A.col_indices().numpy(),
                     A.values().detach().numpy(), X.numpy(), out.numpy())
    return out


class _SymmetricPropagation(torch.autograd.Function):
    """The autograd function behind :func:`propagate_symmetric`."""

    @staticmethod
    def forward(ctx, A: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        ctx.A = A
        return sparse_times(A, X)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, sparse_times(ctx.A, grad)


def propagate_symmetric(A: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    r"""``A @ X`` for a symmetric sparse ``A`` (such as :math:`\tilde A`), differentiable in ``X``.

    Its backward pass is ``A @ G``: the gradient of :math:`Y = AX` is :math:`A^\top G`, which is
    :math:`AG` when :math:`A = A^\top`. That is one more sparse product, instead of the transpose
    of ``A`` that autograd, not knowing the symmetry, builds on every call. Both products go
    through :func:`sparse_times`. ``A`` is a constant
    and gets no gradient. Passing a matrix that is not symmetric gives wrong gradients.
    """
    return _SymmetricPropagation.apply(A, X)


class LightGCNModule(nn.Module):
    """Layer-0 embeddings plus the parameter-free propagation over a graph given as input.

    The normalised adjacency is an argument of every call (as in PyG's ``LightGCN``), so the
    module holds parameters only: the same weights score on the training graph or on a graph
    with new edges.
    """

    def __init__(self, n_users: int, n_items: int, n_factors: int, n_layers: int,
                 std: float = 0.1):
        super().__init__()
        self.n_users, self.n_layers = n_users, n_layers
        self.embedding = nn.Embedding(n_users + n_items, n_factors)   # E^(0), users first
        nn.init.normal_(self.embedding.weight, std=std)

    def propagate(self, adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user and item embeddings, ``(n_users, f)`` and ``(n_items, f)``."""
        layer = self.embedding.weight                                 # E^(0): (N, f)
        total = layer
        for _ in range(self.n_layers):
            layer = propagate_symmetric(adjacency, layer)             # E^(l+1) = Ã E^(l)
            total = total + layer
        final = total / (self.n_layers + 1)                           # mean over K + 1 layers
        return final[:self.n_users], final[self.n_users:]             # (n_users, f), (n_items, f)

    def forward(self, users: torch.Tensor, items: torch.Tensor,
                adjacency: torch.Tensor) -> torch.Tensor:
        user_emb, item_emb = self.propagate(adjacency)
        return pair_scores(user_emb, item_emb, users, items)              # (B, c)

    def score_all(self, users: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        user_emb, item_emb = self.propagate(adjacency)
        return user_emb[users] @ item_emb.T                          # (B, n_items)

    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Squared norm of the batch's layer-0 embeddings, per positive, halved."""
        rows = torch.cat([users, items.reshape(-1) + self.n_users])   # E^(0) rows, with repeats
        return 0.5 * gathered_squared_norm(self.embedding.weight, rows) / len(users)


class LightGCN(NeuralRecommender):
    r"""LightGCN (He et al., 2020): embeddings smoothed over the user-item graph.

    See :mod:`reclib.neural.lightgcn` for the equations. The defaults were chosen on a
    validation split carved from the MovieLens 100K training set, within a CPU budget of a
    few minutes (the paper trains for hundreds of epochs at ``lr=1e-3``);
    ``benchmarks/tune_deep_ml100k.py`` records the search.

    Parameters
    ----------
    n_factors : int
        Embedding size :math:`f`.
    n_layers : int
        Propagation steps :math:`K` (``0`` is BPR matrix factorisation).
    reg : float
        :math:`\lambda`, the weight of the L2 penalty on the batch's layer-0 embeddings.
    n_epochs, batch_size, lr, weight_decay, loss, n_negatives, sampler, patience, validation_fraction, device, random_state, verbose
        As for :class:`~reclib.neural.GMF`; the loss defaults to BPR with one negative.

    Attributes
    ----------
    loss_history_, val_history_, best_epoch_ : see :class:`NeuralRecommender`
    """

    def __init__(self, n_factors: int = 128, n_layers: int = 3, reg: float = 2e-3,
                 n_epochs: int = 200, batch_size: int = 4096, lr: float = 4e-3,
                 weight_decay: float = 0.0, loss: str = "bpr", n_negatives: int = 1,
                 sampler: str = "uniform", patience: int | None = None,
                 validation_fraction: float = 0.0, device: str = "auto", random_state=None,
                 verbose: bool = False):
        self.n_factors = n_factors
        self.n_layers = n_layers
        self.reg = reg
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.loss = loss
        self.n_negatives = n_negatives
        self.sampler = sampler
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _validate_params(self) -> None:
        super()._validate_params()
        check_int("n_factors", self.n_factors, minimum=1)
        check_int("n_layers", self.n_layers, minimum=0)

    def _build_module(self) -> nn.Module:
        return LightGCNModule(self.n_users, self.n_items, self.n_factors, self.n_layers)

    def _inputs(self, X: sp.csr_matrix, dtype: torch.dtype) -> tuple:
        # Apple's MPS backend multiplies COO but not CSR tensors
        layout = "coo" if self._device.type == "mps" else "csr"
        adjacency = to_torch_sparse(normalized_adjacency(X), device=self._device, layout=layout)
        return (adjacency.to(dtype),)

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """Final (layer-averaged) user and item embeddings of the fitted model."""
        module = self._get_module()
        with torch.no_grad():
            users, items = module.propagate(*self._context)
        return users.cpu().numpy(), items.cpu().numpy()

    def _item_vectors(self) -> np.ndarray:
        return self.embeddings()[1]
