"""Headline facts recorded by notebooks/08_serving.ipynb (quick mode and the full run)."""

import json

import pytest

import reclib

PATH = reclib.notebook.metrics_dir() / "08_serving.json"


@pytest.fixture(scope="module")
def payload():
    if not PATH.exists():
        pytest.fail(f"{PATH} is missing: execute notebooks/08_serving.ipynb first")
    return json.loads(PATH.read_text())["metrics"]


def test_ann_recall_rises_with_its_parameter_and_gets_high(payload):
    for key in ("hnsw_recall", "ivf_recall"):
        curve = [payload[key][v] for v in sorted(payload[key], key=int)]
        assert all(b >= a - 1e-9 for a, b in zip(curve, curve[1:])), (key, curve)
        assert curve[-1] > 0.95, (key, curve)


def test_a_click_changes_the_next_list(payload):
    # the page says the clicked item leaves the list and fold-in takes well under 5 ms
    assert payload["changed"] and payload["clicked_gone"]
    assert payload["foldin_ms"] < 5.0
    assert payload["new_user_source"] == "model"


def test_load_test_ran_without_errors(payload):
    assert payload["load_errors"] == 0 and payload["load_requests"] > 100


def test_sasrec_is_re_encoded_exactly_and_quickly(payload):
    # the page says two clicks change the list, that it equals SASRec's own list for the
    # longer history, and that a re-encode is cheap enough to run inside the request
    assert payload["sasrec_changed"] and payload["sasrec_matches"]
    assert payload["reencode_p99_ms"] < 5.0


def test_an_item_added_from_text_ranks_high_for_its_real_raters(payload):
    # the page compares the median position among raters with everyone else and with 50%
    assert payload["rater_rank"] < payload["other_rank"] < 0.5
    assert 0.0 <= payload["rater_top10"] < 0.5


def test_history_two_tower_is_re_encoded_exactly(payload):
    # the page says the clicks change the history tower's list, that it equals the model's
    # own encode_users list for the longer history, and that the pass is cheap
    assert payload["tower_changed"] and payload["tower_matches"]
    assert payload["tower_reencode_p99_ms"] < 5.0
