r"""The two-tower retrieval model with in-batch negatives and the log-Q correction.

A user tower :math:`u(\cdot)` and an item tower :math:`v(\cdot)` map each side's ids and side
features to vectors; the score is their scaled cosine,
:math:`s(u, i) = \langle u, v_i \rangle / \tau` with :math:`\|u\| = \|v_i\| = 1`. Each tower
sums the embeddings of each field (:mod:`reclib.features`), concatenates the fields and runs
an MLP. Because the score is a dot product, the item vectors can be computed once and
indexed for nearest-neighbour search: serving a user costs one pass through the user tower
and one search, which is why retrieval stages are built this way (Covington et al., 2016).

Training treats the other positives of a batch as the negatives of each example (no
sampler: they are free). They are drawn in proportion to popularity, so without correction
popular items are pushed down too often; subtracting :math:`\log Q(j)`, the log of the
per-draw probability :math:`Q(j) = n_j / N` that a batch column is item :math:`j` (its share
of the training interactions), from each logit removes that bias (Yi et al., 2019):

.. math::

    L = -\frac{1}{B} \sum_{b=1}^{B} \log
        \frac{e^{s(u_b, i_b) - \log Q(i_b)}}{\sum_{c=1}^{B} e^{s(u_b, i_c) - \log Q(i_c)}},

where a column :math:`c \ne b` holding the same item as :math:`b` is left out (it is not a
negative). :math:`Q(j) = n_j / N`, the item's share of the training interactions.

References
----------
P. Covington, J. Adams, E. Sargin, "Deep neural networks for YouTube recommendations",
RecSys 2016.
X. Yi, J. Yang, L. Hong, D. Z. Cheng, L. Heldt, A. Kumthekar, Z. Zhao, L. Wei, E. Chi,
"Sampling-bias-corrected neural modeling for large corpus item recommendations", RecSys 2019.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_float, check_int
from .fm import FeatureInputs, FieldInputs
from .losses import sampled_softmax_loss


def _mlp(width_in: int, layers, out: int) -> nn.Module:
    parts, width = [], width_in
    for w in layers:
        parts += [nn.Linear(width, w), nn.ReLU()]
        width = w
    parts.append(nn.Linear(width, out))
    return nn.Sequential(*parts)


class TwoTowerModule(nn.Module):
    """Two towers over the field layout; ``forward`` scores pairs, ``score_all`` all items."""

    def __init__(self, buffers: dict, n_features: int, n_factors: int, layers, out: int,
                 temperature: float, std: float = 0.05):
        super().__init__()
        self.inputs = FieldInputs(buffers, n_features)
        # one table serves both towers: user-side and item-side ids never overlap
        self.embedding = nn.Parameter(torch.randn(n_features, n_factors) * std)
        self.user_tower = _mlp(self.inputs.n_user_fields * n_factors, layers, out)
        self.item_tower = _mlp(self.inputs.n_item_fields * n_factors, layers, out)
        self.temperature = temperature

    def vectors(self, side: str, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Unit vectors of ``rows`` of users (``side="user"``) or items: (*rows.shape, out).

        Only the towers of the rows asked for run (every row when ``rows`` is None).
        """
        tower = self.user_tower if side == "user" else self.item_tower
        return F.normalize(tower(self.inputs.fields(side, self.embedding, rows)), dim=-1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        # users (B,), items (B, c) -> (B, c)
        u = self.vectors("user", users)                                   # (B, d)
        v = self.vectors("item", items)                                   # (B, c, d)
        return (v @ u[:, :, None]).squeeze(-1) / self.temperature

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.vectors("user", users) @ self.vectors("item").T / self.temperature


class TwoTower(FeatureInputs):
    r"""Two-tower retrieval model over ids and side features, trained with in-batch softmax.

    .. math::

        s(u, i) = \frac{\langle u(x_u), v(x_i) \rangle}{\tau}, \qquad
        L = -\frac1B \sum_b \log \operatorname{softmax}_c
            \big(s(u_b, i_c) - \log Q(i_c)\big)_b

    Parameters
    ----------
    n_factors : int
        Length of each field embedding.
    layers : list of int
        Hidden widths of each tower's MLP (empty: one linear map).
    out : int
        Length of the user and item vectors.
    temperature : float
        :math:`\tau > 0`; the vectors have unit length, so it sets how peaked the softmax is.
    log_q : bool
        Apply the log-Q correction (the point of Yi et al., 2019; off shows why it matters).
    features : "auto", None or list of str
        As for :class:`~reclib.neural.FM`.
    n_epochs, batch_size, lr, weight_decay, patience, validation_fraction, random_state, device, verbose
        Training settings of :class:`~reclib.neural.NeuralRecommender`.
    precision : {"fp32", "bf16"}
        bfloat16 autocast of the towers during training (:class:`~reclib.neural.Trainer`);
        scoring is always in full precision.

    Attributes
    ----------
    user_vectors_, item_vectors_ : ndarray of shape (n_users, out), (n_items, out)
        The towers' outputs after training (what a serving index holds).
    """

    def __init__(self, n_factors: int = 64, layers=[128], out: int = 64,
                 temperature: float = 0.1, log_q: bool = True, features="auto",
                 n_epochs: int = 20, batch_size: int = 512, lr: float = 2e-3,
                 weight_decay: float = 0.0, patience: int | None = None,
                 validation_fraction: float = 0.0, random_state=None, device: str = "auto",
                 verbose: bool = False, precision: str = "fp32"):
        self.n_factors = n_factors
        self.layers = layers
        self.out = out
        self.temperature = temperature
        self.log_q = log_q
        self.features = features
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.precision = precision

    def _validate_params(self) -> None:
        super()._validate_params()
        check_int("n_factors", self.n_factors, minimum=1)
        check_int("out", self.out, minimum=1)
        check_float("temperature", self.temperature, strictly_positive=True)
        if any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1
               for w in self.layers):
            raise ValueError(f"layers == {self.layers!r}, must be a list of positive widths")

    def _build_module(self) -> nn.Module:
        return TwoTowerModule(self._layout_buffers(), self.n_features_, self.n_factors,
                              tuple(int(w) for w in self.layers), self.out, self.temperature)

    def _batches(self, train, rng):
        """Shuffled positive pairs with :math:`\\log Q` of their items."""
        counts = np.bincount(train.items, minlength=self.n_items)
        log_q = np.log(np.maximum(counts, 1) / train.n_interactions).astype(np.float32)
        order = rng.permutation(train.n_interactions)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            users, items = train.users[rows], train.items[rows]
            yield tuple(torch.from_numpy(np.ascontiguousarray(a)).to(self._device)
                        for a in (users, items, log_q[items]))

    def _batch_loss(self, module, batch) -> torch.Tensor:
        users, items, log_q = batch
        u = module.vectors("user", users)                                  # (B, d)
        v = module.vectors("item", items)                                  # (B, d)
        scores = u @ v.T                                                   # (B, B) cosines
        same = items[:, None] == items[None, :]
        same.fill_diagonal_(False)
        negative = scores.masked_fill(same | torch.eye(len(items), dtype=torch.bool,
                                                       device=items.device), -torch.inf)
        if not self.log_q:
            return sampled_softmax_loss(scores.diagonal(), negative,
                                        temperature=self.temperature)
        return sampled_softmax_loss(scores.diagonal(), negative, log_q,
                                    log_q[None, :].expand_as(scores),
                                    temperature=self.temperature)

    def _fit(self, data) -> None:
        super()._fit(data)
        module = self._get_module()
        with torch.no_grad():
            self.user_vectors_ = module.vectors("user").cpu().numpy().astype(np.float64)
            self.item_vectors_ = module.vectors("item").cpu().numpy().astype(np.float64)

    def _item_vectors(self) -> np.ndarray:
        return self.item_vectors_
