"""Raw ids are mapped once: when a frame becomes Interactions. Splits, fitting and the
evaluation protocols work on indices and shared maps and never look a raw id up again."""

import pytest

import reclib
from reclib.core import IdMap
from reclib.evaluation import evaluate_ranking, evaluate_ratings
from tests.conftest import planted_frame


@pytest.fixture
def counted(monkeypatch):
    calls = {"index": 0, "from_values": 0}
    index, from_values = IdMap.index, IdMap.from_values.__func__

    def counting_index(self, *args, **kwargs):
        calls["index"] += 1
        return index(self, *args, **kwargs)

    def counting_from_values(cls, *args, **kwargs):
        calls["from_values"] += 1
        return from_values(cls, *args, **kwargs)

    monkeypatch.setattr(IdMap, "index", counting_index)
    monkeypatch.setattr(IdMap, "from_values", classmethod(counting_from_values))
    return calls


def test_one_mapping_per_side_for_a_split_and_none_after(counted):
    frame = planted_frame()
    train, test = reclib.split.stratified_split(frame, ratio=0.75, seed=0)
    assert counted == {"index": 0, "from_values": 2}          # users and items, once each
    for _ in reclib.split.kfold(train, n_splits=3, seed=0):
        pass
    reclib.split.leave_last_out(train, validation=True)
    assert counted == {"index": 0, "from_values": 2}
    model = reclib.models.BaselinePredictor().fit(train)
    evaluate_ranking(model, train, test, k=5)
    evaluate_ratings(model, test)
    assert counted == {"index": 0, "from_values": 2}


def test_a_test_frame_against_a_reference_is_mapped_once_per_side(counted):
    frame = planted_frame()
    train = reclib.Interactions.from_dataframe(frame.iloc[:300])
    reclib.Interactions.from_dataframe(frame.iloc[300:], reference=train)
    assert counted == {"index": 2, "from_values": 2}
