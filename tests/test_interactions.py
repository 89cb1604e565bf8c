import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from reclib import Interactions


def frame(**cols):
    base = {"user_id": ["a", "a", "b", "c"], "item_id": [10, 20, 10, 30],
            "rating": [5.0, 3.0, 4.0, 1.0], "timestamp": [1, 2, 3, 4]}
    base.update(cols)
    return pd.DataFrame(base)


def test_maps_are_sorted_and_round_trip():
    data = Interactions.from_dataframe(frame())
    assert (data.n_users, data.n_items, len(data)) == (3, 3, 4)
    assert list(data.user_ids) == ["a", "b", "c"] and list(data.item_ids) == [10, 20, 30]
    back = data.to_dataframe()
    pd.testing.assert_frame_equal(back, frame(), check_dtype=False)
    csr = data.to_csr()
    assert csr.shape == (3, 3) and csr[0, 1] == 3.0 and csr[2, 2] == 1.0


def test_reference_keeps_and_counts_unknown_rows():
    train = Interactions.from_dataframe(frame())
    test_df = pd.DataFrame({"user_id": ["a", "z", "b"], "item_id": [30, 10, 99],
                            "rating": [2.0, 3.0, 4.0], "timestamp": [5, 6, 7]})
    test = Interactions.from_dataframe(test_df, reference=train)
    assert test.shares_index_with(train)
    assert len(test) == 3 and test.n_unknown_users == 1 and test.n_unknown_items == 1
    assert list(test.users) == [0, -1, 1] and list(test.items) == [2, 0, -1]
    pd.testing.assert_frame_equal(test.to_dataframe(), test_df, check_dtype=False)
    with pytest.raises(ValueError, match="unknown to the id map"):
        test.to_csr()
    assert test.known().to_csr().nnz == 1
    assert "2 rows with unknown ids" in repr(test)


def test_subset_keeps_unknown_raw_ids():
    train = Interactions.from_dataframe(frame())
    test = Interactions.from_dataframe(
        pd.DataFrame({"user_id": ["z", "a"], "item_id": [10, 10], "rating": [1.0, 2.0]}),
        reference=train)
    assert list(test.subset([0]).to_dataframe()["user_id"]) == ["z"]


@pytest.mark.parametrize("bad, match", [
    (frame(rating=[1.0, np.nan, 3.0, 4.0]), "NaN"),
    (frame(rating=[1.0, np.inf, 3.0, 4.0]), "infinite"),
    (frame(user_id=["a", None, "b", "c"]), "missing id"),
    (frame().drop(columns="rating"), r"missing column\(s\) \['rating'\]"),
    (frame().iloc[:0], "empty"),
    (frame(item_id=[10, 10, 10, 30]), "repeated"),
])
def test_bad_frames_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        Interactions.from_dataframe(bad)


def test_not_a_frame():
    with pytest.raises(TypeError, match="df must be a pandas DataFrame"):
        Interactions.from_dataframe([[1, 2, 3]])


def test_implicit_and_duplicates_options():
    df = frame(item_id=[10, 10, 10, 30]).drop(columns="rating")
    summed = Interactions.from_dataframe(df, rating_col=None, duplicates="sum")
    assert len(summed) == 3 and summed.to_csr()[0, 0] == 2.0
    last = Interactions.from_dataframe(frame(item_id=[10, 10, 10, 30]), duplicates="last")
    assert last.to_csr()[0, 0] == 3.0  # timestamp 2 beats timestamp 1


def test_user_index_errors_name_ids():
    data = Interactions.from_dataframe(frame())
    with pytest.raises(ValueError, match="1 unknown user id"):
        data.user_index(["a", "nobody"])
    assert list(data.user_index(["c", "nobody"], allow_unknown=True)) == [2, -1]


def test_from_csr():
    m = sp.csr_matrix(np.array([[1.0, 0, 2.0], [0, 0, 3.0]]))
    data = Interactions.from_csr(m)
    assert (data.n_users, data.n_items, len(data)) == (2, 3, 3)
    assert (data.to_csr() != m).nnz == 0
    with pytest.raises(ValueError, match="no non-zero"):
        Interactions.from_csr(sp.csr_matrix((2, 2)))


def test_to_csr_builds_the_values_in_the_dtype_asked_for():
    data = Interactions.from_dataframe(frame(rating=[4.5, 1.0, 2.0, 3.25]))
    for binary in (False, True):
        wide = data.to_csr(binary=binary)
        narrow = data.to_csr(binary=binary, dtype=np.float32)
        assert wide.dtype == np.float64 and narrow.dtype == np.float32
        np.testing.assert_array_equal(narrow.indices, wide.indices)
        np.testing.assert_array_equal(narrow.toarray(), wide.toarray().astype(np.float32))
    for bad in (np.int64, "int", None, 3):
        with pytest.raises(ValueError, match="dtype =="):
            data.to_csr(dtype=bad)


def test_repeated_pairs_are_found_with_and_without_a_reference():
    """The sorted-key check on the codes and the check on raw ids (with a reference) agree."""
    from reclib.interactions import _any_repeated_pair

    assert not _any_repeated_pair(np.array([0, 0, 1]), np.array([0, 1, 0]), 2)
    assert _any_repeated_pair(np.array([1, 0, 1]), np.array([0, 1, 0]), 2)
    train = Interactions.from_dataframe(frame())
    repeated = frame(user_id=["a", "a", "a", "zz"], item_id=[10, 10, 20, 99])
    for reference in (None, train):
        with pytest.raises(ValueError, match="repeated"):
            Interactions.from_dataframe(repeated, reference=reference)
        summed = Interactions.from_dataframe(repeated, reference=reference, duplicates="sum")
        assert len(summed) == 3
        assert summed.to_dataframe()["rating"].tolist()[:2] == [8.0, 4.0]


def test_the_repeated_pair_in_the_message_keeps_the_ids_types():
    # integer ids stay integers beside float ratings (a row of the frame would be all floats)
    repeated = pd.DataFrame({"user_id": [7, 7, 8], "item_id": [3, 3, 4], "rating": [1.5, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"e\.g\. \(7, 3\)"):
        Interactions.from_dataframe(repeated)
    named = pd.DataFrame({"user_id": ["a", "a"], "item_id": [3, 3], "rating": [1.0, 1.0]})
    with pytest.raises(ValueError, match=r"e\.g\. \('a', 3\)"):
        Interactions.from_dataframe(named)
