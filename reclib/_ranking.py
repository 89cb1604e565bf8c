"""Backwards-compatible names for the ranking core (:mod:`reclib.core.ranking`)."""

from __future__ import annotations

from .core.ranking import default_batch_size, topk


def top_k(scores, k: int):
    """``topk(scores, k)``: the ``k`` largest scores of each row (tie rule of :func:`topk`)."""
    return topk(scores, k)


__all__ = ["top_k", "topk", "default_batch_size"]


def mask_rows(scores, matrix, rows):
    """Set ``scores[b, j] = -inf`` wherever ``matrix[rows[b], j]`` is stored (in place)."""
    import numpy as np
    sub = matrix[rows]
    row_of_entry = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
    scores[row_of_entry, sub.indices] = -np.inf
    return scores
