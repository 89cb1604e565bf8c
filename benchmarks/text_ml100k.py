"""Pretrained text on MovieLens 100K: cold items, a text-mapped hybrid, and SASRec started from text.

Item texts (title, year, genres) are embedded once with all-MiniLM-L6-v2 (``reclib.text``,
cached). Two studies, each on the protocol of chapter 7:

1. **Cold items** (``reclib.text.cold_item_split``, 15% of the items, split seeds 0-2). The
   warm interactions are split again per user (80/20) into a warm training and a warm test
   set. Every model is fitted on the warm training set and scored twice: on the warm test set
   with a full ranking over the whole catalogue (cold items included), and on the cold test
   set, ranking each user's cold items among all cold items. EASE's and iALS's
   hyper-parameters, and the hybrid's ridge penalty, are chosen on validation data carved
   from the warm training set (a per-user hold-out; for the hybrid, a second cold split).
2. **SASRec's item table from text** (``item_init="embeddings"``) against the random start,
   seeds 0-2, on the leave-last-out split of ``sequential_ml100k.py``; NDCG@10 overall and
   for the users whose test item is rare in training (its training count at most the
   median count of test items).

    python benchmarks/text_ml100k.py [--quick]

``--quick`` runs one split seed, small grids and SASRec for a fifth of its epochs.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

import reclib
from _results import write_results
from reclib.evaluation import evaluate_ranking
from reclib.models import EASE, ImplicitALS, Popularity, Random
from reclib.neural import SASRec
from reclib.split import per_user_holdout
from reclib.text import (EmbeddingProfile, TextMappedALS, cold_item_split, embedding_table,
                         evaluate_cold_items, item_texts, load_encoder)
from sequential_ml100k import split as sequential_split

EASE_GRID = {"reg": [100.0, 250.0, 500.0, 1000.0]}
IALS_GRID = {"alpha": [3.0, 5.0, 10.0], "reg": [0.01, 0.02, 0.03]}
MAP_GRID = [1.0, 10.0, 100.0]


def item_table(frame):
    """The ``emb_*`` table of every item of ``frame`` (title, year, genres, embedded)."""
    items = reclib.datasets.load_movielens_items("100k")
    texts = dict(zip(items["item_id"], item_texts(items)))
    ids = np.unique(frame["item_id"])
    start = time.perf_counter()
    vectors = load_encoder().encode([texts[i] for i in ids])
    return embedding_table(ids, vectors), time.perf_counter() - start


def grid(params: dict):
    keys = list(params)
    return [dict(zip(keys, values)) for values in itertools.product(*params.values())]


def best_on_validation(make, candidates, train):
    """The candidate with the best nDCG@10 on a per-user 20% hold-out of ``train``."""
    inner, valid = per_user_holdout(train, 0.2, np.random.default_rng(1))
    scores = [evaluate_ranking(make(**c).fit(inner), inner, valid, metrics=["ndcg"])["ndcg@10"]
              for c in candidates]
    return candidates[int(np.argmax(scores))], float(max(scores))


def best_map_reg(params, train, grid_values, seed: int):
    """The hybrid's ridge penalty with the best cold nDCG@10 on a cold split of ``train``.

    Its seed differs from the outer split's, which would pick the same (already cold) items.
    """
    inner, inner_cold_test, inner_cold = cold_item_split(train, fraction=0.15,
                                                         random_state=100 + seed)
    scores = [evaluate_cold_items(TextMappedALS(map_reg=lam, **params).fit(inner), inner,
                                  inner_cold_test, inner_cold)["ndcg@10"] for lam in grid_values]
    return grid_values[int(np.argmax(scores))]


def cold_study(full, seed: int, quick: bool) -> dict:
    cold_train, cold_test, cold = cold_item_split(full, fraction=0.15, random_state=seed)
    warm_train, warm_test = per_user_holdout(cold_train, 0.2, np.random.default_rng(seed))
    ease_grid = grid(EASE_GRID)[1:3] if quick else grid(EASE_GRID)
    ials_grid = grid(IALS_GRID)[:2] if quick else grid(IALS_GRID)
    ease_params, _ = best_on_validation(EASE, ease_grid, warm_train)
    ials_params, _ = best_on_validation(
        lambda **c: ImplicitALS(random_state=0, **c), ials_grid, warm_train)
    ials_params = {**ials_params, "random_state": 0}
    map_reg = best_map_reg(ials_params, warm_train, MAP_GRID[1:2] if quick else MAP_GRID,
                           seed)
    models = {"random": Random(random_state=0), "popularity": Popularity(),
              "EASE": EASE(**ease_params), "iALS": ImplicitALS(**ials_params),
              "text profile": EmbeddingProfile(),
              "hybrid (text-mapped iALS)": TextMappedALS(map_reg=map_reg, **ials_params)}
    rows = []
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(warm_train)
        fit_s = time.perf_counter() - start
        warm = evaluate_ranking(model, warm_train, warm_test, metrics=["hit_rate", "ndcg"])
        cold_scores = evaluate_cold_items(model, warm_train, cold_test, cold)
        rows.append({"model": name, "seed": seed, "warm_ndcg@10": warm["ndcg@10"],
                     "warm_hit_rate@10": warm["hit_rate@10"],
                     "cold_ndcg@10": cold_scores["ndcg@10"],
                     "cold_hit_rate@10": cold_scores["hit_rate@10"],
                     "cold_share@10": cold_scores["cold_share@10"], "fit_s": fit_s})
        print(f"split {seed} {name:26s} warm NDCG@10 {warm['ndcg@10']:.4f} cold NDCG@10 "
              f"{cold_scores['ndcg@10']:.4f} cold share {cold_scores['cold_share@10']:.4f}",
              flush=True)
    return {"rows": rows, "chosen": {"EASE": ease_params, "iALS": ials_params,
                                     "map_reg": map_reg}, "n_cold_items": int(len(cold))}


def fit_sasrec(args):
    item_init, seed, n_epochs = args
    prefix, test, table = _sasrec_data()
    model = SASRec(item_init=item_init, random_state=seed,
                   **({} if n_epochs is None else {"n_epochs": n_epochs}))
    start = time.perf_counter()
    model.fit(prefix)
    fit_s = time.perf_counter() - start
    counts = np.bincount(prefix.items, minlength=prefix.n_items)
    test_counts = counts[test.items]
    rare = test.subset(test_counts <= np.median(test_counts))
    full = evaluate_ranking(model, prefix, test, metrics=["hit_rate", "ndcg"])
    rare_scores = evaluate_ranking(model, prefix, rare, metrics=["ndcg"])
    print(f"SASRec item_init={item_init} seed {seed}: NDCG@10 {full['ndcg@10']:.4f}, rare "
          f"{rare_scores['ndcg@10']:.4f} ({fit_s:.0f} s)", flush=True)
    return {"item_init": item_init, "seed": seed, "ndcg@10": full["ndcg@10"],
            "hit_rate@10": full["hit_rate@10"], "rare_ndcg@10": rare_scores["ndcg@10"],
            "n_rare_users": int(rare.n_interactions), "fit_s": fit_s}


def _sasrec_data():
    prefix, test = sequential_split()
    table, _ = item_table(reclib.datasets.load_movielens("100k"))
    return prefix.with_features(item_features=table), test, table


def summarise(rows, key_fields, metrics):
    out = []
    for key in dict.fromkeys(tuple(r[f] for f in key_fields) for r in rows):
        runs = [r for r in rows if tuple(r[f] for f in key_fields) == key]
        entry = dict(zip(key_fields, key), n_seeds=len(runs))
        for m in metrics:
            values = np.array([r[m] for r in runs])
            entry[m], entry[m + "_min"], entry[m + "_max"] = (float(values.mean()),
                                                               float(values.min()),
                                                               float(values.max()))
        out.append(entry)
    return out


def spread(row: dict, key: str) -> str:
    """``mean (min-max)`` of a summarised metric."""
    return f"{row[key]:.4f} ({row[key + '_min']:.4f}-{row[key + '_max']:.4f})"


def markdown(payload) -> str:
    lines = ["# Pretrained text on MovieLens 100K", "",
             "## Cold items (mean over split seeds, min-max)", "",
             "Warm: full ranking of the warm test items over the whole catalogue. Cold: each "
             "user's cold items ranked among all cold items.", "",
             "| model | warm NDCG@10 | cold NDCG@10 | cold HR@10 | cold share of top-10 |",
             "|---|---|---|---|---|"]
    for r in payload["cold_summary"]:
        lines.append(f"| {r['model']} | {spread(r, 'warm_ndcg@10')} | "
                     f"{spread(r, 'cold_ndcg@10')} | {r['cold_hit_rate@10']:.4f} | "
                     f"{r['cold_share@10']:.4f} |")
    c = payload["checks"]
    lines += ["", f"Hybrid minus the best collaborative model on warm items, worst split: "
              f"{c['hybrid_warm_gap_worst']:+.4f} NDCG@10. Text profile minus the better of "
              f"popularity and random on cold items, worst split: "
              f"{c['text_cold_margin_worst']:+.4f}.", "",
              "## SASRec item table from text (leave-last-out; mean over seeds, min-max)", "",
              "| item_init | NDCG@10 | HR@10 | NDCG@10, rare test items | fit (s) |",
              "|---|---|---|---|---|"]
    for r in payload["sasrec_summary"]:
        lines.append(f"| {r['item_init']} | {spread(r, 'ndcg@10')} | {r['hit_rate@10']:.4f} | "
                     f"{spread(r, 'rare_ndcg@10')} | {r['fit_s']:.0f} |")
    m = payload["machine"]
    lines += ["", f"Encoding {payload['n_items']} item texts took {payload['encode_s']:.1f} s "
              f"(or less, from the cache). Machine: {m['platform']}, {m['cpus']} CPUs, torch "
              f"{m['torch']}; load average (1 min) {m['load_start']:.2f} at the start, "
              f"{m['load_end']:.2f} at the end. The SASRec fits ran two at a time, one torch "
              f"thread each, so their times are those of a shared machine."]
    return "\n".join(lines)


def main(quick: bool) -> None:
    import torch
    load_start = os.getloadavg()[0]
    frame = reclib.datasets.load_movielens("100k")
    table, encode_s = item_table(frame)
    full = reclib.Interactions.from_dataframe(frame, item_features=table)
    seeds = (0,) if quick else (0, 1, 2)
    studies = [cold_study(full, seed, quick) for seed in seeds]
    cold_rows = [r for s in studies for r in s["rows"]]
    cold_summary = summarise(cold_rows, ["model"], ["warm_ndcg@10", "warm_hit_rate@10",
                                                    "cold_ndcg@10", "cold_hit_rate@10",
                                                    "cold_share@10", "fit_s"])
    gaps, margins = [], []
    for seed in seeds:
        by = {r["model"]: r for r in cold_rows if r["seed"] == seed}
        gaps.append(by["hybrid (text-mapped iALS)"]["warm_ndcg@10"]
                    - max(by["EASE"]["warm_ndcg@10"], by["iALS"]["warm_ndcg@10"]))
        margins.append(by["text profile"]["cold_ndcg@10"]
                       - max(by["popularity"]["cold_ndcg@10"], by["random"]["cold_ndcg@10"]))
    n_epochs = max(1, SASRec().n_epochs // 5) if quick else None
    jobs = [(init, seed, n_epochs) for seed in ((0,) if quick else (0, 1, 2))
            for init in ("random", "embeddings")]
    # spawned, not forked: a fork of a process that has run torch and numba threads can hang
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        sasrec_rows = list(pool.map(fit_sasrec, jobs))
    sasrec_summary = summarise(sasrec_rows, ["item_init"],
                               ["ndcg@10", "hit_rate@10", "rare_ndcg@10", "fit_s"])
    payload = {"protocol": "cold: cold_item_split(0.15) per split seed, warm per-user 80/20; "
                           "SASRec: leave-last-out as sequential_ml100k.py",
               "n_items": int(full.n_items), "encode_s": encode_s, "cold_rows": cold_rows,
               "cold_summary": cold_summary, "chosen": [s["chosen"] for s in studies],
               "n_cold_items": [s["n_cold_items"] for s in studies],
               "checks": {"hybrid_warm_gap": gaps, "hybrid_warm_gap_worst": float(min(gaps)),
                          "text_cold_margin": margins,
                          "text_cold_margin_worst": float(min(margins))},
               "sasrec_rows": sasrec_rows, "sasrec_summary": sasrec_summary, "quick": quick,
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "torch": torch.__version__, "python": sys.version.split()[0],
                           "load_start": load_start, "load_end": os.getloadavg()[0]}}
    write_results("text_ml100k", payload, markdown(payload), quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
