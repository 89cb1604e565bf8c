"""Side-feature tables in the data contract, and their encoding into FM fields."""

import re

import numpy as np
import pandas as pd
import pytest

import reclib
from reclib import split
from reclib.features import age_bucket, build_layout, movielens_side_features, year_bucket
from tests.conftest import planted_frame


def user_table(frame):
    ids = sorted(frame["user_id"].unique(), key=lambda u: int(u[1:]))
    return pd.DataFrame({"user_id": ids,
                         "group": ["even" if int(u[1:]) % 2 == 0 else "odd" for u in ids],
                         "age": np.arange(len(ids), dtype=np.int64) + 20})


def item_table(frame):
    ids = sorted(frame["item_id"].unique(), key=lambda i: int(i[1:]))
    return pd.DataFrame({"item_id": ids,
                         "genres": ["a|b" if int(i[1:]) < 15 else "c" for i in ids],
                         "score": np.linspace(0.0, 1.0, len(ids))})


@pytest.fixture
def frame():
    return planted_frame()


@pytest.fixture
def data(frame):
    return reclib.Interactions.from_dataframe(
        frame, user_features=user_table(frame), item_features=item_table(frame))


def test_tables_are_aligned_to_the_index_order(frame, data):
    # shuffle the tables: alignment must follow the id maps, not the row order
    users = user_table(frame).sample(frac=1.0, random_state=0)
    items = item_table(frame).sample(frac=1.0, random_state=0).set_index("item_id")
    shuffled = reclib.Interactions.from_dataframe(frame, user_features=users,
                                                  item_features=items)
    for d in (data, shuffled):
        assert list(d.user_features.index) == list(range(d.n_users))
        for u, raw in enumerate(d.user_ids):
            assert d.user_features["age"].iloc[u] == 20 + int(raw[1:])
        for i, raw in enumerate(d.item_ids):
            assert d.item_features["genres"].iloc[i] == ("a|b" if int(raw[1:]) < 15 else "c")


def test_extra_rows_are_ignored(frame):
    users = pd.concat([user_table(frame), pd.DataFrame(
        {"user_id": ["ghost"], "group": ["odd"], "age": [99]})])
    data = reclib.Interactions.from_dataframe(frame, user_features=users)
    assert len(data.user_features) == data.n_users and data.item_features is None


@pytest.mark.parametrize("splitter", ["stratified", "kfold", "leave_last_out", "temporal"])
def test_tables_are_carried_through_splits(data, splitter):
    parts = {"stratified": lambda d: split.stratified_split(d, 0.75, seed=1),
             "kfold": lambda d: next(split.kfold(d, n_splits=3)),
             "leave_last_out": lambda d: split.leave_last_out(d, validation=True),
             "temporal": lambda d: split.temporal_split(d, 0.5)}[splitter](data)
    train = parts[0]
    full_users = data.feature_tables()["user_features"].set_index("user_id")
    full_items = data.feature_tables()["item_features"].set_index("item_id")
    pd.testing.assert_frame_equal(train.user_features,
                                  full_users.loc[train.user_ids].reset_index(drop=True))
    pd.testing.assert_frame_equal(train.item_features,
                                  full_items.loc[train.item_ids].reset_index(drop=True))
    for held in parts[1:]:
        assert held.user_features is train.user_features
        assert held.item_features is train.item_features


def test_subset_known_and_reference_share_tables(frame, data):
    sub = data.subset(np.arange(10))
    assert sub.user_features is data.user_features and sub.known().item_features is data.item_features
    test = reclib.Interactions.from_dataframe(frame.head(5), reference=data)
    assert test.user_features is data.user_features


def test_with_features_and_round_trip(frame, data):
    plain = reclib.Interactions.from_dataframe(frame)
    attached = plain.with_features(item_features=item_table(frame))
    assert plain.item_features is None and attached.user_features is None
    pd.testing.assert_frame_equal(attached.item_features, data.item_features)
    again = reclib.Interactions.from_dataframe(frame, **data.feature_tables())
    pd.testing.assert_frame_equal(again.user_features, data.user_features)


def test_missing_ids_are_counted(frame):
    users = user_table(frame).iloc[3:]
    with pytest.raises(ValueError, match=r"no row for 3 of the 40 user_id value\(s\).*'u0'"):
        reclib.Interactions.from_dataframe(frame, user_features=users)


def test_missing_key_column(frame):
    with pytest.raises(ValueError, match="no 'item_id' column"):
        reclib.Interactions.from_dataframe(frame, item_features=item_table(frame).drop(
            columns="item_id"))


def test_nan_in_a_feature(frame):
    items = item_table(frame)
    items.loc[4, "score"] = np.nan
    with pytest.raises(ValueError, match="column 'score' has 1 missing"):
        reclib.Interactions.from_dataframe(frame, item_features=items)


@pytest.mark.parametrize("bad", [
    pd.Series([pd.Timestamp("2020-01-01")] * 40),
    pd.Series([[1, 2]] * 40, dtype=object),
    pd.Series([1 + 2j] * 40),
])
def test_wrong_types_name_the_column_and_dtype(frame, bad):
    users = user_table(frame).assign(weird=bad.to_numpy())
    message = f"column 'weird' has dtype {users['weird'].dtype}"
    with pytest.raises(TypeError, match=re.escape(message)):
        reclib.Interactions.from_dataframe(frame, user_features=users)


def test_not_a_frame_and_duplicates(frame):
    with pytest.raises(TypeError, match="user_features must be a pandas DataFrame"):
        reclib.Interactions.from_dataframe(frame, user_features={"user_id": [1]})
    users = pd.concat([user_table(frame), user_table(frame).head(1)])
    with pytest.raises(ValueError, match="several rows for user_id 'u0'"):
        reclib.Interactions.from_dataframe(frame, user_features=users)


def test_layout_fields_offsets_and_values(data):
    layout = build_layout(data)
    names = layout.field_names
    assert names == ["user", "item", "group", "age", "genres", "score"]
    kinds = [f.kind for f in layout.fields]
    assert kinds == ["id", "id", "categorical", "categorical", "multi", "numeric"]
    offsets = [f.offset for f in layout.fields]
    sizes = [f.size for f in layout.fields]
    assert offsets == list(np.cumsum([0] + sizes[:-1])) and layout.n_features == sum(sizes)
    assert sizes[:3] == [data.n_users, data.n_items, 2]
    # every slot's id falls in its field's block
    for index, slot_field in ((layout.user_index, layout.user_slot_field),
                              (layout.item_index, layout.item_slot_field)):
        lo = np.array(offsets)[slot_field]
        hi = lo + np.array(sizes)[slot_field]
        assert np.all((index >= lo) & (index < hi))
    # a multi-valued item with genres a|b gets two slots worth 1/2 each; "c" one slot and padding
    genre_slots = layout.item_slot_field == names.index("genres")
    i_ab = int(np.flatnonzero(data.item_ids == "i0")[0])
    i_c = int(np.flatnonzero(data.item_ids == "i20")[0])
    np.testing.assert_allclose(layout.item_value[i_ab, genre_slots], [0.5, 0.5])
    np.testing.assert_allclose(layout.item_value[i_c, genre_slots], [1.0, 0.0])
    score = layout.item_value[:, layout.item_slot_field == names.index("score")]
    assert abs(score.mean()) < 1e-6 and abs(score.std() - 1.0) < 1e-5
    index, value, slot_field = layout.pair_inputs(np.array([0, 1]), np.array([2, 3]))
    assert index.shape == value.shape == (2, len(slot_field))


def test_layout_asks_for_missing_columns(data, frame):
    with pytest.raises(ValueError, match="needs feature column 'year'.*user features"):
        build_layout(data, ["year"], owner="DeepFM")
    plain = reclib.Interactions.from_dataframe(frame)
    with pytest.raises(ValueError, match="no feature tables"):
        build_layout(plain, ["genres"])
    assert build_layout(plain).field_names == ["user", "item"]
    assert build_layout(data, None).field_names == ["user", "item"]


def test_buckets():
    assert list(age_bucket([1, 17, 18, 24, 25, 49, 50, 56, 73])) == [
        "<18", "<18", "18-24", "18-24", "25-34", "45-49", "50-55", "56+", "56+"]
    assert list(year_bucket(pd.array([1995, None, 1932, 1950], dtype="Int64"))) == [
        "1990s", "unknown", "<1950s", "1950s"]


def test_movielens_side_features(ml100k):
    users = reclib.datasets.load_movielens_users()
    items = reclib.datasets.load_movielens_items()
    user_features, item_features = movielens_side_features(users, items)
    data = reclib.Interactions.from_dataframe(ml100k, user_features=user_features,
                                              item_features=item_features)
    layout = build_layout(data)
    assert layout.field_names == ["user", "item", "gender", "age", "occupation", "genres", "year"]
    sizes = {f.name: f.size for f in layout.fields}
    assert sizes["gender"] == 2 and sizes["age"] == 7 and sizes["occupation"] == 21
    assert sizes["genres"] == 19
    toy_story = int(data.item_index([1])[0])
    assert data.item_features["genres"].iloc[toy_story] == "Animation|Children's|Comedy"
