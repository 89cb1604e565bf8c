"""Store validation, index correctness and the iALS fold-in, without HTTP."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from reclib.serving import (ExactIndex, HNSWIndex, IALSFoldIn, IVFIndex, ModelStore, Service,
                            StoreError, exact_topk, export_model, load_any, recall_at_k)


def test_store_round_trip(ials_model, store_path):
    store = ModelStore.load(store_path)
    np.testing.assert_array_equal(store.item_vectors, ials_model.item_factors_)
    np.testing.assert_array_equal(store.user_ids, ials_model.user_ids_)
    assert (store.seen != ials_model.seen_).nnz == 0
    assert store.foldin["alpha"] == ials_model.alpha and store.item_titles[0] == "Film 100"


def test_model_file_loads_through_the_store(ials_model, tmp_path):
    path = ials_model.save(tmp_path / "model.npz")
    store = load_any(path)
    np.testing.assert_array_equal(store.user_vectors, ials_model.user_factors_)


def test_truncated_file_names_the_file(store_path, tmp_path):
    bad = tmp_path / "cut.npz"
    bad.write_bytes(store_path.read_bytes()[:2000])
    with pytest.raises(StoreError, match="cut.npz"):
        load_any(bad)


def test_flipped_byte_fails_the_checksum(ials_model, tmp_path):
    store = export_model(ials_model)
    path = store.save(tmp_path / "s.npz")
    data = bytearray(path.read_bytes())
    # the item vectors are stored raw (uncompressed): find their bytes and change one
    raw = store.item_vectors.tobytes()
    at = bytes(data).find(raw[:64])
    assert at > 0
    data[at + 10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"s\.npz.*(checksum|CRC|corrupt)"):
        ModelStore.load(path)


def test_mismatched_shapes_are_refused(ials_model):
    store = export_model(ials_model)
    with pytest.raises(StoreError, match="item_vectors has shape"):
        ModelStore(store.user_ids, store.item_ids, store.user_vectors,
                   store.item_vectors[:-1], store.seen, store.popularity)


def test_unservable_models_say_so():
    from reclib import Interactions
    from reclib.models import EASE
    X = sp.random(20, 15, density=0.3, format="csr", random_state=0)
    X.data[:] = 1
    model = EASE(reg=10.0).fit(Interactions.from_csr(X))
    with pytest.raises(StoreError, match="EASE cannot be served"):
        export_model(model)


def _slow_topk(scores, k, exclude):
    s = scores.astype(np.float64).copy()
    s[list(exclude)] = -np.inf
    order = sorted(range(len(s)), key=lambda j: (-s[j], j))
    return np.array(order[:k])


def test_exact_topk_matches_a_sort_with_ties():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=(6, 40)).astype(np.float32)        # many ties
    exclude = [rng.choice(40, 5, replace=False) for _ in range(6)]
    idx, vals = exact_topk(scores, 7, exclude)
    for r in range(6):
        np.testing.assert_array_equal(idx[r], _slow_topk(scores[r], 7, exclude[r]))
        assert not set(idx[r]) & set(exclude[r])


def test_exact_topk_refuses_nan_and_short_rows():
    with pytest.raises(ValueError, match="NaN"):
        exact_topk(np.array([[1.0, np.nan]]), 1)
    with pytest.raises(ValueError, match="eligible"):
        exact_topk(np.ones((1, 3)), 2, [np.array([0, 1])])


@pytest.mark.parametrize("cls,params", [(HNSWIndex, {"m": 16, "ef_search": 64}),
                                        (IVFIndex, {"nlist": 8, "nprobe": 8})])
def test_ann_indexes_agree_with_exact(cls, params):
    rng = np.random.default_rng(0)
    items = rng.standard_normal((2000, 16)).astype(np.float32)
    queries = rng.standard_normal((50, 16)).astype(np.float32)
    exclude = [rng.choice(2000, 30, replace=False) for _ in range(50)]
    truth, _ = ExactIndex(items).search(queries, 10, exclude)
    found, scores = cls(items, **params).search(queries, 10, exclude)
    assert recall_at_k(found, truth) >= 0.9          # nprobe = nlist scans everything for IVF
    for r in range(50):
        assert not set(found[r]) & set(exclude[r])
        assert np.all(np.diff(scores[r]) <= 1e-6)
    if cls is IVFIndex:
        np.testing.assert_array_equal(found, truth)


def test_recall_at_k_counts_overlap():
    assert recall_at_k(np.array([[1, 2, 3, 4]]), np.array([[4, 3, 9, 8]])) == 0.5


def test_foldin_minimises_the_user_objective(ials_model):
    """The closed form against the dense objective: zero gradient, lower than perturbations."""
    f = IALSFoldIn(ials_model.item_factors_, **export_model(ials_model).foldin)
    items, values = np.array([0, 3, 7, 11]), np.ones(4)
    x = f.user_vector(items, values).astype(np.float64)
    eps, grad = 1e-4, []
    for k in range(len(x)):
        step = np.zeros_like(x)
        step[k] = eps
        grad.append((f.objective(x + step, items, values) - f.objective(x - step, items, values))
                    / (2 * eps))
    assert np.max(np.abs(grad)) < 1e-3 * max(1.0, abs(f.objective(x, items, values)))
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert f.objective(x, items, values) <= f.objective(x + 0.01 * rng.standard_normal(len(x)),
                                                            items, values)


def test_foldin_reproduces_the_training_solve():
    """A fold-in with the model's own item factors matches its last exact user sweep."""
    from reclib import Interactions
    from reclib.models import ImplicitALS
    rng = np.random.default_rng(3)
    X = sp.random(80, 50, density=0.15, format="csr", random_state=3)
    X.data[:] = rng.integers(1, 6, size=X.nnz)
    train = Interactions.from_csr(X)
    model = ImplicitALS(n_factors=6, n_epochs=200, solver="exact", binary=False,
                        confidence="log", random_state=0).fit(train)
    with pytest.raises(StoreError, match="train="):
        export_model(model)
    store = export_model(model, train=train)
    f = IALSFoldIn(store.item_vectors, **store.foldin)
    row = 5
    items = store.seen.indices[store.seen.indptr[row]:store.seen.indptr[row + 1]]
    values = store.seen.data[store.seen.indptr[row]:store.seen.indptr[row + 1]]
    # after 200 exact sweeps the factors are at a fixed point of the user step
    np.testing.assert_allclose(f.user_vector(items, values), model.user_factors_[row],
                               rtol=1e-3, atol=1e-4)


def test_service_events_change_the_list_and_new_users_start_popular(store_path):
    store = ModelStore.load(store_path)
    svc = Service(store, ExactIndex(store.item_vectors))
    first = svc.recommend("newcomer", 5)
    assert first["source"] == "popularity"
    order = np.lexsort((np.arange(store.n_items), -store.popularity))[:5]
    assert first["items"] == store.item_ids[order].tolist()
    svc.apply(svc.check_events([{"user_id": "newcomer", "item_id": first["items"][0]}]))
    after = svc.recommend("newcomer", 5)
    assert after["source"] == "model" and first["items"][0] not in after["items"]
    before = svc.recommend(1, 5)
    svc.apply(svc.check_events([{"user_id": 1, "item_id": before["items"][0], "weight": 1.0}]))
    assert before["items"][0] not in svc.recommend(1, 5)["items"]


def test_growing_rows_append_in_place_with_bounded_spare_room():
    from reclib.serving._rows import GrowingRows

    rng = np.random.default_rng(0)
    start = rng.normal(size=(8000, 4)).astype(np.float32)
    rows = GrowingRows(start)
    assert rows.view.base is None or np.shares_memory(rows.view, start)   # no copy at start
    added, buffers = [], set()
    for _ in range(3000):
        one = rng.normal(size=(1, 4)).astype(np.float32)
        added.append(one)
        rows.append(one)
        buffers.add(id(rows._buffer))
    np.testing.assert_array_equal(rows.view, np.vstack([start] + added))
    assert rows.view.flags.c_contiguous
    assert len(buffers) <= 4                        # a handful of reallocations, not 3000
    assert rows.capacity - len(rows.view) <= max(len(rows.view) // 8, 1024)
    with pytest.raises(ValueError, match=r"shape \(k, 4\)"):
        rows.append(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="2-D"):
        GrowingRows(np.zeros(3))


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf"])
def test_index_add_keeps_one_buffer_and_finds_the_new_rows(kind):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(2000, 8)).astype(np.float32)
    from reclib.serving import build_index
    index = build_index(vectors, kind)
    new = rng.normal(size=(5, 8)).astype(np.float32) * 10
    for row in new:
        index.add(row)
    assert index.n_items == 2005
    np.testing.assert_array_equal(index.item_vectors[-5:], new)
    found, _ = index.search(new, 1)
    np.testing.assert_array_equal(found[:, 0], np.arange(2000, 2005))
    if kind != "exact":                       # the exact fallback reads the same rows
        assert index._exact.item_vectors is not None
        assert np.shares_memory(index._exact.item_vectors, index.item_vectors)
