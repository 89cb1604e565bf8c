r"""Factorisation machines (Rendle, 2010) and DeepFM (Guo et al., 2017) over side features.

Each (user, item) pair is a sparse vector :math:`x` over the feature space of
:mod:`reclib.features`: the user id, the item id and the side-feature fields (MovieLens:
gender, age group, occupation; genres and decade). A factorisation machine scores it as

.. math::

    \hat y(x) = w_0 + \sum_{i=1}^{n} w_i x_i
        + \sum_{i=1}^{n} \sum_{j=i+1}^{n} \langle v_i, v_j \rangle\, x_i x_j,

with a factor vector :math:`v_i \in \mathbb R^k` per feature. The pairwise sum costs
:math:`O(k n^2)` as written, but

.. math::

    \sum_{i<j} \langle v_i, v_j \rangle x_i x_j
        = \frac12 \sum_{f=1}^{k} \Big[\Big(\sum_{i} v_{if} x_i\Big)^2
          - \sum_{i} v_{if}^2 x_i^2\Big],

which costs :math:`O(k n)` (:func:`fm_pairwise`). For a pair the sums split into a user part
and an item part, so scoring one user against every item is one matrix product.

DeepFM adds a feed-forward network over the *field* embeddings
:math:`e_f = \sum_{i \in f} v_i x_i` (the same :math:`v_i` the FM part uses):
:math:`\hat y = \hat y_{FM} + \mathrm{MLP}([e_1; \dots; e_F])`.

Both rank items (the top-N protocol): they are trained with BPR on sampled negatives
(:mod:`reclib.neural.losses`), not on rating values.

References
----------
S. Rendle, "Factorization machines", ICDM 2010.
H. Guo, R. Tang, Y. Ye, Z. Li, X. He, "DeepFM: a factorization-machine based neural network
for CTR prediction", IJCAI 2017.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._validation import check_float, check_int
from ..features import build_layout
from .estimator import NeuralRecommender
from .losses import gathered_squared_norm
from .pairs import pair_scores


def fm_pairwise(vx: torch.Tensor) -> torch.Tensor:
    r"""All pairwise interactions :math:`\sum_{i<j} \langle v_i x_i, v_j x_j \rangle` in O(kn).

    Parameters
    ----------
    vx : tensor of shape (..., n, k)
        The factor vectors already scaled by their feature values, :math:`v_i x_i`.

    Returns
    -------
    tensor of shape (...)
    """
    total = vx.sum(dim=-2)                                   # (..., k): sum_i v_if x_i
    squares = (vx * vx).sum(dim=-2)                          # (..., k): sum_i v_if^2 x_i^2
    return 0.5 * (total * total - squares).sum(dim=-1)


class FeatureInputs(NeuralRecommender):
    """Shared by the models that read side features: the field layout as fitted arrays.

    ``_prepare`` turns the data's feature tables into the layout of
    :func:`reclib.features.build_layout` (stored as fitted attributes, so ``save``/``load``
    need no feature tables), and :meth:`_layout_buffers` hands it to a module.
    """

    def _prepare(self, data) -> None:
        layout = build_layout(data, self.features, owner=type(self).__name__)
        self.field_names_ = layout.field_names
        self.field_sizes_ = np.array([f.size for f in layout.fields], dtype=np.int64)
        self.user_feature_index_ = layout.user_index
        self.user_feature_value_ = layout.user_value
        self.user_slot_field_ = layout.user_slot_field
        self.item_feature_index_ = layout.item_index
        self.item_feature_value_ = layout.item_value
        self.item_slot_field_ = layout.item_slot_field

    def _layout_buffers(self) -> dict:
        return {name: torch.as_tensor(np.asarray(getattr(self, f"{name}_")))
                for name in ("user_feature_index", "user_feature_value", "user_slot_field",
                             "item_feature_index", "item_feature_value", "item_slot_field")}

    @property
    def n_features_(self) -> int:
        return int(self.field_sizes_.sum())

    def _validate_params(self) -> None:
        super()._validate_params()
        features = self.features
        if not (features is None or features == "auto" or
                (isinstance(features, (list, tuple)) and all(isinstance(c, str) for c in features))):
            raise TypeError(f"features == {features!r}, must be 'auto', None or a list of "
                            f"column names")


def _sparse(rows, cols, values, shape) -> torch.Tensor:
    keep = values != 0                                       # padding slots hold value 0
    index = torch.stack([rows[keep], cols[keep]])
    return torch.sparse_coo_tensor(index, values[keep], shape, check_invariants=True).coalesce()


class FieldInputs(nn.Module):
    r"""The layout as sparse matrices, so a side's sums over slots are sparse products.

    For one side (users or items) with slot ids ``index`` and values ``value`` (each
    ``(n, s)``), ``x`` is the sparse ``(n, n_features)`` matrix of feature values: ``x @ V``
    gives every row's :math:`\sum_i v_i x_i` at once, and its backward pass is one more
    sparse product (looking up and summing ``s`` embeddings per row costs far more).

    A call that needs only some rows (a batch's users and candidate items) passes ``rows``:
    when they are fewer than half of the side's rows, only their slots are gathered and
    summed, so the cost follows the batch, not the catalogue.
    """

    def __init__(self, buffers: dict, n_features: int):
        super().__init__()
        for side in ("user", "item"):
            index = buffers[f"{side}_feature_index"]
            value = buffers[f"{side}_feature_value"].float()
            slot_field = buffers[f"{side}_slot_field"]
            local = torch.unique(slot_field, return_inverse=True)[1]  # fields 0 .. F_side - 1
            n, n_slots = index.shape
            rows = torch.arange(n)[:, None].expand(n, n_slots).reshape(-1)
            flat_index, flat_value = index.reshape(-1), value.reshape(-1)
            n_fields = int(local.max()) + 1
            field_rows = (rows * n_fields + local.repeat(n))
            self.register_buffer(f"{side}_index", index.long(), persistent=False)
            self.register_buffer(f"{side}_value", value, persistent=False)
            self.register_buffer(f"{side}_local", local.long(), persistent=False)
            for name, matrix in (
                    ("x", _sparse(rows, flat_index, flat_value, (n, n_features))),
                    ("x2", _sparse(rows, flat_index, flat_value ** 2, (n, n_features))),
                    ("x_fields", _sparse(field_rows, flat_index, flat_value,
                                         (n * n_fields, n_features)))):
                self.register_buffer(f"{side}_{name}", matrix, persistent=False)
            setattr(self, f"n_{side}_fields", n_fields)
            setattr(self, f"n_{side}s", n)

    def _few(self, side: str, rows) -> bool:
        return rows is not None and 2 * rows.numel() < getattr(self, f"n_{side}s")

    def _gathered(self, side: str, weights: torch.Tensor, rows: torch.Tensor):
        """:math:`v_i x_i` of every slot of the distinct ``rows``: (U, s, d), and the inverse."""
        uniq, inverse = torch.unique(rows.reshape(-1), return_inverse=True)
        index = getattr(self, f"{side}_index")[uniq]                   # (U, s)
        value = getattr(self, f"{side}_value")[uniq].to(weights.dtype)  # (U, s)
        return weights[index] * value[..., None], inverse

    def tables(self, side: str, weights: torch.Tensor, rows: torch.Tensor | None = None):
        """``(x @ weights, x^2 @ weights^2)`` as tables, and the index of ``rows`` into them.

        The tables hold the distinct ``rows`` when they are few, every row of ``side``
        otherwise; ``table[index]`` is the row of every entry of ``rows``, (*rows.shape, d).
        With ``rows`` None the tables hold every row and the index is None.
        """
        if self._few(side, rows):
            vx, inverse = self._gathered(side, weights, rows)
            return vx.sum(1), (vx * vx).sum(1), inverse.reshape(rows.shape)
        return (_sparse_times(getattr(self, f"{side}_x"), weights),
                _sparse_times(getattr(self, f"{side}_x2"), weights * weights), rows)

    def sums(self, side: str, weights: torch.Tensor, rows: torch.Tensor | None = None):
        """``(x @ weights, x^2 @ weights^2)`` of ``side``'s rows: (*rows.shape, d) each.

        Every row (``(n, d)``) when ``rows`` is None.
        """
        total, squares, index = self.tables(side, weights, rows)
        return (total, squares) if index is None else (total[index], squares[index])

    def fields(self, side: str, weights: torch.Tensor,
               rows: torch.Tensor | None = None) -> torch.Tensor:
        r"""Field embeddings :math:`e_f = \sum_{i \in f} v_i x_i` of ``side``'s rows, (..., F * d)."""
        n_fields = getattr(self, f"n_{side}_fields")
        if self._few(side, rows):
            vx, inverse = self._gathered(side, weights, rows)            # (U, s, d)
            out = vx.new_zeros(vx.shape[0], n_fields, vx.shape[2])
            out.index_add_(1, getattr(self, f"{side}_local"), vx)          # sum slots per field
            return out.reshape(len(out), -1)[inverse].reshape(*rows.shape, -1)
        n = getattr(self, f"n_{side}s")
        full = _sparse_times(getattr(self, f"{side}_x_fields"), weights).reshape(n, -1)
        return full if rows is None else full[rows]


def _sparse_times(matrix: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``matrix @ dense`` (sparse times dense) in ``dense``'s dtype, outside autocast.

    Under bfloat16 autocast torch casts the dense factor of a sparse product but its backward
    then mixes the two types and fails (torch 2.13, CPU); a feature matrix times a table is
    a gather-and-sum with nothing for bfloat16 to speed up, so it stays in float32.
    """
    with torch.autocast(device_type=dense.device.type, enabled=False):
        return torch.sparse.mm(matrix, dense)


class FMModule(nn.Module):
    """FM scores of (user, item) pairs; with ``deep_layers`` it is DeepFM."""

    def __init__(self, buffers: dict, n_features: int, n_fields: int, n_factors: int,
                 deep_layers=(), dropout: float = 0.0, std: float = 0.01):
        super().__init__()
        self.inputs = FieldInputs(buffers, n_features)
        self.bias = nn.Parameter(torch.zeros(1))                          # w_0
        self.linear = nn.Embedding(n_features, 1)                          # w_i
        self.factors = nn.Embedding(n_features, n_factors)                 # v_i
        nn.init.zeros_(self.linear.weight)
        nn.init.normal_(self.factors.weight, std=std)
        self.n_fields = n_fields
        self.deep = None
        if deep_layers:
            n_user_fields, n_item_fields = self.inputs.n_user_fields, self.inputs.n_item_fields
            width = deep_layers[0]
            # the first layer is split by side: W [e_user; e_item] = W_u e_user + W_i e_item
            self.first_user = nn.Linear(n_user_fields * n_factors, width)
            self.first_item = nn.Linear(n_item_fields * n_factors, width, bias=False)
            rest = [nn.ReLU(), nn.Dropout(dropout)]
            for a, b in zip(deep_layers[:-1], deep_layers[1:]):
                rest += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
            rest.append(nn.Linear(deep_layers[-1], 1))
            self.deep = nn.Sequential(*rest)

    def _side(self, side: str, rows: torch.Tensor):
        """Linear term, sum of v x, sum of (v x)^2 and field embeddings of one side's rows."""
        linear, _ = self.inputs.sums(side, self.linear.weight, rows)       # (..., 1)
        total, squares = self.inputs.sums(side, self.factors.weight, rows) # (..., k) each
        fields = None
        if self.deep is not None:
            fields = self.inputs.fields(side, self.factors.weight, rows)   # (..., F_side * k)
        return linear.squeeze(-1), total, squares, fields

    def _own(self, side: str, rows: torch.Tensor):
        r"""Per-row part of the score, :math:`\sum_i w_i x_i + \tfrac12(\lVert s\rVert^2 - q)`,
        and the factor sums :math:`s`, as tables, with the index of ``rows`` into them."""
        linear = self.inputs.tables(side, self.linear.weight, rows)[0].squeeze(-1)
        total, squares, index = self.inputs.tables(side, self.factors.weight, rows)
        return linear + 0.5 * (total * total - squares).sum(-1), total, index

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        r"""Scores of users (B,) against their candidates (B, c), (B, c).

        The pairwise term splits as in :meth:`score_all`: per-row parts plus
        :math:`s_u \cdot s_i`, a batch of dot products (:func:`~reclib.neural.pairs.pair_scores`),
        so no (B, c, k) tensor is built for the FM part.
        """
        own_u, sum_u, at_u = self._own("user", users)
        own_i, sum_i, at_i = self._own("item", items)
        score = self.bias + own_u[at_u][:, None] + own_i[at_i] + pair_scores(sum_u, sum_i,
                                                                               at_u, at_i)
        if self.deep is not None:
            fields_u = self.inputs.fields("user", self.factors.weight, users)[:, None]
            fields_i = self.inputs.fields("item", self.factors.weight, items)
            hidden = self.first_user(fields_u) + self.first_item(fields_i)
            score = score + self.deep(hidden).squeeze(-1)
        return score                                                       # (B, c)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        r"""Scores of ``users`` (B,) against every item, (B, n_items), as ``forward`` gives them.

        With :math:`s = s_u + s_i` (the sums of :math:`v x` of each side) the pairwise term
        splits as :math:`\tfrac12(\lVert s_u\rVert^2 - q_u) + \tfrac12(\lVert s_i\rVert^2
        - q_i) + s_u \cdot s_i`: one part per user, one per item and a matrix product, so
        the FM never builds the (B, n_items, k) tensor. DeepFM's MLP still sees every pair.
        """
        items = torch.arange(self.inputs.n_items, device=users.device)
        lin_u, sum_u, sq_u, fields_u = self._side("user", users)
        lin_i, sum_i, sq_i, fields_i = self._side("item", items)
        own_u = lin_u + 0.5 * (sum_u * sum_u - sq_u).sum(-1)               # (B,)
        own_i = lin_i + 0.5 * (sum_i * sum_i - sq_i).sum(-1)               # (n_items,)
        score = self.bias + own_u[:, None] + own_i[None] + sum_u @ sum_i.T
        if self.deep is not None:
            hidden = self.first_user(fields_u)[:, None] + self.first_item(fields_i)[None]
            score = score + self.deep(hidden).squeeze(-1)
        return score                                                       # (B, n_items)

    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        r"""Mean squared norm of the weights the batch touches: factors and linear terms.

        The linear weights are penalised too (as in Rendle's FM): left free, the item term
        :math:`\sum_{i \in \text{item}} w_i x_i` learns the noise in item popularity and,
        once the factors are shrunk, it alone orders every user's list.
        """
        weights = torch.cat([self.factors.weight, self.linear.weight], dim=1)   # (n, k + 1)
        user, _, at_u = self.inputs.tables("user", weights, users)             # rows (., k + 1)
        item, _, at_i = self.inputs.tables("item", weights, items)
        return (gathered_squared_norm(user, at_u) / at_u.numel()
                + gathered_squared_norm(item, at_i) / at_i.numel())


class FM(FeatureInputs):
    r"""Factorisation machine over user and item ids and side features, trained to rank.

    .. math::

        \hat y(x) = w_0 + \sum_i w_i x_i + \frac12 \sum_{f=1}^{k}
            \Big[\Big(\sum_i v_{if} x_i\Big)^2 - \sum_i v_{if}^2 x_i^2\Big]

    Parameters
    ----------
    n_factors : int
        :math:`k`, the length of each factor vector :math:`v_i`.
    features : "auto", None or list of str
        Side-feature columns to use: ``"auto"`` every column the training data carry
        (ids only when they carry none), ``None`` ids only, or a list of names, which the data
        must carry (a clear error otherwise).
    n_epochs, batch_size, lr, reg, loss, n_negatives, sampler, weight_decay, patience, validation_fraction, random_state, device, verbose
        Training settings of :class:`~reclib.neural.NeuralRecommender`; ``reg`` weighs the
        squared norm of the factor vectors a batch touches.

    References
    ----------
    S. Rendle, "Factorization machines", ICDM 2010.
    """

    def __init__(self, n_factors: int = 64, features="auto", n_epochs: int = 30,
                 batch_size: int = 1024, lr: float = 2e-3, reg: float = 1e-4,
                 loss: str = "bpr", n_negatives: int = 4, sampler: str = "uniform",
                 weight_decay: float = 0.0, patience: int | None = None,
                 validation_fraction: float = 0.0, random_state=None,
                 device: str = "auto", verbose: bool = False):
        self.n_factors = n_factors
        self.features = features
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.reg = reg
        self.loss = loss
        self.n_negatives = n_negatives
        self.sampler = sampler
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _validate_params(self) -> None:
        super()._validate_params()
        check_int("n_factors", self.n_factors, minimum=1)

    def _build_module(self) -> nn.Module:
        return FMModule(self._layout_buffers(), self.n_features_, len(self.field_names_),
                        self.n_factors)


class DeepFM(FeatureInputs):
    r"""DeepFM: a factorisation machine plus an MLP over the field embeddings, to rank.

    .. math::

        \hat y = \hat y_{FM}(x) + \mathrm{MLP}([e_1; \dots; e_F]), \qquad
        e_f = \sum_{i \in \text{field } f} v_i x_i

    The FM part and the deep part share the factor vectors :math:`v_i` (Guo et al., 2017).

    Parameters
    ----------
    n_factors : int
        Length of each factor vector (and of each field embedding).
    layers : list of int
        Widths of the hidden layers of the MLP.
    dropout : float
        Dropout after each hidden layer, in ``[0, 1)``.
    features, n_epochs, batch_size, lr, reg, loss, n_negatives, sampler, weight_decay, patience, validation_fraction, random_state, device, verbose
        As for :class:`FM`. ``n_epochs`` defaults to 20: on a validation split carved from the
        MovieLens 100K training set, 20 epochs scored higher than 30, at two thirds of the cost.

    References
    ----------
    H. Guo, R. Tang, Y. Ye, Z. Li, X. He, "DeepFM: a factorization-machine based neural
    network for CTR prediction", IJCAI 2017.
    """

    def __init__(self, n_factors: int = 32, layers=[128, 64], dropout: float = 0.1,
                 features="auto", n_epochs: int = 20, batch_size: int = 1024, lr: float = 2e-3,
                 reg: float = 1e-4, loss: str = "bpr", n_negatives: int = 4,
                 sampler: str = "uniform", weight_decay: float = 0.0,
                 patience: int | None = None, validation_fraction: float = 0.0,
                 random_state=None, device: str = "auto", verbose: bool = False):
        self.n_factors = n_factors
        self.layers = layers
        self.dropout = dropout
        self.features = features
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.reg = reg
        self.loss = loss
        self.n_negatives = n_negatives
        self.sampler = sampler
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _validate_params(self) -> None:
        super()._validate_params()
        check_int("n_factors", self.n_factors, minimum=1)
        if not self.layers or any(isinstance(w, bool) or not isinstance(w, (int, np.integer))
                                  or w < 1 for w in self.layers):
            raise ValueError(f"layers == {self.layers!r}, must be a non-empty list of "
                             f"positive widths")
        check_float("dropout", self.dropout, minimum=0.0, maximum=0.99)

    def _build_module(self) -> nn.Module:
        return FMModule(self._layout_buffers(), self.n_features_, len(self.field_names_),
                        self.n_factors, deep_layers=tuple(int(w) for w in self.layers),
                        dropout=self.dropout)

    def _pair_width(self) -> int:
        return max(int(w) for w in self.layers)
