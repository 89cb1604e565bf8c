r"""Negative samplers: which unobserved items a model is shown as negatives.

Both samplers draw whole arrays at once (no Python loop per example). Sampled items are not
checked against the user's history: with MovieLens densities (about 6%) a sampled negative is
rarely a positive, and the check would cost more than the noise it removes.

``UniformSampler`` draws every item with :math:`Q(j) = 1/|I|`. ``PopularitySampler`` draws item
:math:`j` with :math:`Q(j) \propto n_j^{\beta}`, where :math:`n_j` is its number of training
interactions; :meth:`PopularitySampler.log_prob` gives the :math:`\log Q(j)` that the log-Q
correction of :func:`reclib.neural.losses.sampled_softmax_loss` subtracts.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_float, check_int


class UniformSampler:
    """Items drawn uniformly at random from ``0 .. n_items - 1``."""

    def __init__(self, n_items: int):
        self.n_items = check_int("n_items", n_items, minimum=1)

    def sample(self, rng: np.random.Generator, size) -> np.ndarray:
        """Item indices of shape ``size`` (an int or a tuple)."""
        return rng.integers(0, self.n_items, size=size, dtype=np.int64)

    def log_prob(self, items: np.ndarray) -> np.ndarray:
        """:math:`\\log Q(j) = -\\log |I|` for every item."""
        return np.full(np.shape(items), -np.log(self.n_items))


class PopularitySampler:
    r"""Items drawn with probability :math:`Q(j) \propto (n_j + \epsilon)^{\beta}`.

    Parameters
    ----------
    counts : array of shape (n_items,)
        Training interactions per item.
    beta : float
        :math:`\beta \ge 0`; ``0`` is uniform, ``1`` proportional to popularity, ``0.75`` the
        word2vec choice.
    smoothing : float
        :math:`\epsilon \ge 0`, added so that items without interactions can still be drawn.
    """

    def __init__(self, counts, beta: float = 1.0, smoothing: float = 1.0):
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim != 1 or len(counts) == 0 or (counts < 0).any():
            raise ValueError("counts must be a non-empty 1-D array of non-negative numbers")
        beta = check_float("beta", beta, minimum=0.0)
        smoothing = check_float("smoothing", smoothing, minimum=0.0)
        weights = (counts + smoothing) ** beta
        if weights.sum() <= 0:
            raise ValueError("every item has zero weight; use smoothing > 0")
        self.probabilities = weights / weights.sum()
        self.n_items = len(counts)
        self._cumulative = np.cumsum(self.probabilities)
        self._cumulative[-1] = 1.0

    def sample(self, rng: np.random.Generator, size) -> np.ndarray:
        """Item indices of shape ``size`` (inverse-CDF sampling, one ``searchsorted``)."""
        draws = rng.random(size)
        return np.searchsorted(self._cumulative, draws, side="right").astype(np.int64)

    def log_prob(self, items: np.ndarray) -> np.ndarray:
        r""":math:`\log Q(j)` of each item."""
        with np.errstate(divide="ignore"):
            return np.log(self.probabilities[np.asarray(items)])


def make_sampler(kind: str, counts) -> UniformSampler | PopularitySampler:
    """``"uniform"`` or ``"popularity"`` sampler over ``len(counts)`` items."""
    if kind == "uniform":
        return UniformSampler(len(counts))
    if kind == "popularity":
        return PopularitySampler(counts)
    raise ValueError(f"sampler == {kind!r}, must be one of ['popularity', 'uniform']")
