import numpy as np
import pytest
import scipy.sparse as sp

from reclib.evaluation.diversity import intra_list_diversity


def slow_ild(lists, vectors):
    """The definition, one pair at a time."""
    per_list = []
    for row in lists:
        pairs = []
        for a in range(len(row)):
            for b in range(a + 1, len(row)):
                x, y = vectors[row[a]], vectors[row[b]]
                pairs.append(1 - x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))
        per_list.append(np.mean(pairs))
    return np.mean(per_list)


def test_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    vectors = rng.random((30, 6)) + 0.01
    lists = np.stack([rng.choice(30, size=5, replace=False) for _ in range(8)])
    assert intra_list_diversity(lists, vectors) == pytest.approx(slow_ild(lists, vectors), abs=1e-12)
    assert intra_list_diversity(lists, sp.csr_matrix(vectors)) == pytest.approx(
        slow_ild(lists, vectors), abs=1e-12)


def test_extremes():
    genres = np.eye(4)
    assert intra_list_diversity(np.array([[0, 1, 2, 3]]), genres) == pytest.approx(1.0)
    same = np.ones((3, 2))
    assert intra_list_diversity(np.array([[0, 1, 2]]), same) == pytest.approx(0.0)


@pytest.mark.parametrize("lists, vectors, match", [
    (np.array([[0], [1]]), np.eye(3), "k >= 2"),
    (np.array([[0, 5]]), np.eye(3), "must lie in"),
    (np.array([[0.0, 1.0]]), np.eye(3), "integer"),
    (np.array([[0, 2]]), np.array([[1.0, 0], [0, 1], [0, 0]]), "all-zero rows"),
])
def test_bad_input_is_refused(lists, vectors, match):
    with pytest.raises((ValueError, TypeError), match=match):
        intra_list_diversity(lists, vectors)
