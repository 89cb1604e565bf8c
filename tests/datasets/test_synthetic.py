import numpy as np
import pytest

from reclib.datasets import synthetic_interactions


def test_shape_distinct_and_seeded():
    df = synthetic_interactions(500, 300, 5000, alpha=1.0, seed=3)
    assert len(df) == 5000 and not df.duplicated(["user_id", "item_id"]).any()
    assert df.user_id.between(0, 499).all() and df.item_id.between(0, 299).all()
    assert df.equals(synthetic_interactions(500, 300, 5000, alpha=1.0, seed=3))


def test_power_law_popularity():
    df = synthetic_interactions(5000, 2000, 100_000, alpha=1.0, seed=0)
    counts = np.sort(df.item_id.value_counts().to_numpy())[::-1]
    top_share = counts[:20].sum() / counts.sum()  # top 1% of the items
    assert top_share > 0.1
    flat = synthetic_interactions(5000, 2000, 100_000, alpha=0.0, seed=0)
    flat_counts = np.sort(flat.item_id.value_counts().to_numpy())[::-1]
    assert flat_counts[:20].sum() / flat_counts.sum() < 0.02


def test_ten_million_fit_well_under_a_gigabyte():
    df = synthetic_interactions(100_000, 20_000, 10_000_000, alpha=0.8, seed=0)
    assert len(df) == 10_000_000
    assert df.memory_usage(deep=True).sum() < 200 * 2**20


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_interactions == 100"):
        synthetic_interactions(10, 10, 100)
    with pytest.raises(ValueError, match="alpha == -1"):
        synthetic_interactions(10, 10, 5, alpha=-1)
