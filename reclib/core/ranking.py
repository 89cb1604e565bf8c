r"""The one top-k of reclib: NumPy and torch backends, one tie rule, candidate filters.

Every ranked list in the package comes from :func:`topk`: ``recommend``, the evaluation
protocols, the neural estimators (on their device) and serving.

**Tie rule.** Items are ordered by score, highest first; items with equal scores are ordered
by their index, lowest first. The rule also decides which of several items tied at the
``k``-th place get into the list: the ones with the lowest indices. So the list is a pure
function of the scores, the same on every backend and for every batch size.

**Eligibility.** ``exclude`` removes items per row (the user's seen items, a filter list) and
``candidates`` restricts every row to a candidate set. An item that is not eligible never
appears, even when its score is ``-inf`` like an eligible item's. A row with fewer than ``k``
eligible items is an error, never a silently shorter or padded list.

**NaN.** A NaN score has no place in an order, so it raises an error naming its source
(for example the model that produced it).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._validation import check_int


def _is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def topk(scores, k: int, exclude=None, candidates=None, *, source: str = "scores"):
    """Indices and values of the ``k`` best eligible scores of each row, best first.

    Parameters
    ----------
    scores : ndarray or torch.Tensor of shape (n_rows, n_cols)
        Higher is better. With a torch tensor everything runs on its device and torch
        tensors come back.
    k : int
        List length, ``>= 1``.
    exclude : optional
        Items to leave out: a scipy sparse matrix of shape (n_rows, n_cols) whose stored
        entries are excluded (for example the rows of the seen-item matrix), a boolean array
        of shape (n_rows, n_cols) or (n_cols,) that is True where excluded, or a 1-D integer
        array of columns excluded from every row.
    candidates : optional
        Items allowed in every row: a 1-D integer array of columns, or a boolean array of
        shape (n_cols,) or (n_rows, n_cols), True where allowed.
    source : str
        Named in the error raised for NaN scores (e.g. ``"BPR"``).

    Returns
    -------
    indices : int64 array of shape (n_rows, k)
    values : array of shape (n_rows, k), the scores at ``indices``
    """
    k = check_int("k", k, minimum=1)
    if _is_torch(scores):
        return _topk_torch(scores, k, exclude, candidates, source)
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (rows x items), got shape {scores.shape}")
    if not np.issubdtype(scores.dtype, np.number) or np.issubdtype(scores.dtype, np.complexfloating):
        raise TypeError(f"scores must be real numbers, got dtype {scores.dtype}")
    n_rows, n_cols = scores.shape
    if np.issubdtype(scores.dtype, np.floating):
        _refuse_nan(np.isnan(scores), source)
    eligible = _eligible(exclude, candidates, scores.shape)
    _check_enough(k, n_cols if eligible is None else eligible.sum(axis=1), n_cols)
    if n_rows == 0:
        return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=scores.dtype)
    work = scores.astype(np.float64) if eligible is None else np.where(eligible, scores, -np.inf)
    # the k-th largest eligible score of each row: an excluded item sits at -inf, which is
    # never above an eligible score, so the k-th largest of `work` is the eligible one.
    threshold = -np.partition(-work, k - 1, axis=1)[:, k - 1]
    above = work > threshold[:, None]
    tied = work == threshold[:, None]
    if eligible is not None:
        tied &= eligible
    need = k - above.sum(axis=1)
    crowded = np.flatnonzero(tied.sum(axis=1) > need)         # rows with too many ties at k
    if len(crowded):                                           # keep the lowest indices
        keep = np.cumsum(tied[crowded], axis=1) <= need[crowded, None]
        tied[crowded] &= keep
    cols = np.nonzero(above | tied)[1].reshape(n_rows, k)      # increasing index per row
    vals = np.take_along_axis(scores, cols, axis=1)
    order = np.argsort(-vals.astype(np.float64), axis=1, kind="stable")   # ties: lower index first
    return np.take_along_axis(cols, order, axis=1), np.take_along_axis(vals, order, axis=1)


def _refuse_nan(nan_mask, source: str) -> None:
    if nan_mask.any():
        rows, cols = np.nonzero(nan_mask)
        raise ValueError(f"{source} produced {len(rows)} NaN score(s) (first at row {rows[0]}, "
                         f"item index {cols[0]}); NaN cannot be ranked. The model is probably "
                         f"diverged or was given NaN inputs")


def _check_enough(k: int, n_eligible, n_cols: int) -> None:
    n_eligible = np.asarray(n_eligible)
    if k > n_cols:
        raise ValueError(f"k == {k} but there are only {n_cols} items to rank")
    if n_eligible.size and n_eligible.min() < k:
        row = int(np.argmin(n_eligible))
        raise ValueError(f"k == {k} but row {row} has only {int(n_eligible[row])} eligible "
                         f"items after exclude/candidates; lower k or relax the filters")


def _eligible(exclude, candidates, shape) -> np.ndarray | None:
    """Boolean (n_rows, n_cols) mask of eligible items, or None when every item is."""
    n_rows, n_cols = shape
    if exclude is None and candidates is None:
        return None
    eligible = np.ones(shape, dtype=bool)
    if exclude is not None:
        if sp.issparse(exclude):
            ex = sp.csr_matrix(exclude)
            if ex.shape != shape:
                raise ValueError(f"exclude has shape {ex.shape}, expected {shape}")
            rows = np.repeat(np.arange(n_rows), np.diff(ex.indptr))
            eligible[rows, ex.indices] = False
        else:
            ex = np.asarray(exclude)
            if ex.dtype == bool:
                if ex.shape not in (shape, (n_cols,)):
                    raise ValueError(f"exclude mask has shape {ex.shape}, expected {shape} "
                                     f"or ({n_cols},)")
                eligible &= ~ex
            else:
                eligible[:, _columns("exclude", ex, n_cols)] = False
    if candidates is not None:
        cand = np.asarray(candidates)
        if cand.dtype == bool:
            if cand.shape not in (shape, (n_cols,)):
                raise ValueError(f"candidates mask has shape {cand.shape}, expected {shape} "
                                 f"or ({n_cols},)")
            eligible &= cand
        else:
            allowed = np.zeros(n_cols, dtype=bool)
            allowed[_columns("candidates", cand, n_cols)] = True
            eligible &= allowed
    return eligible


def _columns(name: str, cols: np.ndarray, n_cols: int) -> np.ndarray:
    if cols.ndim != 1 or not np.issubdtype(cols.dtype, np.integer):
        raise TypeError(f"{name} must be a 1-D array of item indices or a boolean mask, got "
                        f"dtype {cols.dtype} and shape {cols.shape}")
    if cols.size and (cols.min() < 0 or cols.max() >= n_cols):
        raise ValueError(f"{name} has item indices outside 0 .. {n_cols - 1}")
    return cols


def _topk_torch(scores, k, exclude, candidates, source):
    import torch

    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (rows x items), got shape {tuple(scores.shape)}")
    n_rows, n_cols = scores.shape
    if scores.is_floating_point():
        nan = torch.isnan(scores)
        if bool(nan.any()):
            _refuse_nan(nan.cpu().numpy(), source)
    eligible = _eligible_torch(exclude, candidates, scores)
    _check_enough(k, n_cols if eligible is None else eligible.sum(dim=1).cpu().numpy(), n_cols)
    if n_rows == 0:
        return (torch.empty((0, k), dtype=torch.int64, device=scores.device),
                torch.empty((0, k), dtype=scores.dtype, device=scores.device))
    work = scores if scores.is_floating_point() else scores.double()
    if eligible is not None:
        work = work.masked_fill(~eligible, float("-inf"))
    threshold = -torch.kthvalue(-work, k, dim=1).values          # k-th largest per row
    above = work > threshold[:, None]
    tied = work == threshold[:, None]
    if eligible is not None:
        tied &= eligible
    need = k - above.sum(dim=1)
    crowded = (tied.sum(dim=1) > need).nonzero().flatten()
    if len(crowded):
        keep = torch.cumsum(tied[crowded].to(torch.int32), dim=1) <= need[crowded, None]
        tied[crowded] = tied[crowded] & keep
    cols = (above | tied).nonzero()[:, 1].reshape(n_rows, k)    # row-major: increasing index
    vals = torch.gather(scores, 1, cols)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    return torch.gather(cols, 1, order), torch.gather(vals, 1, order)


def _eligible_torch(exclude, candidates, scores):
    import torch

    if exclude is None and candidates is None:
        return None
    if sp.issparse(exclude) or not (exclude is None or _is_torch(exclude)) or \
            not (candidates is None or _is_torch(candidates)):
        mask = _eligible(None if exclude is None or _is_torch(exclude) else exclude,
                         None if candidates is None or _is_torch(candidates) else candidates,
                         tuple(scores.shape))
        eligible = torch.from_numpy(mask).to(scores.device)
    else:
        eligible = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    for name, value, allow in (("exclude", exclude, False), ("candidates", candidates, True)):
        if value is None or not _is_torch(value):
            continue
        if value.dtype == torch.bool:
            eligible &= value if allow else ~value
        else:
            mask = torch.zeros(scores.shape[1], dtype=torch.bool, device=scores.device)
            mask[value.to(scores.device)] = True
            eligible &= mask if allow else ~mask
    return eligible


def default_batch_size(n_items: int, budget: float = 2e7) -> int:
    """Users per batch so that one dense (batch, n_items) score block stays near ``budget`` cells."""
    return max(1, int(budget // max(n_items, 1)))
