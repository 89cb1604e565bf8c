r"""AutoRec: rating prediction with an autoencoder (item-based, I-AutoRec).

Each item :math:`i` is described by its column of observed ratings
:math:`r^{(i)} \in \mathbb{R}^{|U|}` (missing entries are 0). An autoencoder with :math:`k`
hidden units reconstructs it, and the reconstruction at user :math:`u` is the prediction:

.. math::

    h(r; \theta) = W_2\, \sigma(W_1 r + \mathbf{b}_1) + \mathbf{b}_2, \qquad
    \hat r_{ui} = h(r^{(i)}; \theta)_u,

with :math:`W_1 \in \mathbb{R}^{k \times |U|}`, :math:`W_2 \in \mathbb{R}^{|U| \times k}` and
:math:`\sigma` the sigmoid (the notation of chapter 5). Only observed ratings enter the error:

.. math::

    \min_\theta \sum_{i} \big\lVert (r^{(i)} - h(r^{(i)}; \theta)) \odot m^{(i)} \big\rVert^2
        + \frac{\lambda}{2} \big(\lVert W_1 \rVert_F^2 + \lVert W_2 \rVert_F^2\big),

where :math:`m^{(i)}` is 1 where :math:`r^{(i)}` is observed. The minibatch loss is an unbiased
estimate of this objective divided by the number of training ratings.

References
----------
S. Sedhain, A. K. Menon, S. Sanner, L. Xie, "AutoRec: autoencoders meet collaborative
filtering", WWW 2015.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .._validation import check_float, check_int
from ..evaluation.metrics import rmse
from ..interactions import Interactions
from .estimator import NeuralRecommender


class AutoRecModule(nn.Module):
    """The autoencoder; the items x users rating matrix is an input of every call."""

    def __init__(self, n_users: int, n_hidden: int):
        super().__init__()
        self.encoder = nn.Linear(n_users, n_hidden)                  # W_1, b_1
        self.decoder = nn.Linear(n_hidden, n_users)                  # W_2, b_2

    def forward(self, items: torch.Tensor, ratings: torch.Tensor, mask=None) -> torch.Tensor:
        """Reconstructed rating vectors of ``items``: (B, n_users) from ``ratings[items]``."""
        hidden = torch.sigmoid(self.encoder(ratings[items]))        # (B, h)
        return self.decoder(hidden)                                  # (B, n_users)

    def score_all(self, users: torch.Tensor, ratings: torch.Tensor, mask=None) -> torch.Tensor:
        everything = torch.arange(ratings.shape[0], device=ratings.device)
        return self(everything, ratings)[:, users].T                 # (len(users), n_items)


class AutoRec(NeuralRecommender):
    r"""Item-based AutoRec (Sedhain et al., 2015) for rating prediction.

    See :mod:`reclib.neural.autorec` for the model. ``predict`` gives ratings (pass
    ``clip=True`` to clip them to the training range). Ids unseen in training fall back, with
    ``allow_unknown=True``, to what is known: an unknown user gets the item's mean training
    rating, an unknown item the user's mean rating, and both unknown the global mean (the
    autoencoder has no input column for a new item and no output unit for a new user).

    Parameters
    ----------
    n_hidden : int
        :math:`k`, hidden units (the paper uses 500).
    reg : float
        :math:`\lambda`, the weight decay of :math:`W_1` and :math:`W_2`.
    n_epochs, batch_size, lr : training (batches are sets of items)
        The defaults (``reg=100``, batches of 256 items, 55 epochs at ``lr=1e-3``) won a
        validation split carved from the first rating-protocol training fold; smaller batches
        and more epochs overfit quickly.
    patience, validation_fraction : early stopping on validation RMSE
    device, random_state, verbose

    Attributes
    ----------
    ratings_ : scipy.sparse.csr_matrix
        The training ratings (users x items), the autoencoder's input at prediction time.
    global_mean_ : float
    user_means_, item_means_ : ndarray
        Mean training rating of each user and item (for the fallbacks).
    """

    _rating_model = True

    def __init__(self, n_hidden: int = 500, reg: float = 100.0, n_epochs: int = 55,
                 batch_size: int = 256, lr: float = 1e-3, weight_decay: float = 0.0,
                 patience: int | None = None, validation_fraction: float = 0.0,
                 device: str = "auto", random_state=None, verbose: bool = False):
        self.n_hidden = n_hidden
        self.reg = reg
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def unknown_fallback(self) -> str:
        return ("the item's mean training rating for an unknown user, the user's mean for an "
                "unknown item, and the global mean when both are unknown")

    def _validate_params(self) -> None:
        super()._validate_params()
        check_int("n_hidden", self.n_hidden, minimum=1)
        check_float("reg", self.reg, minimum=0.0)

    def _prepare(self, data: Interactions) -> None:
        self.ratings_ = self._matrix(data)
        self.global_mean_ = float(data.ratings.mean())
        self.user_means_ = self._means(data.users, data.ratings, self.n_users)
        self.item_means_ = self._means(data.items, data.ratings, self.n_items)

    def _means(self, index, ratings, n):
        sums = np.bincount(index, weights=ratings, minlength=n)
        counts = np.bincount(index, minlength=n)
        return np.where(counts > 0, sums / np.maximum(counts, 1), self.global_mean_)

    def _build_module(self) -> nn.Module:
        return AutoRecModule(self.n_users, self.n_hidden)

    def _inference_matrix(self) -> sp.csr_matrix:
        return self.ratings_

    def _inputs(self, X: sp.csr_matrix, dtype: torch.dtype) -> tuple:
        """The items x users rating matrix and its 0/1 mask of observed entries."""
        items_by_users = sp.csr_matrix(X.T)
        ratings = torch.from_numpy(items_by_users.toarray()).to(self._device, dtype)
        observed = items_by_users.copy()
        observed.data[:] = 1.0
        mask = torch.from_numpy(observed.toarray()).to(self._device, dtype)
        self._n_observed = max(items_by_users.nnz, 1)
        return ratings, mask

    def _batches(self, train: Interactions, rng: np.random.Generator):
        order = rng.permutation(self.n_items)
        for start in range(0, self.n_items, self.batch_size):
            yield (torch.from_numpy(order[start:start + self.batch_size]).to(self._device),)

    def _batch_loss(self, module: nn.Module, batch) -> torch.Tensor:
        (items,) = batch
        ratings, mask = self._context
        error = (module(items, ratings) - ratings[items]) * mask[items]      # (B, n_users)
        scale = self.n_items / len(items)        # the batch estimates the sum over all items
        penalty = module.encoder.weight.pow(2).sum() + module.decoder.weight.pow(2).sum()
        return (scale * error.pow(2).sum() + 0.5 * self.reg * penalty) / self._n_observed

    def _validation_score(self, module, train: Interactions, valid: Interactions) -> float:
        everything = torch.arange(self.n_items, device=self._device)
        outputs = module(everything, *self._context).cpu().numpy()   # (n_items, n_users)
        return rmse(valid.ratings, outputs[valid.items, valid.users])

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        known = (users >= 0) & (items >= 0)
        out = np.where(items >= 0, self.item_means_[np.maximum(items, 0)], np.nan)
        out = np.where((users >= 0) & (items < 0), self.user_means_[np.maximum(users, 0)], out)
        out = np.where((users < 0) & (items < 0), self.global_mean_, out)
        if known.any():
            uniq = np.unique(items[known])
            module = self._get_module()
            with torch.no_grad():
                block = module(torch.from_numpy(uniq).to(self._device),
                               *self._context).double().cpu().numpy()
            out[known] = block[np.searchsorted(uniq, items[known]), users[known]]
        return out
