"""Baselines every chapter compares against: the global mean, popularity, and the
baseline predictor :math:`\\hat r_{ui} = \\mu + b_u + b_i`.

Reference: Y. Koren, "Factor in the neighbors: scalable and accurate collaborative filtering",
ACM TKDD 4(1), 2010, section 2.1 (baseline estimates).
"""

from __future__ import annotations

import numba
import numpy as np
from .._progress import tqdm

from .._validation import check_choice, check_float, check_int, check_random_state
from ..interactions import Interactions
from .base import Recommender


class GlobalMean(Recommender):
    r"""Predict the mean training rating for every pair: :math:`\hat r_{ui} = \mu`.

    Attributes
    ----------
    mean_ : float
        :math:`\mu`, the mean of the training ratings.
    """

    def predicts_ratings(self) -> bool:
        return True

    def unknown_fallback(self) -> str:
        return "the global mean mu, as for every pair"

    def _fit(self, data: Interactions) -> None:
        self.mean_ = float(data.ratings.mean())

    def _predict(self, users, items):
        return np.full(len(users), self.mean_)

    def _score_users(self, users):
        return np.full((len(users), self.n_items), self.mean_)


class Random(Recommender):
    """Score every (user, item) pair with a seeded uniform random number: the floor of top-N.

    Scores are a pure function of ``(random_state, user index)``, so ``predict`` and
    ``recommend`` agree and a saved model gives the same lists after loading.

    Parameters
    ----------
    random_state : int
        Seed of the scores.
    """

    def __init__(self, random_state: int = 0):
        self.random_state = random_state

    def _validate_params(self) -> None:
        check_int("random_state", self.random_state, minimum=0)

    def _fit(self, data: Interactions) -> None:
        self.seed_ = int(self.random_state)

    def _score_users(self, users):
        return np.stack([np.random.default_rng([self.seed_, int(u)]).random(self.n_items)
                         for u in users]) if len(users) else np.empty((0, self.n_items))


class Popularity(Recommender):
    """Score every item by the number of training interactions it has (most popular first).

    The same list for everyone, minus what each user has already seen: the baseline that any
    personalised top-N model must beat.

    Attributes
    ----------
    item_counts_ : ndarray of shape (n_items,)
        Number of training interactions of each item.
    """

    def _fit(self, data: Interactions) -> None:
        self.item_counts_ = np.bincount(data.items, minlength=data.n_items).astype(np.float64)

    def _predict(self, users, items):
        return np.where(items >= 0, self.item_counts_[np.maximum(items, 0)], 0.0)

    def _score_users(self, users):
        return np.broadcast_to(self.item_counts_, (len(users), self.n_items))


class BaselinePredictor(Recommender):
    r"""Global mean plus user and item biases, :math:`\hat r_{ui} = \mu + b_u + b_i`.

    :math:`\mu` is the mean training rating; the biases minimise the regularised squared error

    .. math::

        J(b) = \tfrac12 \sum_{(u,i) \in \mathcal{R}} (r_{ui} - \mu - b_u - b_i)^2
               + \tfrac{\lambda_u}{2} \sum_u b_u^2 + \tfrac{\lambda_i}{2} \sum_i b_i^2 .

    ``method="als"`` alternates the exact minimisers of :math:`J` in one block of biases with
    the other held fixed (items first, as Surprise's ``BaselineOnly`` does):

    .. math::

        b_i \leftarrow \frac{\sum_{u \in \mathcal{R}(i)} (r_{ui} - \mu - b_u)}{\lambda_i + |\mathcal{R}(i)|},
        \qquad
        b_u \leftarrow \frac{\sum_{i \in \mathcal{R}(u)} (r_{ui} - \mu - b_i)}{\lambda_u + |\mathcal{R}(u)|}.

    ``method="sgd"`` visits ratings in random order and steps along the share of
    :math:`-\nabla J` that belongs to one rating, :math:`e_{ui} = r_{ui} - \hat r_{ui}`:

    .. math::

        b_u \leftarrow b_u + \eta\,(e_{ui} - \tfrac{\lambda_u}{|\mathcal{R}(u)|} b_u), \qquad
        b_i \leftarrow b_i + \eta\,(e_{ui} - \tfrac{\lambda_i}{|\mathcal{R}(i)|} b_i),

    so both methods minimise the same :math:`J` and reach the same biases. (Surprise's SGD
    instead adds the regulariser at every visit, which is a different objective.)

    Parameters
    ----------
    method : {"als", "sgd"}
    reg_user, reg_item : float
        :math:`\lambda_u, \lambda_i \ge 0`; the defaults 15 and 10 are Surprise's.
    n_epochs : int, optional
        Passes over the data; default 10 for ALS and 30 for SGD.
    lr : float
        SGD step size :math:`\eta`.
    random_state : int, optional
        Seeds the SGD visiting order.
    verbose : bool
        Show a progress bar over epochs.

    Attributes
    ----------
    mean_ : float
    user_bias_, item_bias_ : ndarray
        :math:`b_u` and :math:`b_i`.
    loss_history_ : ndarray
        :math:`J` after each epoch.
    """

    def __init__(self, method: str = "als", reg_user: float = 15.0, reg_item: float = 10.0,
                 n_epochs: int | None = None, lr: float = 0.005, random_state=None,
                 verbose: bool = False):
        self.method = method
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.n_epochs = n_epochs
        self.lr = lr
        self.random_state = random_state
        self.verbose = verbose

    def predicts_ratings(self) -> bool:
        return True

    def unknown_fallback(self) -> str:
        return "mu plus the bias it knows (mu + b_i for an unknown user, mu + b_u for an unknown item, mu for both)"

    def _validate_params(self) -> None:
        check_choice("method", self.method, {"als", "sgd"})
        check_float("reg_user", self.reg_user, minimum=0.0)
        check_float("reg_item", self.reg_item, minimum=0.0)
        check_float("lr", self.lr, strictly_positive=True)
        if self.n_epochs is not None:
            check_int("n_epochs", self.n_epochs, minimum=1)

    def _fit(self, data: Interactions) -> None:
        users, items, ratings = data.users, data.items, data.ratings
        self.mean_ = float(ratings.mean())
        n_u = np.bincount(users, minlength=data.n_users).astype(np.float64)
        n_i = np.bincount(items, minlength=data.n_items).astype(np.float64)
        b_u = np.zeros(data.n_users)
        b_i = np.zeros(data.n_items)
        n_epochs = self.n_epochs or (10 if self.method == "als" else 30)
        rng = check_random_state(self.random_state)
        residual = ratings - self.mean_
        history = []
        for epoch in tqdm(range(n_epochs), desc=type(self).__name__, disable=not self.verbose):
            if self.method == "als":
                b_i = np.bincount(items, residual - b_u[users], data.n_items) / (self.reg_item + n_i)
                b_u = np.bincount(users, residual - b_i[items], data.n_users) / (self.reg_user + n_u)
            else:
                order = rng.permutation(len(ratings))
                _sgd_epoch(users[order], items[order], residual[order], b_u, b_i,
                           self.reg_user / np.maximum(n_u, 1), self.reg_item / np.maximum(n_i, 1),
                           self.lr)
            loss = baseline_objective(ratings, users, items, self.mean_, b_u, b_i,
                                      self.reg_user, self.reg_item)
            if not np.isfinite(loss):
                raise FloatingPointError(
                    f"{type(self).__name__} diverged at epoch {epoch + 1} (loss {loss}); "
                    f"lower lr (now {self.lr})")
            history.append(loss)
        self.user_bias_, self.item_bias_ = b_u, b_i
        self.loss_history_ = np.array(history)

    def _predict(self, users, items):
        b_u = np.where(users >= 0, self.user_bias_[np.maximum(users, 0)], 0.0)
        b_i = np.where(items >= 0, self.item_bias_[np.maximum(items, 0)], 0.0)
        return self.mean_ + b_u + b_i

    def _score_users(self, users):
        return self.mean_ + self.user_bias_[users][:, None] + self.item_bias_[None, :]


def baseline_objective(ratings, users, items, mean, user_bias, item_bias, reg_user, reg_item):
    r"""The objective :math:`J(b)` of :class:`BaselinePredictor` (halved squared error)."""
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged run is reported by the caller
        error = ratings - mean - user_bias[users] - item_bias[items]
        return float(0.5 * (error @ error + reg_user * user_bias @ user_bias
                            + reg_item * item_bias @ item_bias))


@numba.njit(cache=True)
def _sgd_epoch(users, items, residual, b_u, b_i, reg_u, reg_i, lr):  # pragma: no cover - jit
    for n in range(len(users)):
        u, i = users[n], items[n]
        e = residual[n] - b_u[u] - b_i[i]
        b_u[u] += lr * (e - reg_u[u] * b_u[u])
        b_i[i] += lr * (e - reg_i[i] * b_i[i])
