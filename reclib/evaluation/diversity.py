r"""Intra-list diversity: how different the items of one recommendation list are.

For a list :math:`L_u` of :math:`k` items with feature vectors :math:`\mathbf{x}_i` (genres,
for instance), the intra-list diversity is the mean pairwise cosine distance

.. math::

    \text{ILD}(L_u) = \frac{2}{k(k-1)} \sum_{n < n'} \Big(1 - \frac{\mathbf{x}_{i_n}^\top
    \mathbf{x}_{i_{n'}}}{\lVert \mathbf{x}_{i_n} \rVert\, \lVert \mathbf{x}_{i_{n'}} \rVert}\Big),

and :func:`intra_list_diversity` averages it over users (Ziegler et al., WWW 2005; Vargas and
Castells, RecSys 2011). A list of near-duplicates scores 0; a list of items with disjoint
features scores 1 when the features are non-negative.
"""

from __future__ import annotations

import numpy as np


def intra_list_diversity(recommended_items, item_vectors) -> float:
    """Mean over lists of the mean pairwise cosine distance between their items.

    Parameters
    ----------
    recommended_items : array of int, shape (n_users, k)
        Item indices (rows of ``item_vectors``), one list per row, ``k >= 2``.
    item_vectors : array or scipy sparse matrix, shape (n_items, m)
        One feature vector per item; no row may be all zeros (its cosine is undefined).

    Returns
    -------
    float
    """
    lists = np.asarray(recommended_items)
    if lists.ndim != 2 or lists.shape[1] < 2:
        raise ValueError(f"recommended_items must have shape (n_users, k) with k >= 2, "
                         f"got shape {lists.shape}")
    if not np.issubdtype(lists.dtype, np.integer):
        raise TypeError(f"recommended_items must hold integer item indices, got dtype {lists.dtype}")
    vectors = item_vectors.toarray() if hasattr(item_vectors, "toarray") else np.asarray(item_vectors)
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2:
        raise ValueError(f"item_vectors must be 2-dimensional, got shape {vectors.shape}")
    if lists.size and (lists.min() < 0 or lists.max() >= vectors.shape[0]):
        raise ValueError(f"recommended_items must lie in [0, {vectors.shape[0]}), got values "
                         f"from {lists.min()} to {lists.max()}")
    norms = np.linalg.norm(vectors, axis=1)
    used = np.unique(lists)
    if np.any(norms[used] == 0):
        bad = used[norms[used] == 0][:5].tolist()
        raise ValueError(f"item_vectors has all-zero rows for recommended items {bad}: their "
                         f"cosine distance is undefined")
    if lists.shape[0] == 0:
        raise ValueError("recommended_items holds no lists")
    unit = vectors[lists] / norms[lists][..., None]          # (n_users, k, m)
    similarity = np.einsum("ukm,ulm->ukl", unit, unit)       # (n_users, k, k)
    k = lists.shape[1]
    off_diagonal = similarity.sum(axis=(1, 2)) - np.trace(similarity, axis1=1, axis2=2)
    return float(np.mean(1.0 - off_diagonal / (k * (k - 1))))
