"""Serving encoders: SASRec/GRU4Rec and history two-tower re-encoding, items added from text,
their replay."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reclib import Interactions
from reclib.serving import EventLog, Service, StoreError, build_index, export_model
from reclib.serving.store import ModelStore
from reclib.serving.service import CannotAddItemsError, ItemExistsError

torch = pytest.importorskip("torch")


def _sequences(seed: int = 0) -> Interactions:
    """40 users walking forward through 30 items, with timestamps."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(40):
        start = int(rng.integers(0, 20))
        for t, i in enumerate(range(start, start + 8)):
            rows.append((u + 1, i % 30 + 500, 1.0, 1000 * u + t))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Interactions.from_dataframe(frame)


@pytest.fixture(scope="module", params=["SASRec", "GRU4Rec"])
def sequence_model(request):
    import reclib.neural as neural
    cls = getattr(neural, request.param)
    extra = {"n_heads": 1} if request.param == "SASRec" else {}
    return cls(n_factors=8, max_len=6, n_epochs=3, batch_size=64, random_state=0,
               device="cpu", **extra).fit(_sequences())


def test_sequence_store_scores_as_the_model_does(sequence_model, tmp_path):
    store = export_model(sequence_model)
    scores = store.user_vectors.astype(np.float64) @ store.item_vectors.T.astype(np.float64)
    reference = sequence_model._score_users(np.arange(sequence_model.n_users))
    np.testing.assert_allclose(scores, reference, atol=1e-5)
    loaded = ModelStore.load(store.save(tmp_path / "seq.npz"))
    assert type(loaded.encoder_model) is type(sequence_model)
    np.testing.assert_array_equal(loaded.user_vectors, store.user_vectors)
    np.testing.assert_array_equal(loaded.encoder_model.sequence_items_,
                                  sequence_model.sequence_items_)


def test_events_re_encode_known_and_unknown_users(sequence_model):
    model = sequence_model
    service = Service(export_model(model), build_index(export_model(model).item_vectors))
    assert service.health()["encoder"] == "sequence"
    user = model.user_ids_[3]
    history = list(model.item_ids_[model._sequence(3)])
    new_items = [model.item_ids_[0], model.item_ids_[17]]
    service.apply(service.check_events([{"user_id": user, "item_id": i} for i in new_items]))
    got = service.recommend(user, 5, exclude_seen=False)
    want_items, want_scores = model.recommend_histories([history + new_items], 5,
                                                        exclude_seen=False)
    assert got["items"] == want_items[0].tolist()
    np.testing.assert_allclose(got["scores"], want_scores[0], atol=1e-5)
    # a user the model never saw: popularity first, their own sequence after one event
    assert service.recommend("stranger", 5)["source"] == "popularity"
    service.apply(service.check_events([{"user_id": "stranger", "item_id": model.item_ids_[5]}]))
    got = service.recommend("stranger", 5, exclude_seen=False)
    want_items, _ = model.recommend_histories([[model.item_ids_[5]]], 5, exclude_seen=False)
    assert got["source"] == "model" and got["items"] == want_items[0].tolist()


def test_a_damaged_embedded_model_names_the_file(sequence_model, tmp_path):
    import json
    path = export_model(sequence_model).save(tmp_path / "seq.npz")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    header = json.loads(str(arrays.pop("__serving_header__")))
    header["encoder"]["params"]["n_factors"] = -3
    np.savez(path, __serving_header__=np.array(json.dumps(header)), **arrays)
    with pytest.raises(StoreError, match="seq.npz.*embedded model.*n_factors"):
        ModelStore.load(path)


# ---------------------------------------------------------------------- history two-tower
@pytest.fixture(scope="module")
def history_tower():
    from reclib.neural import TwoTower
    return TwoTower(n_factors=8, layers=[16], out=8, n_epochs=5, batch_size=32, lr=0.01,
                    history=True, features=None, device="cpu", random_state=0).fit(_sequences())


def test_history_tower_store_scores_as_the_model_does(history_tower, tmp_path):
    model = history_tower
    store = export_model(model)
    np.testing.assert_allclose(store.user_vectors, model.user_vectors_, atol=1e-6)
    np.testing.assert_allclose(store.item_vectors, model.item_vectors_, atol=1e-6)
    scores = store.user_vectors.astype(np.float64) @ store.item_vectors.T.astype(np.float64)
    reference = model._score_users(np.arange(model.n_users)) * model.temperature  # cosines
    np.testing.assert_allclose(scores, reference, atol=1e-5)
    loaded = ModelStore.load(store.save(tmp_path / "tower.npz"))
    assert type(loaded.encoder_model) is type(model) and loaded.encoder_model.history
    np.testing.assert_array_equal(loaded.user_vectors, store.user_vectors)
    np.testing.assert_array_equal(loaded.encoder_model.history_items_, model.history_items_)
    np.testing.assert_array_equal(loaded.encoder_model.history_indptr_, model.history_indptr_)
    assert Service(loaded, build_index(loaded.item_vectors)).health()["encoder"] == \
        "two-tower-history"


def test_a_tower_without_history_keeps_no_encoder():
    from reclib.neural import TwoTower
    model = TwoTower(n_factors=4, layers=[], out=4, n_epochs=1, features=None, device="cpu",
                     random_state=0).fit(_sequences())
    store = export_model(model)
    assert store.encoder_model is None
    assert Service(store, build_index(store.item_vectors)).health()["encoder"] is None


def _ranked(model, history, row, k, exclude):
    """Top-k items of ``encode_users`` on ``history``, ``exclude`` left out (as the service)."""
    vector = model.encode_users([np.asarray(history, dtype=np.int64)], [row])[0]
    scores = model.item_vectors_ @ vector
    scores[np.asarray(sorted(exclude), dtype=np.int64)] = -np.inf
    order = np.argsort(-scores, kind="stable")[:k]
    return model.item_ids_[order].tolist(), scores[order]


def test_history_tower_events_re_encode_known_and_unknown_users(history_tower):
    model = history_tower
    store = export_model(model)
    service = Service(store, build_index(store.item_vectors))
    row = 3
    user = model.user_ids_[row]
    train = model.history_items_[model.history_indptr_[row]:model.history_indptr_[row + 1]]
    new = [0, 17, 17, int(train[0])]                 # a repeat and a training item: no effect
    service.apply(service.check_events([{"user_id": user, "item_id": model.item_ids_[i]}
                                        for i in new]))
    longer = list(train) + [0, 17]
    seen = set(train.tolist()) | set(new)
    got = service.recommend(user, 5)
    want_items, want_scores = _ranked(model, longer, row, 5, seen)
    assert got["source"] == "model" and got["items"] == want_items
    np.testing.assert_allclose(got["scores"], want_scores, atol=1e-5)
    assert np.abs(service.user_vector(str(user)) - store.user_vectors[row]).max() > 1e-4
    # a user the model never saw: popularity first, a vector of their own after one event
    assert service.recommend("stranger", 5)["source"] == "popularity"
    service.apply(service.check_events([{"user_id": "stranger", "item_id": model.item_ids_[5]}]))
    got = service.recommend("stranger", 5)
    want_items, _ = _ranked(model, [5], None, 5, {5})
    assert got["source"] == "model" and got["items"] == want_items



def test_history_tower_model_file_serves_and_replays_events(history_tower, tmp_path):
    from reclib.serving import load_any
    model = history_tower
    store = load_any(model.save(tmp_path / "tower"))          # a model file, not a store
    assert store.encoder_model is not None
    log = EventLog(tmp_path / "log.sqlite")
    service = Service(store, build_index(store.item_vectors), log)
    rows = service.check_events([{"user_id": model.user_ids_[2], "item_id": model.item_ids_[9]},
                                 {"user_id": "newcomer", "item_id": model.item_ids_[4]}])
    log.append(rows).result()
    service.apply(rows)
    before = [service.recommend(u, 5) for u in (model.user_ids_[2], "newcomer")]
    log.close()
    restarted = Service(store, build_index(store.item_vectors), EventLog(tmp_path / "log.sqlite"))
    assert restarted.replayed == 2
    assert [restarted.recommend(u, 5) for u in (model.user_ids_[2], "newcomer")] == before

# ---------------------------------------------------------------------- items from text
class TopicEncoder:
    """Maps "topic k ..." to the k-th unit vector of R^3: a known text -> vector rule."""

    cache_name = "topic-encoder"

    def __init__(self):
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        return np.stack([np.eye(3)[int(t.split()[1])] for t in texts]).astype(np.float32)


@pytest.fixture(scope="module")
def text_model():
    from reclib.text import TextMappedALS, embedding_table
    rng = np.random.default_rng(0)
    n_items, rows = 60, []
    topic = np.arange(n_items) % 3
    for u in range(90):
        for i in np.flatnonzero(topic == u % 3):
            if rng.random() < 0.4:
                rows.append((u, i, 1.0))
    vectors = np.eye(3)[topic] + 0.05 * rng.normal(size=(n_items, 3))
    data = Interactions.from_dataframe(
        pd.DataFrame(rows, columns=["user_id", "item_id", "rating"]),
        item_features=embedding_table(np.arange(n_items), vectors))
    return TextMappedALS(n_factors=4, n_epochs=8, solver="exact", map_reg=0.5,
                         min_interactions=3, random_state=0).fit(data)


def test_an_item_added_from_text_is_mapped_indexed_and_folded_in(text_model, tmp_path):
    store = export_model(text_model, text_encoder="topic-encoder")
    loaded = ModelStore.load(store.save(tmp_path / "text.npz"))
    np.testing.assert_array_equal(loaded.text_map["W"], text_model.text_map_)
    encoder = TopicEncoder()
    service = Service(loaded, build_index(loaded.item_vectors, "hnsw", m=8), text_encoder=encoder)
    vector = service.item_vector_from_text("topic 1 a new film")
    np.testing.assert_allclose(vector, text_model.map_embeddings(np.eye(3)[[1]])[0], atol=1e-5)
    index = service.add_item(1000, vector, "New film")
    assert index == 60 and service.n_items == 61
    # a user of topic 1 sees it among their candidates, ranked by its mapped factor
    got = service.recommend(1, 3, candidates=[1000, 0, 3])
    assert 1000 in got["items"]
    assert service.similar(1000, 5)["items"][0] % 3 == 1
    # the fold-in now counts the new item in Y^T Y
    Y = np.vstack([loaded.item_vectors, vector[None]]).astype(np.float64)
    np.testing.assert_allclose(service.encoder.foldin.gram, Y.T @ Y, rtol=1e-6)
    service.apply(service.check_events([{"user_id": "fresh", "item_id": 1000}]))
    assert service.recommend("fresh", 3)["source"] == "model"
    with pytest.raises(ItemExistsError, match="1000"):
        service.add_item(1000, vector)
    with pytest.raises(ValueError, match="integers"):
        service.check_new_item("film-x")


def test_added_items_and_their_events_survive_a_restart(text_model, tmp_path):
    store = export_model(text_model, text_encoder="topic-encoder")
    log = EventLog(tmp_path / "log.sqlite")
    service = Service(store, build_index(store.item_vectors), log, text_encoder=TopicEncoder())
    vector = service.item_vector_from_text("topic 2 film")
    log.append_items([(2000, "Film 2000", "topic 2 film", vector)]).result()
    service.add_item(2000, vector, "Film 2000")
    rows = service.check_events([{"user_id": 7, "item_id": 2000}])
    log.append(rows).result()
    service.apply(rows)
    before = service.recommend(7, 5)
    log.close()
    restarted = Service(store, build_index(store.item_vectors), EventLog(tmp_path / "log.sqlite"),
                        text_encoder=TopicEncoder())
    assert restarted.added_items == 1 and restarted.replayed == 1
    assert restarted.text_encoder.calls == 0              # the vector came from the log
    assert restarted.recommend(7, 5) == before
    assert restarted.titles[-1] == "Film 2000"


def test_adding_items_needs_a_text_map_and_the_same_encoder(text_model, ials_model):
    store = export_model(ials_model)
    service = Service(store, build_index(store.item_vectors), text_encoder=TopicEncoder())
    with pytest.raises(CannotAddItemsError, match="no text map.*TextMappedALS"):
        service.item_vector_from_text("topic 0")
    store = export_model(text_model)                       # the book's encoder by default
    service = Service(store, build_index(store.item_vectors), text_encoder=TopicEncoder())
    with pytest.raises(CannotAddItemsError, match="all-MiniLM-L6-v2.*topic-encoder"):
        service.item_vector_from_text("topic 0")


def test_index_add_searches_new_rows_at_once():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(200, 8)).astype(np.float32)
    extra = rng.normal(size=(3, 8)).astype(np.float32) * 10
    for kind, params in (("exact", {}), ("hnsw", {"m": 8}), ("ivf", {"nlist": 4, "nprobe": 4})):
        index = build_index(base, kind, **params)
        index.add(extra)
        found, _ = index.search(extra[2], 1)
        assert found[0, 0] == 202, kind
        with pytest.raises(ValueError, match="dimensions"):
            index.add(np.zeros((1, 5)))
        with pytest.raises(ValueError, match="NaN"):
            index.add(np.full((1, 8), np.nan))
