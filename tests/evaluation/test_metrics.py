"""Ranking metrics against hand-worked examples and properties (hypothesis)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reclib.evaluation import (hit_rate_at_k, map_at_k, mae, mrr_at_k, ndcg_at_k,
                               precision_at_k, recall_at_k, rmse)
from reclib.evaluation.metrics import ranking_metrics

# One user, k = 5: list [a, b, c, d, e], relevant {a, c, x} (x is never recommended).
REC = [["a", "b", "c", "d", "e"]]
REL = [{"a", "c", "x"}]


def test_hand_worked_example():
    assert precision_at_k(REC, REL, k=5) == pytest.approx(2 / 5)
    assert recall_at_k(REC, REL, k=5) == pytest.approx(2 / 3)
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(REC, REL, k=5) == pytest.approx(dcg / idcg)
    ap_sum = 1 / 1 + 2 / 3  # precision at the ranks of the two hits
    assert map_at_k(REC, REL, k=5) == pytest.approx(ap_sum / 3)  # min(k=5, |R|=3)
    assert map_at_k(REC, REL, k=5, denominator="relevant") == pytest.approx(ap_sum / 3)
    assert map_at_k(REC, REL, k=2) == pytest.approx(1 / 2)  # min(k=2, 3) = 2
    assert map_at_k(REC, REL, k=2, denominator="relevant") == pytest.approx(1 / 3)
    assert hit_rate_at_k(REC, REL, k=5) == 1.0
    assert mrr_at_k([["b", "c"]], REL, k=2) == pytest.approx(1 / 2)
    assert mrr_at_k([["b", "d"]], REL, k=2) == 0.0


def test_rating_metrics():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert mae([1, 2, 3], [2, 2, 1]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        rmse([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        mae([1, np.nan], [1, 2])
    with pytest.raises(ValueError, match="empty"):
        rmse([], [])


def test_bad_input():
    with pytest.raises(ValueError, match="k == 0"):
        precision_at_k(REC, REL, k=0)
    with pytest.raises(ValueError, match="no relevant items"):
        ndcg_at_k(REC, [set()], k=5)
    with pytest.raises(ValueError, match="repeats"):
        ndcg_at_k([["a", "a"]], REL, k=2)
    with pytest.raises(ValueError, match="denominator"):
        map_at_k(REC, REL, denominator="max")


items = st.integers(0, 30)
user = st.tuples(st.lists(items, min_size=1, max_size=12, unique=True),
                 st.sets(items, min_size=1, max_size=12))
users = st.lists(user, min_size=1, max_size=8)
ALL = ["precision", "recall", "ndcg", "map", "map_rel", "hit_rate", "mrr"]


def _metrics(data, k):
    from reclib.evaluation.metrics import hits_from_lists
    hits, n_rel = hits_from_lists([r for r, _ in data], [s for _, s in data], k)
    return ranking_metrics(hits, n_rel, ALL)


@settings(max_examples=150, deadline=None)
@given(users, st.integers(1, 12))
def test_values_in_unit_interval(data, k):
    for value in _metrics(data, k).values():
        assert 0.0 <= value <= 1.0 + 1e-12


@settings(max_examples=100, deadline=None)
@given(users, st.integers(1, 12), st.randoms(use_true_random=False))
def test_invariant_to_user_order(data, k, rnd):
    shuffled = list(data)
    rnd.shuffle(shuffled)
    a, b = _metrics(data, k), _metrics(shuffled, k)
    for name in a:
        assert a[name] == pytest.approx(b[name])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sets(items, min_size=1, max_size=12), min_size=1, max_size=8),
       st.integers(1, 12))
def test_perfect_ranking_scores_one(relevant, k):
    recommended = [sorted(rel) + [100 + j for j in range(k)] for rel in relevant]
    m = _metrics(list(zip(recommended, relevant)), k)
    for name in ("ndcg", "map", "hit_rate", "mrr"):
        assert m[f"{name}@{k}"] == pytest.approx(1.0)
    expected_recall = np.mean([min(len(r), k) / len(r) for r in relevant])
    assert m[f"recall@{k}"] == pytest.approx(expected_recall)


@settings(max_examples=100, deadline=None)
@given(users, st.integers(1, 12))
def test_slow_reference_ndcg_and_ap(data, k):
    """The vectorised values equal a literal loop over each list."""
    ndcgs, aps = [], []
    for ranked, rel in data:
        ranked = ranked[:k]
        dcg = sum(1 / math.log2(j + 2) for j, it in enumerate(ranked) if it in rel)
        idcg = sum(1 / math.log2(j + 2) for j in range(min(k, len(rel))))
        ndcgs.append(dcg / idcg)
        hits, acc = 0, 0.0
        for j, it in enumerate(ranked):
            if it in rel:
                hits += 1
                acc += hits / (j + 1)
        aps.append(acc / min(k, len(rel)))
    m = _metrics(data, k)
    assert m[f"ndcg@{k}"] == pytest.approx(np.mean(ndcgs))
    assert m[f"map@{k}"] == pytest.approx(np.mean(aps))
