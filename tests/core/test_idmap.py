"""The one id map: lookups, kinds, compaction."""

import numpy as np
import pandas as pd
import pytest

import reclib
from reclib.core import IdMap, id_kind


def test_from_values_sorts_and_codes():
    m, codes = IdMap.from_values([30, 10, 30, 20], name="user")
    np.testing.assert_array_equal(m.ids, [10, 20, 30])
    np.testing.assert_array_equal(codes, [2, 0, 2, 1])
    np.testing.assert_array_equal(m.index([20, 99], allow_unknown=True), [1, -1])
    np.testing.assert_array_equal(m.raw([2, 0]), [30, 10])


@pytest.mark.parametrize("values", [[1, "1"], np.array([1, "a"], dtype=object), [1.5, "x"]])
def test_mixed_kinds_are_an_error(values):
    with pytest.raises(TypeError, match="mix several kinds"):
        IdMap.from_values(values, name="user")


def test_booleans_and_nan_are_not_ids():
    with pytest.raises(TypeError, match="booleans"):
        id_kind(np.array([True, False]))
    with pytest.raises(TypeError, match="NaN"):
        id_kind(np.array([1.0, np.nan]))


def test_lookup_with_another_kind_is_an_error():
    m = IdMap(np.array([1, 2, 3]), name="item")
    with pytest.raises(TypeError, match="item_ids are strings .* item ids of this map are numbers"):
        m.index(["1"])
    with pytest.raises(ValueError, match=r"unknown item id\(s\): 7"):
        m.index([7])


def test_duplicates_and_shape():
    with pytest.raises(ValueError, match="unique"):
        IdMap(np.array(["a", "a"]))
    with pytest.raises(ValueError, match="one-dimensional"):
        IdMap(np.zeros((2, 2)))
    with pytest.raises(IndexError, match="out of range"):
        IdMap(np.array([5])).raw([1])


def test_compact_keeps_order_and_maps_old_to_new():
    m = IdMap(np.array(["a", "b", "c", "d"]))
    small, old_to_new = m.compact(np.array([3, 1, 3]))
    np.testing.assert_array_equal(small.ids, ["b", "d"])
    np.testing.assert_array_equal(old_to_new, [-1, 0, -1, 1])


def test_interactions_frame_with_mixed_ids_is_an_error():
    df = pd.DataFrame({"user_id": [1, "1", 2], "item_id": [1, 2, 3], "rating": [1.0, 2.0, 3.0]})
    with pytest.raises(TypeError, match="user ids .column .user_id.. mix several kinds"):
        reclib.Interactions.from_dataframe(df)


def test_test_frame_with_another_id_dtype_says_so():
    train = reclib.Interactions.from_dataframe(pd.DataFrame(
        {"user_id": [1, 2], "item_id": [10, 20], "rating": [1.0, 2.0]}))
    test = pd.DataFrame({"user_id": ["1"], "item_id": ["10"], "rating": [3.0]})
    with pytest.raises(TypeError, match=r"df\['user_id'\] are strings .* numbers"):
        reclib.Interactions.from_dataframe(test, reference=train)


def test_maps_are_shared_not_copied_by_splits_and_models():
    frame = pd.DataFrame(
        {"user_id": np.repeat(np.arange(30), 6), "item_id": np.tile(np.arange(6), 30),
         "rating": 1.0})
    train, test = reclib.split.stratified_split(frame, ratio=0.5, seed=0)
    assert test.user_map is train.user_map and test.item_map is train.item_map
    model = reclib.models.Popularity().fit(train)
    assert model.user_map_ is train.user_map and model.item_map_ is train.item_map
