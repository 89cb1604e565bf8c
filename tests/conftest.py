"""Shared fixtures: a tiny planted data set and MovieLens 100K (offline, from the recbole wheel)."""

import numpy as np
import pandas as pd
import pytest

import reclib


@pytest.fixture(scope="session")
def ml100k():
    return reclib.datasets.load_movielens("100k")


@pytest.fixture(scope="session")
def ml100k_topn(ml100k):
    return reclib.split.stratified_split(ml100k, ratio=0.75, seed=42)


def planted_frame(n_users=40, n_items=30, seed=0):
    """Two user groups, each preferring its own half of the items.

    A user interacts with about 60% of the items of their own half (ratings 4-5) and about 15%
    of the other half (ratings 1-2). Both the ratings and the mere presence of interactions
    carry the group, so rating and implicit models alike should rank the unseen items of the
    user's own half first.
    """
    rng = np.random.default_rng(seed)
    rows = []
    half = n_items // 2
    for u in range(n_users):
        own = range(0, half) if u % 2 == 0 else range(half, n_items)
        for i in range(n_items):
            liked = i in own
            if rng.random() < (0.6 if liked else 0.15):
                rating = float(rng.integers(4, 6) if liked else rng.integers(1, 3))
                rows.append((f"u{u}", f"i{i}", rating, int(rng.integers(0, 10**6))))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def own_half(user_id, item_id, n_items=30):
    """True when ``item_id`` is in the half of the catalogue that ``user_id``'s group prefers."""
    u, i = int(str(user_id)[1:]), int(str(item_id)[1:])
    return (i < n_items // 2) == (u % 2 == 0)


@pytest.fixture
def planted():
    return reclib.Interactions.from_dataframe(planted_frame())
