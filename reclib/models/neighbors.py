r"""Neighbourhood (k-nearest-neighbour) collaborative filtering: :class:`UserKNN`, :class:`ItemKNN`.

Explicit feedback (``feedback="explicit"``, rating prediction). Item-based, for user :math:`u`
and item :math:`i`, with :math:`N^k_u(i)` the ``k`` items rated by :math:`u` that have the
largest positive similarity :math:`s_{ij}` to :math:`i`:

.. math::

    \hat r_{ui} = c_{ui} + \frac{\sum_{j \in N^k_u(i)} s_{ij}\,(r_{uj} - c_{uj})}
                               {\sum_{j \in N^k_u(i)} s_{ij}},

where the *centering* term :math:`c` is 0 (``centering=None``: a weighted average of the
user's ratings), the item mean :math:`\mu_i` (``"mean"``), or the baseline estimate
:math:`b_{ui} = \mu + b_u + b_i` (``"baseline"``, Koren 2010, eq. 3; Surprise's KNNBaseline).
User-based kNN swaps the roles: the neighbours are the ``k`` users most similar to :math:`u`
among those who rated :math:`i`, and ``"mean"`` uses user means. With fewer than ``min_k``
neighbours the prediction is the centering term alone (the global mean for ``centering=None``);
the same fallback serves users and items unseen in training, keeping the terms that are known.
Negative similarities are left out, as in Surprise, so the denominator is
:math:`\sum_j |s_{ij}|` of Koren's formula.

Implicit feedback (``feedback="implicit"``, top-N ranking) uses the 0/1 matrix :math:`X` of
interactions, optionally re-weighted by BM25 or TF-IDF, and keeps the ``k`` most similar
neighbours of every item (Deshpande and Karypis 2004):

.. math::

    \text{ItemKNN: } \mathrm{score}(u, i) = \sum_{j \in I(u)} [\,i \in N^k(j)\,]\, s_{ji},
    \qquad
    \text{UserKNN: } \mathrm{score}(u, i) = \sum_{v \in N^k(u)} s_{uv}\, x_{vi}.

ItemKNN in this mode is the model of ``implicit``'s ``CosineRecommender``
(``similarity="cosine"``), ``BM25Recommender`` (``weighting="bm25", similarity="dot"``) and
``TFIDFRecommender`` (``weighting="tfidf"``, cosine), except that an item is never counted
among its own ``k`` neighbours.

References
----------
J. Herlocker, J. Konstan, A. Borchers, J. Riedl, "An algorithmic framework for performing
collaborative filtering", SIGIR 1999. B. Sarwar, G. Karypis, J. Konstan, J. Riedl,
"Item-based collaborative filtering recommendation algorithms", WWW 2001. M. Deshpande,
G. Karypis, "Item-based top-N recommendation algorithms", ACM TOIS 22(1), 2004. Y. Koren,
"Factor in the neighbors: scalable and accurate collaborative filtering", ACM TKDD 4(1), 2010.
S. Robertson, H. Zaragoza, "The probabilistic relevance framework: BM25 and beyond",
Foundations and Trends in Information Retrieval 3(4), 2009.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._validation import check_choice, check_float, check_int
from ..interactions import Interactions
from ._similarity import (bm25_weight, corated_similarity, neighbour_sums, tfidf_weight,
                          top_k_similarity)
from .base import Recommender
from .baselines import BaselinePredictor

_EXPLICIT_SIMILARITIES = {"cosine", "pearson", "pearson_baseline"}
_IMPLICIT_SIMILARITIES = {"cosine", "dot"}
_DEFAULTS = {"explicit": {"similarity": "pearson_baseline", "shrinkage": 100.0},
             "implicit": {"similarity": "cosine", "shrinkage": 0.0}}


class _Neighbourhood(Recommender):
    """Shared machinery; subclasses say which side holds the neighbours (``_item_based``)."""

    _item_based: bool
    _abstract = True

    def __init__(self, k: int = 40, min_k: int = 1, similarity: str | None = None,
                 shrinkage: float | None = None, centering: str | None = "baseline",
                 feedback: str = "explicit", weighting: str | None = None,
                 bm25_k1: float = 1.2, bm25_b: float = 0.75, reg_user: float = 15.0,
                 reg_item: float = 10.0, baseline_epochs: int = 10, verbose: bool = False):
        self.k = k
        self.min_k = min_k
        self.similarity = similarity
        self.shrinkage = shrinkage
        self.centering = centering
        self.feedback = feedback
        self.weighting = weighting
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.baseline_epochs = baseline_epochs
        self.verbose = verbose

    def predicts_ratings(self) -> bool:
        """Explicit mode predicts ratings; implicit mode ranks by similarity sums."""
        return self.feedback == "explicit"

    def unknown_fallback(self) -> str:
        if self.feedback == "implicit":
            return "a score of 0"
        return (f"the centering term ({self.centering}) with the unknown side's part dropped"
                if self.centering is not None else "the global mean mu")

    # ------------------------------------------------------------------ parameters
    def _resolved(self) -> tuple[str, float]:
        """The similarity and shrinkage in use (``None`` means the mode's default)."""
        defaults = _DEFAULTS[self.feedback]
        similarity = defaults["similarity"] if self.similarity is None else self.similarity
        shrinkage = defaults["shrinkage"] if self.shrinkage is None else self.shrinkage
        return similarity, shrinkage

    def _validate_params(self) -> None:
        check_choice("feedback", self.feedback, {"explicit", "implicit"})
        k = check_int("k", self.k, minimum=1)
        min_k = check_int("min_k", self.min_k, minimum=1)
        if min_k > k:
            raise ValueError(f"min_k == {min_k} is larger than k == {k}; every prediction "
                             f"would fall back to the centering term")
        similarity, shrinkage = self._resolved()
        allowed = _EXPLICIT_SIMILARITIES if self.feedback == "explicit" else _IMPLICIT_SIMILARITIES
        if similarity not in allowed:
            raise ValueError(f"similarity == {similarity!r}, must be one of {sorted(allowed)} "
                             f"with feedback={self.feedback!r}")
        check_float("shrinkage", shrinkage, minimum=0.0)
        _check_optional_choice("centering", self.centering, ["baseline", "mean"])
        _check_optional_choice("weighting", self.weighting, ["bm25", "tfidf"])
        if self.weighting is not None and self.feedback == "explicit":
            raise ValueError(f"weighting == {self.weighting!r} applies to the 0/1 matrix of "
                             f"feedback='implicit'; use weighting=None for ratings")
        check_float("bm25_k1", self.bm25_k1, strictly_positive=True)
        check_float("bm25_b", self.bm25_b, minimum=0.0, maximum=1.0)
        check_float("reg_user", self.reg_user, minimum=0.0)
        check_float("reg_item", self.reg_item, minimum=0.0)
        check_int("baseline_epochs", self.baseline_epochs, minimum=1)

    # ------------------------------------------------------------------ fitting
    def _fit(self, data: Interactions) -> None:
        if self.feedback == "implicit":
            self._fit_implicit(data)
        else:
            self._fit_explicit(data)

    def _fit_explicit(self, data: Interactions) -> None:
        similarity, shrinkage = self._resolved()
        baseline = BaselinePredictor(method="als", reg_user=self.reg_user, reg_item=self.reg_item,
                                     n_epochs=self.baseline_epochs).fit(data)
        self.mean_ = baseline.mean_
        self.user_bias_, self.item_bias_ = baseline.user_bias_, baseline.item_bias_
        n_u = np.bincount(data.users, minlength=data.n_users)
        n_i = np.bincount(data.items, minlength=data.n_items)
        self.user_mean_ = np.bincount(data.users, data.ratings, data.n_users) / np.maximum(n_u, 1)
        self.item_mean_ = np.bincount(data.items, data.ratings, data.n_items) / np.maximum(n_i, 1)
        # Rows = the side whose entries are the candidate neighbours, one row per context.
        rows, cols = (data.users, data.items) if self._item_based else (data.items, data.users)
        shape = (data.n_users, data.n_items) if self._item_based else (data.n_items, data.n_users)
        residual = _csr_keep_zeros(rows, cols, data.ratings - self._centering_terms(
            data.users, data.items, self.centering), shape)
        if similarity == "pearson_baseline":
            values = _csr_keep_zeros(cols, rows, data.ratings - self._centering_terms(
                data.users, data.items, "baseline"), shape[::-1])
            kind = "cosine"
        else:
            values = _csr_keep_zeros(cols, rows, data.ratings, shape[::-1])
            kind = similarity
        self.similarity_ = corated_similarity(values, kind, shrinkage, verbose=self.verbose)
        self.residuals_ = residual

    def _fit_implicit(self, data: Interactions) -> None:
        similarity, shrinkage = self._resolved()
        binary = self.seen_ if not self._item_based else self.seen_.T.tocsr()
        binary = sp.csr_matrix(binary, dtype=np.float64)   # (n_entities, n_other) of 0/1
        if self.weighting == "bm25":
            binary = bm25_weight(binary, self.bm25_k1, self.bm25_b)
        elif self.weighting == "tfidf":
            binary = tfidf_weight(binary)
        self.similarity_ = top_k_similarity(binary, similarity, self.k, shrinkage,
                                            verbose=self.verbose)

    # ------------------------------------------------------------------ scoring
    def _centering_terms(self, users, items, centering):
        """The term :math:`c_{ui}` added back to the neighbourhood average (unknown = -1)."""
        known_u, known_i = users >= 0, items >= 0
        u, i = np.maximum(users, 0), np.maximum(items, 0)
        if centering == "baseline":
            return (self.mean_ + np.where(known_u, self.user_bias_[u], 0.0)
                    + np.where(known_i, self.item_bias_[i], 0.0))
        if centering == "mean":
            if self._item_based:
                return np.where(known_i, self.item_mean_[i], self.mean_)
            return np.where(known_u, self.user_mean_[u], self.mean_)
        return np.zeros(len(users))

    def _predict(self, users, items):
        if self.feedback == "implicit":
            return self._implicit_pairs(users, items)
        targets, contexts = (items, users) if self._item_based else (users, items)
        numer, denom, count = neighbour_sums(
            targets, contexts, self.residuals_.indptr, self.residuals_.indices,
            self.residuals_.data, self.similarity_, int(self.k))
        ok = (count >= self.min_k) & (denom > 0)
        centre = self._centering_terms(users, items, self.centering)
        fallback = centre if self.centering is not None else np.full(len(users), self.mean_)
        return np.where(ok, centre + numer / np.where(ok, denom, 1.0), fallback)

    def _score_users(self, users):
        if self.feedback == "implicit":
            if self._item_based:
                return (self.seen_[users] @ self.similarity_).toarray()
            return (self.similarity_[users] @ self.seen_).toarray()
        n_items = self.n_items
        pair_users = np.repeat(users, n_items)
        pair_items = np.tile(np.arange(n_items), len(users))
        return self._predict(pair_users, pair_items).reshape(len(users), n_items)

    def _implicit_pairs(self, users, items):
        known = (users >= 0) & (items >= 0)
        u, i = np.maximum(users, 0), np.maximum(items, 0)
        if self._item_based:      # sum_j x_uj s_ji
            left, right = self.seen_[u], self.similarity_.T.tocsr()[i]
        else:                     # sum_v s_uv x_vi
            left, right = self.similarity_[u], self.seen_.T.tocsr()[i]
        scores = np.asarray(left.multiply(right).sum(axis=1)).ravel()
        return np.where(known, scores, 0.0)


class UserKNN(_Neighbourhood):
    r"""User-based k-nearest-neighbour collaborative filtering (GroupLens; Herlocker et al. 1999).

    See the module docstring for the formulas. With ``feedback="explicit"``

    .. math::

        \hat r_{ui} = c_{ui} + \frac{\sum_{v \in N^k_i(u)} s_{uv}\,(r_{vi} - c_{vi})}
                                   {\sum_{v \in N^k_i(u)} s_{uv}},

    :math:`N^k_i(u)` being the ``k`` users most similar to :math:`u` (positive similarity)
    among those who rated :math:`i`.

    Parameters
    ----------
    k : int
        Neighbours per prediction (``>= 1``).
    min_k : int
        Fewest neighbours for a neighbourhood prediction; with fewer, the centering term
        alone is predicted (``1 <= min_k <= k``).
    similarity : {"cosine", "pearson", "pearson_baseline"} or {"cosine", "dot"}, optional
        Explicit mode: over co-rated items (:func:`~reclib.models._similarity.corated_similarity`),
        ``"pearson_baseline"`` being the cosine of the residuals :math:`r - b_{ui}`. Implicit
        mode: cosine or dot product of whole (weighted) 0/1 rows. Default
        ``"pearson_baseline"`` (explicit) or ``"cosine"`` (implicit).
    shrinkage : float, optional
        :math:`\lambda \ge 0` in :math:`s \leftarrow \frac{n}{n + \lambda} s`, :math:`n` the
        number of common ratings. Default 100 (explicit) or 0 (implicit).
    centering : {"baseline", "mean", None}
        Explicit mode only: what is subtracted from the neighbours' ratings and added back.
    feedback : {"explicit", "implicit"}
        Predict ratings, or rank from the 0/1 interaction matrix.
    weighting : {None, "bm25", "tfidf"}
        Implicit mode only: re-weight the 0/1 matrix, rows as documents, before comparing rows.
    bm25_k1, bm25_b : float
        BM25's :math:`k_1 > 0` and :math:`0 \le b \le 1`.
    reg_user, reg_item, baseline_epochs
        Regularisation and ALS epochs of the :class:`~reclib.models.BaselinePredictor`
        behind ``"baseline"`` centering and ``"pearson_baseline"`` (Surprise's defaults).
    verbose : bool
        Progress bar over similarity blocks.

    Attributes
    ----------
    similarity_ : ndarray (explicit) or csr_matrix (implicit, ``k`` per row)
        User-user similarities; dense float32 takes ``4 * n_users**2`` bytes.
    residuals_ : csr_matrix of shape (n_items, n_users)
        Explicit mode: :math:`r_{vi} - c_{vi}` of each training rating.
    mean_, user_bias_, item_bias_, user_mean_, item_mean_ : float, ndarray
        Explicit mode: baseline terms and mean ratings.
    """

    _item_based = False


class ItemKNN(_Neighbourhood):
    r"""Item-based k-nearest-neighbour collaborative filtering (Sarwar et al. 2001; Koren 2010).

    See the module docstring for the formulas: rating prediction with ``feedback="explicit"``
    (default: Pearson-baseline similarity shrunk with :math:`\lambda = 100`, baseline
    centering, ``k = 40``: Surprise's item-based KNNBaseline), and top-N ranking over the 0/1
    matrix with ``feedback="implicit"``.

    Parameters
    ----------
    k, min_k, similarity, shrinkage, centering, feedback, weighting, bm25_k1, bm25_b, reg_user, reg_item, baseline_epochs, verbose
        As for :class:`UserKNN`, with items in the place of users. In implicit mode ``k``
        is the number of neighbours kept per item.

    Attributes
    ----------
    similarity_ : ndarray (explicit) or csr_matrix (implicit, ``k`` per row)
        Item-item similarities; dense float32 takes ``4 * n_items**2`` bytes (11 MB for
        MovieLens 100K); the implicit mode keeps ``k`` per item.
    residuals_ : csr_matrix of shape (n_users, n_items)
        Explicit mode: :math:`r_{uj} - c_{uj}` of each training rating.
    mean_, user_bias_, item_bias_, user_mean_, item_mean_ : float, ndarray
        Explicit mode: baseline terms and mean ratings.
    """

    _item_based = True

    def similar_items(self, item_ids, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items with the highest learned similarity to each given item (never itself)."""
        self._check_is_fitted()
        items = self.item_index(item_ids)
        sims = self.similarity_[items]
        sims = sims.toarray() if sp.issparse(sims) else np.asarray(sims, dtype=np.float64)
        return self._top_similar(items, sims, k)


def _check_optional_choice(name: str, value, choices: list) -> None:
    if value is not None and value not in choices:
        raise ValueError(f"{name} == {value!r}, must be None or one of {choices}")


def _csr_keep_zeros(rows, cols, values, shape) -> sp.csr_matrix:
    """CSR with one stored entry per (row, col), sorted, keeping entries whose value is 0."""
    order = np.argsort(rows * np.int64(shape[1]) + cols, kind="stable")
    indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=shape[0]))]
    return sp.csr_matrix((np.asarray(values, dtype=np.float64)[order], cols[order], indptr),
                         shape=shape)
