import numpy as np
import pandas as pd
import pytest

import reclib
from reclib import split


def test_kfold_partitions_rows(ml100k):
    folds = list(split.kfold(ml100k, n_splits=5, seed=0))
    assert len(folds) == 5
    sizes = [len(test) for _, test in folds]
    assert sum(sizes) == len(ml100k) and max(sizes) - min(sizes) <= 1
    keys = pd.concat([test.to_dataframe() for _, test in folds])
    assert not keys.duplicated(["user_id", "item_id"]).any()
    train, test = folds[0]
    assert len(train) + len(test) == len(ml100k) and test.shares_index_with(train)


def test_kfold_is_seeded(ml100k):
    a = next(split.kfold(ml100k, seed=0))[1].to_dataframe()
    b = next(split.kfold(ml100k, seed=0))[1].to_dataframe()
    c = next(split.kfold(ml100k, seed=1))[1].to_dataframe()
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_stratified_split_per_user_ratio(ml100k):
    train, test = split.stratified_split(ml100k, ratio=0.75, seed=42)
    assert len(train) + len(test) == len(ml100k)
    n_train = np.bincount(train.users, minlength=train.n_users)
    n_test = np.bincount(test.users[test.users >= 0], minlength=train.n_users)
    expected = np.floor(0.75 * (n_train + n_test) + 0.5)
    np.testing.assert_array_equal(n_train, expected)
    assert test.n_unknown_users == 0  # every user keeps training data
    assert train.n_users == 943


def test_leave_last_out_takes_latest(ml100k):
    train, valid, test = split.leave_last_out(ml100k, validation=True)
    df = ml100k.sort_values(["user_id", "timestamp"], kind="stable")
    last_time = df.groupby("user_id")["timestamp"].max()
    t = test.to_dataframe().set_index("user_id")["timestamp"]
    np.testing.assert_array_equal(t.sort_index().to_numpy(), last_time.loc[t.index].sort_index().to_numpy())
    assert len(test) == len(valid) == 943
    tr = train.to_dataframe().groupby("user_id")["timestamp"].max()
    assert (tr.loc[t.index] <= t).all()


def test_leave_last_out_needs_timestamps():
    df = pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "rating": [1.0, 1.0]})
    with pytest.raises(ValueError, match="timestamps"):
        split.leave_last_out(df)


def test_small_users_stay_in_train():
    df = pd.DataFrame({"user_id": [1, 2, 2], "item_id": [1, 1, 2], "rating": [1.0] * 3,
                       "timestamp": [1, 1, 2]})
    train, test = split.leave_last_out(df)
    assert len(train) == 2 and len(test) == 1
    with pytest.raises(ValueError, match="leaves a part empty"):
        split.stratified_split(df, 0.75, seed=0)  # 1 and 2 interactions: all stay in train


@pytest.mark.parametrize("kwargs, match", [({"ratio": 1.0}, "strictly between"),
                                           ({"ratio": -0.5}, "ratio == -0.5")])
def test_bad_ratio(kwargs, match):
    df = reclib.datasets.synthetic_interactions(20, 20, 50, seed=0)
    with pytest.raises(ValueError, match=match):
        split.stratified_split(df, **kwargs)


def test_temporal_split(ml100k):
    train, test = split.temporal_split(ml100k, ratio=0.8)
    assert len(train) == 80000
    assert train.timestamps.max() <= test.timestamps.min()


def test_leave_last_out_against_a_literal_reference():
    """Per user in time order, ties by file order: last -> test, second-to-last -> validation."""
    df = pd.DataFrame({"user_id": ["a", "a", "a", "a", "b", "b", "b", "c", "c"],
                       "item_id": [1, 2, 3, 4, 1, 2, 3, 1, 2],
                       "rating": 1.0,
                       "timestamp": [5, 1, 5, 3, 2, 2, 2, 9, 8]})
    # a: times 1(2) 3(4) 5(1) 5(3) -> order 2, 4, 1, 3 (the tie at 5 keeps file order)
    # b: all tied -> file order 1, 2, 3;  c: 8(2) 9(1) -> order 2, 1 (too short for three parts)
    train, valid, test = reclib.split.leave_last_out(df, validation=True)
    pairs = lambda part: sorted(zip(part.to_dataframe()["user_id"], part.to_dataframe()["item_id"]))
    assert pairs(test) == [("a", 3), ("b", 3)]
    assert pairs(valid) == [("a", 1), ("b", 2)]
    assert pairs(train) == [("a", 2), ("a", 4), ("b", 1), ("c", 1), ("c", 2)]
    train, test = reclib.split.leave_last_out(df)
    assert pairs(test) == [("a", 3), ("b", 3), ("c", 1)]
