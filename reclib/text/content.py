r"""Content-based recommendation from item embeddings (for example text embeddings).

A user's profile is the weighted mean of the embeddings of the items they interacted with,
and an item's score is its inner product with the profile:

.. math::

    p_u = \frac{\sum_{j \in \mathcal R(u)} w_{uj}\, e_j}{\sum_{j \in \mathcal R(u)} w_{uj}},
    \qquad \hat x_{ui} = p_u^\top e_i ,

with :math:`w_{uj} = 1` (``weighting="uniform"``) or the rating (``"rating"``). It needs no
other user's data, so an item that nobody has interacted with is scored as soon as it has an
embedding: this is what the cold-item split measures.

Reference: M. J. Pazzani, D. Billsus, "Content-based recommendation systems", in *The
Adaptive Web*, LNCS 4321, 2007.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._validation import check_choice
from ..interactions import Interactions
from ..models.base import Recommender

_PREFIX = "emb_"


def embedding_table(item_ids, vectors) -> pd.DataFrame:
    """An ``item_features`` table (``item_id``, ``emb_0`` ... ``emb_{d-1}``) from vectors."""
    vectors = np.asarray(vectors, dtype=np.float64)
    item_ids = np.asarray(item_ids)
    if vectors.ndim != 2 or len(vectors) != len(item_ids):
        raise ValueError(f"vectors has shape {vectors.shape}, expected ({len(item_ids)}, dim)")
    table = pd.DataFrame(vectors, columns=[f"{_PREFIX}{n}" for n in range(vectors.shape[1])])
    table.insert(0, "item_id", item_ids)
    return table


def item_embedding_matrix(data: Interactions, owner: str) -> np.ndarray:
    """The ``(n_items, dim)`` float64 matrix of the ``emb_*`` item-feature columns of ``data``.

    ``owner`` names the model in the error raised when the columns are missing (values that
    are missing or not finite are refused when the table is attached to the interactions).
    """
    table = data.item_features
    columns = [] if table is None else [c for c in table.columns if c.startswith(_PREFIX)]
    if not columns:
        raise ValueError(f"{owner} needs item embeddings as item_features columns emb_0, "
                         f"emb_1, ...; build them with embedding_table(item_ids, vectors) and "
                         f"Interactions.from_dataframe(..., item_features=...)")
    return table[columns].to_numpy(dtype=np.float64)


class EmbeddingProfile(Recommender):
    """Score items by the inner product of their embedding with the user's mean profile.

    The embeddings come with the training data as ``item_features`` columns named
    ``emb_0, emb_1, ...`` (see :func:`embedding_table`), one row per item of the catalogue,
    interacted with or not.

    Parameters
    ----------
    weighting : {"rating", "uniform"}
        :math:`w_{uj}`: the rating, or 1 for every interaction.

    Attributes
    ----------
    item_embeddings_ : ndarray of shape (n_items, dim)
    interaction_weights_ : scipy.sparse.csr_matrix
        :math:`w_{uj}`, users x items.
    """

    def __init__(self, weighting: str = "rating"):
        self.weighting = weighting

    def _validate_params(self) -> None:
        check_choice("weighting", self.weighting, {"rating", "uniform"})

    def _fit(self, data: Interactions) -> None:
        self.item_embeddings_ = item_embedding_matrix(data, type(self).__name__)
        weights = data.ratings if self.weighting == "rating" else np.ones(data.n_interactions)
        if (weights <= 0).any():
            raise ValueError("weighting == 'rating' needs positive ratings; use 'uniform'")
        self.interaction_weights_ = sp.csr_matrix((weights, (data.users, data.items)),
                                                  shape=(data.n_users, data.n_items))

    def user_profiles(self, users: np.ndarray) -> np.ndarray:
        """:math:`p_u` for user *indices* ``(len(users), dim)``."""
        block = self.interaction_weights_[users]
        totals = np.asarray(block.sum(axis=1)).ravel()
        if (totals == 0).any():
            raise ValueError(f"user index {users[np.argmax(totals == 0)]} has no training "
                             f"interaction, so no profile")
        return np.asarray(block @ self.item_embeddings_) / totals[:, None]

    def _score_users(self, users):
        return self.user_profiles(np.asarray(users)) @ self.item_embeddings_.T

    def _item_vectors(self):
        return self.item_embeddings_
