r"""Neural collaborative filtering: GMF, MLP and NeuMF (He et al., 2017).

All three score a (user, item) pair from an embedding :math:`p_u` of the user and
:math:`q_i` of the item, and are trained on implicit feedback with sampled negatives:

.. math::

    \text{GMF:}\quad \hat y_{ui} = h^\top (p_u \odot q_i) + b, \qquad
    \text{MLP:}\quad \hat y_{ui} = h^\top \phi_L\big(\cdots \phi_1([p_u; q_i])\big) + b,

where :math:`\odot` is the *element-wise* product (a vector of :math:`f` numbers, weighted by
the learnt :math:`h`; with :math:`h = \mathbf 1` and no bias GMF is plain matrix
factorisation), :math:`[\cdot;\cdot]` concatenation and :math:`\phi_l(z) = \mathrm{ReLU}(W_l z
+ b_l)`. NeuMF gives each branch its own embeddings and joins their last layers:
:math:`\hat y_{ui} = h^\top [p^G_u \odot q^G_i;\ \phi_L(\cdots)] + b`.

References
----------
X. He, L. Liao, H. Zhang, L. Nie, X. Hu, T.-S. Chua, "Neural collaborative filtering",
WWW 2017.
S. Rendle, W. Krichene, L. Zhang, J. Anderson, "Neural collaborative filtering vs. matrix
factorization revisited", RecSys 2020.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._validation import check_bool, check_float, check_int
from ..interactions import Interactions
from .estimator import NeuralRecommender
from .losses import gathered_squared_norm


class _Tower(nn.Module):
    """The MLP branch; its first layer is split so full scoring never builds [p_u; q_i]."""

    def __init__(self, n_users: int, n_items: int, layers: tuple[int, ...], std: float):
        super().__init__()
        width = layers[0] // 2
        self.user = nn.Embedding(n_users, width)
        self.item = nn.Embedding(n_items, width)
        for emb in (self.user, self.item):
            nn.init.normal_(emb.weight, std=std)
        self.first_user = nn.Linear(width, layers[1] if len(layers) > 1 else width)
        self.first_item = nn.Linear(width, self.first_user.out_features, bias=False)
        rest = []
        for a, b in zip(layers[1:-1], layers[2:]):
            rest += [nn.Linear(a, b), nn.ReLU()]
        self.rest = nn.Sequential(*rest)
        self.out_features = layers[-1] if len(layers) > 1 else width

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        # W [p; q] = W_u p + W_i q: users (B,), items (B, c) -> (B, c, out_features)
        z = self.first_user(self.user(users))[:, None, :] + self.first_item(self.item(items))
        return self.rest(torch.relu(z))


class _GMFBranch(nn.Module):
    def __init__(self, n_users: int, n_items: int, n_factors: int, std: float):
        super().__init__()
        self.user = nn.Embedding(n_users, n_factors)
        self.item = nn.Embedding(n_items, n_factors)
        for emb in (self.user, self.item):
            nn.init.normal_(emb.weight, std=std)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.user(users)[:, None, :] * self.item(items)     # (B, c, f): p_u ⊙ q_i


class NCFModule(nn.Module):
    """GMF, MLP or NeuMF: the branches that are switched on, joined by one output layer."""

    def __init__(self, n_users: int, n_items: int, n_factors: int, layers: tuple[int, ...],
                 gmf: bool, mlp: bool, std: float = 0.01):
        super().__init__()
        self.gmf = _GMFBranch(n_users, n_items, n_factors, std) if gmf else None
        self.mlp = _Tower(n_users, n_items, layers, std) if mlp else None
        width = (n_factors if gmf else 0) + (self.mlp.out_features if mlp else 0)
        self.output = nn.Linear(width, 1)                         # h and b

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.gmf is not None:
            parts.append(self.gmf(users, items))                  # (B, c, f)
        if self.mlp is not None:
            parts.append(self.mlp(users, items))                  # (B, c, last layer)
        return self.output(torch.cat(parts, dim=-1)).squeeze(-1)  # (B, c)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        r"""Scores of ``users`` (B,) against every item, (B, n_items), as ``forward`` gives them.

        The output layer splits by branch, :math:`h^\top [g; m] + b = h_g^\top g + h_m^\top m
        + b`. The GMF part is then a matrix product, :math:`h_g^\top (p_u \odot q_i) =
        (p_u \odot h_g) \cdot q_i`, and the MLP's first layer projects every item once
        (:math:`W_i q_i`), not once per user; only the MLP's later layers see every pair.
        """
        h = self.output.weight[0]                                 # (f + last layer,)
        score = self.output.bias.expand(len(users), 1)
        width = 0
        if self.gmf is not None:
            width = self.gmf.user.embedding_dim
            score = score + (self.gmf.user(users) * h[:width]) @ self.gmf.item.weight.T
        if self.mlp is not None:
            tower = self.mlp
            z = (tower.first_user(tower.user(users))[:, None, :]
                 + tower.first_item(tower.item.weight)[None])    # (B, n_items, width)
            score = score + tower.rest(torch.relu(z)) @ h[width:]
        return score                                              # (B, n_items)

    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Mean squared norm of the embeddings in the batch."""
        total = 0.0
        for branch in (self.gmf, self.mlp):
            if branch is not None:
                total = total + gathered_squared_norm(branch.user.weight, users) / users.numel()
                total = total + gathered_squared_norm(branch.item.weight, items) / items.numel()
        return total


class _NCFBase(NeuralRecommender):
    _use_gmf = True
    _use_mlp = True

    def __init__(self, n_factors: int = 64, layers: tuple = (128, 64, 32), n_epochs: int = 20,
                 batch_size: int = 1024, lr: float = 1e-3, weight_decay: float = 0.0,
                 reg: float = 0.0, loss: str = "bce", n_negatives: int = 4,
                 sampler: str = "uniform", patience: int | None = None,
                 validation_fraction: float = 0.0, device: str = "auto", random_state=None,
                 verbose: bool = False):
        self.n_factors = n_factors
        self.layers = layers
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.reg = reg
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
        layers = list(self.layers)
        if self._use_mlp and (not layers or layers[0] < 2):
            raise ValueError(f"layers == {self.layers!r}: give at least one width, the first "
                             f">= 2 (it is split between the user and the item embedding)")
        for width in layers:
            check_int("layers", width, minimum=1)

    def _build_module(self) -> nn.Module:
        return NCFModule(self.n_users, self.n_items, self.n_factors, tuple(self.layers),
                         self._use_gmf, self._use_mlp)

    def _pair_width(self) -> int:
        return max(int(w) for w in self.layers) if self._use_mlp else 1


class GMF(_NCFBase):
    r"""Generalised matrix factorisation: :math:`\hat y_{ui} = h^\top (p_u \odot q_i) + b`.

    See :mod:`reclib.neural.ncf`. ``layers`` is ignored. The loss (binary cross-entropy with
    4 uniform negatives) and Adam follow He et al. (2017); ``lr``, ``reg`` and the epochs of
    GMF, MLP and NeuMF won a validation split carved from the MovieLens 100K training set.

    Parameters
    ----------
    n_factors : int
        :math:`f`, the embedding size.
    layers : tuple of int
        MLP widths, the first split between user and item embedding (MLP and NeuMF only).
    n_epochs, batch_size, lr, weight_decay : training (see :class:`~reclib.neural.TrainConfig`)
    reg : float
        Weight of the mean squared embedding norm of each batch, added to the loss.
    loss : {"bce", "bpr", "softmax"}
    n_negatives : int
        Sampled negatives per positive.
    sampler : {"uniform", "popularity"}
    patience : int or None
        Early stopping on validation nDCG@10 (needs ``validation_fraction > 0``).
    validation_fraction : float
        Share of each user's training rows held out for validation.
    device : {"auto", "cpu", "cuda", "mps"}
    random_state : int, optional
    verbose : bool
    """

    _use_mlp = False

    def __init__(self, n_factors: int = 64, layers: tuple = (128, 64, 32), n_epochs: int = 25,
                 batch_size: int = 1024, lr: float = 3e-3, weight_decay: float = 0.0,
                 reg: float = 3e-3, loss: str = "bce", n_negatives: int = 4,
                 sampler: str = "uniform", patience: int | None = None,
                 validation_fraction: float = 0.0, device: str = "auto", random_state=None,
                 verbose: bool = False):
        super().__init__(n_factors, layers, n_epochs, batch_size, lr, weight_decay, reg, loss,
                         n_negatives, sampler, patience, validation_fraction, device,
                         random_state, verbose)

    def _item_vectors(self):
        return self._get_module().gmf.item.weight.detach().cpu().numpy()


class MLP(_NCFBase):
    r"""The MLP branch of NCF alone: :math:`\hat y_{ui} = h^\top \phi_L(\cdots[p_u; q_i])`.

    Parameters as :class:`GMF`; ``n_factors`` is ignored (the embeddings are
    ``layers[0] // 2`` wide).
    """

    _use_gmf = False

    def __init__(self, n_factors: int = 64, layers: tuple = (128, 64, 32), n_epochs: int = 35,
                 batch_size: int = 1024, lr: float = 1e-3, weight_decay: float = 0.0,
                 reg: float = 3e-3, loss: str = "bce", n_negatives: int = 4,
                 sampler: str = "uniform", patience: int | None = None,
                 validation_fraction: float = 0.0, device: str = "auto", random_state=None,
                 verbose: bool = False):
        super().__init__(n_factors, layers, n_epochs, batch_size, lr, weight_decay, reg, loss,
                         n_negatives, sampler, patience, validation_fraction, device,
                         random_state, verbose)


class NeuMF(_NCFBase):
    r"""Neural matrix factorisation: GMF and MLP branches joined by one output layer.

    With ``pretrain`` (He et al., 2017, section 3.4.1) a :class:`GMF` and an :class:`MLP` are
    first fitted on the same training rows, with the same loss, sampler, seed and device; NeuMF
    then starts from their embeddings and layers, and its output layer from their output
    layers weighted by :math:`\alpha` and :math:`1 - \alpha`:

    .. math::

        h \leftarrow \big[\alpha\, h^{\text{GMF}};\ (1 - \alpha)\, h^{\text{MLP}}\big],
        \qquad b \leftarrow \alpha\, b^{\text{GMF}} + (1 - \alpha)\, b^{\text{MLP}},

    so before any joint training NeuMF scores exactly :math:`\alpha \hat y^{\text{GMF}} +
    (1 - \alpha) \hat y^{\text{MLP}}`. The joint training then only fine-tunes, at a small
    learning rate for a few epochs (the defaults, chosen on a validation split carved from the
    MovieLens 100K training set, see ``benchmarks/tune_deep_ml100k.py``; He et al. switch to
    plain SGD at this stage for the same reason: Adam's state from pre-training is not kept). Without ``pretrain`` both branches
    start from a small random initialisation and are trained jointly; then use about
    ``n_epochs=20, lr=1e-3``.

    Parameters
    ----------
    pretrain : bool
        Fit GMF and MLP first and start from their weights.
    alpha : float
        :math:`\alpha \in [0, 1]`, the GMF branch's share of the initial output layer.
    pretrain_params : dict, optional
        Hyper-parameters for both pre-training fits, e.g. ``{"n_epochs": 10}``; the rest are
        the :class:`GMF` and :class:`MLP` defaults, except ``n_factors``/``layers``, ``loss``,
        ``n_negatives``, ``sampler``, ``batch_size``, ``device``, ``random_state`` and
        ``verbose``, which are NeuMF's.
    others
        As for :class:`GMF`; ``n_epochs``, ``lr`` and ``reg`` are the joint training's.
    """

    def __init__(self, n_factors: int = 64, layers: tuple = (128, 64, 32), n_epochs: int = 2,
                 batch_size: int = 1024, lr: float = 1e-4, weight_decay: float = 0.0,
                 reg: float = 3e-4, loss: str = "bce", n_negatives: int = 4,
                 sampler: str = "uniform", patience: int | None = None,
                 validation_fraction: float = 0.0, device: str = "auto", random_state=None,
                 verbose: bool = False, pretrain: bool = True, alpha: float = 0.5,
                 pretrain_params: dict | None = None):
        super().__init__(n_factors, layers, n_epochs, batch_size, lr, weight_decay, reg, loss,
                         n_negatives, sampler, patience, validation_fraction, device,
                         random_state, verbose)
        self.pretrain = pretrain
        self.alpha = alpha
        self.pretrain_params = pretrain_params

    def _validate_params(self) -> None:
        super()._validate_params()
        check_bool("pretrain", self.pretrain)
        check_float("alpha", self.alpha, minimum=0.0, maximum=1.0)
        if self.pretrain_params is not None:
            if not isinstance(self.pretrain_params, dict):
                raise TypeError(f"pretrain_params == {self.pretrain_params!r}, must be a dict "
                                f"of GMF/MLP hyper-parameters or None")
            allowed = set(GMF._param_names()) - {"n_factors", "layers"}
            unknown = sorted(set(self.pretrain_params) - allowed)
            if unknown:
                raise ValueError(f"pretrain_params has unknown keys {unknown}; allowed: "
                                 f"{sorted(allowed)}")

    def pretrained_parts(self, train: Interactions) -> tuple[GMF, MLP]:
        """Fit the :class:`GMF` and :class:`MLP` that NeuMF starts from, on ``train``."""
        shared = {"loss": self.loss, "n_negatives": self.n_negatives, "sampler": self.sampler,
                  "batch_size": self.batch_size, "device": self.device,
                  "random_state": self.random_state, "verbose": self.verbose,
                  **(self.pretrain_params or {})}
        gmf = GMF(n_factors=self.n_factors, **shared).fit(train)
        mlp = MLP(layers=tuple(self.layers), **shared).fit(train)
        return gmf, mlp

    def fit_from_parts(self, train: Interactions, gmf: GMF, mlp: MLP) -> "NeuMF":
        """Fit on ``train`` starting from a fitted ``gmf`` and ``mlp`` instead of pre-training.

        ``fit`` pre-trains the two parts itself; when they are already fitted on ``train``
        (by :meth:`pretrained_parts`, or as a :class:`GMF` and an :class:`MLP` with the
        settings that method uses), this skips fitting them again. ``n_factors`` and
        ``layers`` must match NeuMF's, and both must have been fitted on ``train``'s users
        and items.
        """
        if not self.pretrain:
            raise ValueError("fit_from_parts starts from pre-trained parts, but pretrain is "
                             "False; set pretrain=True or call fit")
        data = self._as_training_data(train)
        for name, part, cls in (("gmf", gmf, GMF), ("mlp", mlp, MLP)):
            if type(part) is not cls:
                raise TypeError(f"{name} must be a fitted {cls.__name__}, "
                                f"got {type(part).__name__}")
            part._check_is_fitted()
            if not (np.array_equal(part.user_ids_, data.user_ids)
                    and np.array_equal(part.item_ids_, data.item_ids)):
                raise ValueError(f"{name} was fitted on other users or items than train "
                                 f"({part.n_users} users, {part.n_items} items against "
                                 f"{data.n_users}, {data.n_items})")
        if gmf.n_factors != self.n_factors:
            raise ValueError(f"gmf has n_factors={gmf.n_factors}, NeuMF has {self.n_factors}")
        if tuple(mlp.layers) != tuple(self.layers):
            raise ValueError(f"mlp has layers={tuple(mlp.layers)}, NeuMF has "
                             f"{tuple(self.layers)}")
        self._given_parts = (gmf, mlp)
        try:
            return self.fit(train)
        finally:
            del self._given_parts

    def _initialise(self, module: nn.Module, train: Interactions) -> None:
        if not self.pretrain:
            return
        parts = getattr(self, "_given_parts", None) or self.pretrained_parts(train)
        gmf, mlp = (part._get_module() for part in parts)
        with torch.no_grad():
            module.gmf.load_state_dict(gmf.gmf.state_dict())
            module.mlp.load_state_dict(mlp.mlp.state_dict())
            a = self.alpha
            module.output.weight.copy_(torch.cat([a * gmf.output.weight,
                                                  (1 - a) * mlp.output.weight], dim=1))
            module.output.bias.copy_(a * gmf.output.bias + (1 - a) * mlp.output.bias)
