"""Top-k selection and seen-item masking, shared by ``recommend`` and the ranking protocol."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def mask_rows(scores: np.ndarray, matrix: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """Set ``scores[b, j] = -inf`` wherever ``matrix[rows[b], j]`` is stored (in place)."""
    sub = matrix[rows]
    row_of_entry = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
    scores[row_of_entry, sub.indices] = -np.inf
    return scores


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest scores of each row, best first.

    Ties inside the top k are ordered by column index; the result is deterministic.
    """
    n_cols = scores.shape[1]
    if k < n_cols:
        # argpartition on -scores puts the k largest first; a stable sort then orders them.
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n_cols), scores.shape).copy()
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(scores, idx, axis=1)


def default_batch_size(n_items: int, budget: float = 2e7) -> int:
    """Users per batch so that one dense (batch, n_items) score block stays near ``budget`` cells."""
    return max(1, int(budget // max(n_items, 1)))
