"""The ranking core against a pure-Python reference: one tie rule, on both backends."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from reclib.core import topk


def reference_topk(scores, k, excluded=(), allowed=None):
    """Sort each row's eligible (score, index) pairs by score down, then index up; take k."""
    out_idx, out_val = [], []
    for r, row in enumerate(scores.tolist()):
        pairs = [(-s, j) for j, s in enumerate(row)
                 if j not in excluded[r] and (allowed is None or j in allowed)]
        pairs.sort()
        out_idx.append([j for _, j in pairs[:k]])
        out_val.append([-s for s, _ in pairs[:k]])
    return np.array(out_idx), np.array(out_val)


def both_backends(scores, k, **kw):
    a = topk(scores, k, **kw)
    tkw = {name: (torch.as_tensor(v) if isinstance(v, np.ndarray) else v) for name, v in kw.items()}
    b = topk(torch.as_tensor(scores), k, **tkw)
    return a, (b[0].numpy(), b[1].numpy())


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 7, 12])
def test_matches_reference_with_many_ties(seed, k):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(9, 12)).astype(np.float64)   # ties everywhere
    expected = reference_topk(scores, k, [set()] * 9)
    for idx, val in both_backends(scores, k):
        np.testing.assert_array_equal(idx, expected[0])
        np.testing.assert_array_equal(val, expected[1])


def test_tie_at_the_boundary_keeps_the_lowest_indices():
    scores = np.array([[5.0, 1.0, 1.0, 1.0, 1.0, 0.0]])
    for idx, _ in both_backends(scores, 3):
        np.testing.assert_array_equal(idx, [[0, 1, 2]])
    scores = np.full((1, 50), 2.0)
    for idx, _ in both_backends(scores, 4):
        np.testing.assert_array_equal(idx, [[0, 1, 2, 3]])


@pytest.mark.parametrize("seed", range(4))
def test_exclusions_and_candidates_match_reference(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=(6, 15)).astype(np.float32)
    seen = sp.random(6, 15, density=0.3, random_state=seed, format="csr")
    allowed = np.sort(rng.choice(15, size=11, replace=False))
    excluded = [set(seen[r].indices) for r in range(6)]
    k = min(len(allowed - 0) - max(len(e & set(allowed)) for e in excluded), 4)
    expected = reference_topk(scores, k, excluded, set(allowed))
    (idx, val), (tidx, tval) = both_backends(scores, k, exclude=seen, candidates=allowed)
    np.testing.assert_array_equal(idx, expected[0])
    np.testing.assert_array_equal(tidx, expected[0])
    np.testing.assert_array_equal(val, expected[1].astype(np.float32))
    assert val.dtype == np.float32


def test_an_excluded_item_never_appears_even_against_minus_inf():
    scores = np.array([[-np.inf, -np.inf, 3.0, -np.inf]])
    exclude = np.array([[True, False, False, False]])
    for idx, val in both_backends(scores, 3, exclude=exclude):
        np.testing.assert_array_equal(idx, [[2, 1, 3]])


def test_boolean_masks_and_global_exclusions():
    scores = np.arange(10, dtype=float)[None].repeat(2, 0)
    idx, _ = topk(scores, 2, exclude=np.array([9, 8]))
    np.testing.assert_array_equal(idx, [[7, 6], [7, 6]])
    mask = np.zeros(10, dtype=bool)
    mask[[1, 3, 5]] = True
    idx, _ = topk(scores, 3, candidates=mask)
    np.testing.assert_array_equal(idx, [[5, 3, 1], [5, 3, 1]])


def test_nan_scores_raise_naming_the_source():
    scores = np.array([[1.0, np.nan, 0.5]])
    with pytest.raises(ValueError, match="BPR produced 1 NaN score"):
        topk(scores, 1, source="BPR")
    with pytest.raises(ValueError, match="MyNet produced 1 NaN"):
        topk(torch.as_tensor(scores), 1, source="MyNet")


def test_too_few_eligible_items_is_an_error_not_a_short_list():
    scores = np.zeros((2, 4))
    with pytest.raises(ValueError, match="row 1 has only 1 eligible"):
        topk(scores, 2, exclude=np.array([[False] * 4, [True, True, True, False]]))
    with pytest.raises(ValueError, match="k == 5 but there are only 4 items"):
        topk(scores, 5)


@pytest.mark.parametrize("bad, match", [
    (dict(k=0), "k == 0"), (dict(k=1.5), "k must be an integer"),
    (dict(candidates=np.array([0.5])), "candidates must be a 1-D array"),
    (dict(candidates=np.array([7])), "candidates has item indices outside"),
    (dict(exclude=np.ones((3, 3), dtype=bool)), "exclude mask has shape"),
    (dict(exclude=sp.csr_matrix((1, 9))), "exclude has shape"),
])
def test_bad_arguments_are_named(bad, match):
    kw = {"k": 1, **bad}
    with pytest.raises((ValueError, TypeError), match=match):
        topk(np.zeros((2, 4)), **kw)


def test_shape_and_dtype_errors():
    with pytest.raises(ValueError, match="must be 2-D"):
        topk(np.zeros(4), 1)
    with pytest.raises(TypeError, match="real numbers"):
        topk(np.array([["a", "b"]]), 1)


def test_integer_scores_and_empty_batches():
    idx, val = topk(np.array([[3, 1, 3]]), 2)
    np.testing.assert_array_equal(idx, [[0, 2]])
    idx, val = topk(np.zeros((0, 5)), 3)
    assert idx.shape == (0, 3)
