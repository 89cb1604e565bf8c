"""The sequential protocol (the book's *Evaluation protocols* appendix) against a literal, pure-Python statement of it.

Per user, in time order with ties broken by file order: the last interaction is the test
item, the second-to-last the validation item, the rest train; a user with fewer than three
interactions keeps them all in training.
"""

import numpy as np
import pandas as pd
import pytest

from reclib import Interactions
from reclib.split import leave_last_out


def reference_split(frame: pd.DataFrame):
    """Row positions of train, validation and test, written as plainly as possible."""
    rows_of_user = {}
    for position, (user, timestamp) in enumerate(zip(frame["user_id"], frame["timestamp"])):
        rows_of_user.setdefault(user, []).append((timestamp, position))
    train, valid, test = [], [], []
    for rows in rows_of_user.values():
        rows = sorted(rows)                     # by time, then by file position
        positions = [p for _, p in rows]
        if len(positions) < 3:
            train += positions
        else:
            train += positions[:-2]
            valid.append(positions[-2])
            test.append(positions[-1])
    return sorted(train), sorted(valid), sorted(test)


def as_rows(part: Interactions) -> list:
    frame = part.to_dataframe()
    return sorted(zip(frame["user_id"], frame["item_id"], frame["timestamp"]))


def check(frame):
    parts = leave_last_out(Interactions.from_dataframe(frame), validation=True)
    for got, positions in zip(parts, reference_split(frame)):
        expected = frame.iloc[positions]
        assert as_rows(got) == sorted(zip(expected["user_id"], expected["item_id"],
                                          expected["timestamp"]))


def test_ties_go_by_file_order():
    frame = pd.DataFrame({"user_id": ["a"] * 5 + ["b"] * 2 + ["c"] * 3,
                          "item_id": [1, 2, 3, 4, 5, 1, 2, 7, 8, 9],
                          "rating": 1.0,
                          "timestamp": [5, 9, 9, 9, 1, 3, 3, 2, 2, 2]})
    check(frame)
    train, valid, test = leave_last_out(Interactions.from_dataframe(frame), validation=True)
    assert as_rows(test) == [("a", 4, 9), ("c", 9, 2)]   # the later row of the tie wins
    assert as_rows(valid) == [("a", 3, 9), ("c", 8, 2)]
    assert ("b", 2, 3) in as_rows(train)                 # too short: all in training


def test_random_frames_with_many_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        n = 300
        frame = pd.DataFrame({"user_id": rng.integers(0, 40, n), "item_id": np.arange(n),
                              "rating": 1.0, "timestamp": rng.integers(0, 6, n)})
        check(frame)


def test_movielens_100k(ml100k):
    check(ml100k)
    train, valid, test = leave_last_out(Interactions.from_dataframe(ml100k), validation=True)
    assert test.n_interactions == valid.n_interactions == ml100k["user_id"].nunique()


@pytest.mark.parametrize("validation", [False, True])
def test_no_row_lost_or_duplicated(ml100k, validation):
    parts = leave_last_out(Interactions.from_dataframe(ml100k), validation=validation)
    assert sum(p.n_interactions for p in parts) == len(ml100k)
