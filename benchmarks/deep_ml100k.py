"""Deep and graph models on MovieLens 100K, beside the chapter-4 models and published numbers.

Top-N protocol (stratified 75/25 split, seed 42, k = 10) for the ranking models; the rating
protocol (5-fold CV, seed 0) for AutoRec. Fit times are on this machine's CPU, stated in the
output. ``--quick`` trains each model for a fifth of its epochs (a smoke test).

    python benchmarks/deep_ml100k.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import reclib
import reclib.neural as neural
from _results import write_results
from reclib.evaluation import evaluate_ranking, evaluate_ratings
from reclib.features import movielens_side_features

PUBLISHED = {"LightGCN (Microsoft Recommenders)": 0.4198, "NCF (Microsoft Recommenders)": 0.3961,
             "BPR (Cornac, Microsoft Recommenders)": 0.4420}
RANKING = ["GMF", "MLP", "NeuMF", "LightGCN", "FM", "DeepFM", "TwoTower"]
#: Models that read side features: each runs once on ids only and once with the MovieLens
#: user (gender, age, occupation) and item (genres, decade) features.
FEATURE_MODELS = {"FM", "DeepFM", "TwoTower"}
METRICS = ["precision@10", "recall@10", "ndcg@10", "map@10"]


def epochs(cls, quick):
    default = cls().n_epochs
    return {"n_epochs": max(1, default // 5)} if quick else {}


def ranking_rows(train, test, quick):
    rows = []
    for name in RANKING:
        cls = getattr(neural, name, None)
        if cls is None:
            print(f"skipped {name}: reclib.neural has no such model in this checkout")
            continue
        variants = ([(" (ids only)", {"features": None}), (" (ids + side features)", {})]
                    if name in FEATURE_MODELS else [("", {})])
        for label, extra in variants:
            start = time.perf_counter()
            model = cls(random_state=0, device="cpu", **epochs(cls, quick), **extra).fit(train)
            fit_s = time.perf_counter() - start
            result = evaluate_ranking(model, train, test, k=10)
            rows.append({"model": f"reclib.neural: {name}{label}", "fit_s": fit_s,
                         **{m: result[m] for m in METRICS}})
            print(f"{name}{label}: nDCG@10 {result['ndcg@10']:.4f}, fit {fit_s:.1f} s", flush=True)
    return rows


def chapter4_rows(train, test):
    rows = []
    for name, model in (("EASE", reclib.models.EASE()), ("ImplicitALS", reclib.models.ImplicitALS(random_state=0))):
        start = time.perf_counter()
        model.fit(train)
        fit_s = time.perf_counter() - start
        result = evaluate_ranking(model, train, test, k=10)
        rows.append({"model": f"reclib.models: {name} (default)", "fit_s": fit_s,
                     **{m: result[m] for m in METRICS}})
    return rows


def autorec_row(df, quick):
    folds, fit_s = [], 0.0
    for train, test in reclib.split.kfold(df, 5, seed=0):
        start = time.perf_counter()
        model = neural.AutoRec(random_state=0, device="cpu", **epochs(neural.AutoRec, quick))
        model.fit(train)
        fit_s += time.perf_counter() - start
        folds.append(evaluate_ratings(model, test))
        if quick:
            break
    row = {"model": "reclib.neural: AutoRec", "rmse": float(np.mean([f["rmse"] for f in folds])),
           "mae": float(np.mean([f["mae"] for f in folds])), "fit_s": fit_s / len(folds),
           "folds": len(folds)}
    print(f"AutoRec: RMSE {row['rmse']:.4f}", flush=True)
    return row


def markdown(payload) -> str:
    lines = ["# Deep and graph models on MovieLens 100K", "",
             f"Machine: {payload['machine']}; torch on the CPU, one thread.", "",
             "Fit times are wall-clock seconds of one run on this machine; a loaded machine "
             "can be several times slower.", "",
             "FM, DeepFM and TwoTower run twice: on ids only, and with the MovieLens side "
             "features (user gender, age, occupation; item genres and decade).", "",
             "NeuMF's fit time includes fitting the GMF and the MLP it is pre-trained from.", "",
             "## Top-N (stratified 75/25 split, seed 42, k = 10)", "",
             "| model | P@10 | R@10 | nDCG@10 | MAP@10 | fit s |", "|---|---|---|---|---|---|"]
    for r in payload["ranking"]:
        lines.append(f"| {r['model']} | {r['precision@10']:.4f} | {r['recall@10']:.4f} | "
                     f"{r['ndcg@10']:.4f} | {r['map@10']:.4f} | {r['fit_s']:.1f} |")
    for name, value in payload["published"].items():
        lines.append(f"| {name}, published, not re-run | | | {value:.4f} | | |")
    r = payload["rating"]
    lines += ["", "## Rating (5-fold CV, seed 0)", "", "| model | RMSE | MAE | fit s per fold |",
              "|---|---|---|---|", f"| {r['model']} | {r['rmse']:.4f} | {r['mae']:.4f} | "
              f"{r['fit_s']:.1f} |", ""]
    if payload["quick"]:
        lines.insert(2, "**Quick mode: a fifth of the epochs, one fold; not the headline numbers.**\n")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    df = reclib.datasets.load_movielens("100k")
    user_table, item_table = movielens_side_features(reclib.datasets.load_movielens_users("100k"),
                                                     reclib.datasets.load_movielens_items("100k"))
    data = reclib.Interactions.from_dataframe(df, user_features=user_table,
                                              item_features=item_table)
    train, test = reclib.split.stratified_split(data, 0.75, seed=42)
    payload = {"machine": reclib.notebook.machine(), "quick": args.quick,
               "ranking": ranking_rows(train, test, args.quick) + chapter4_rows(train, test),
               "published": PUBLISHED, "rating": autorec_row(df, args.quick)}
    payload["ranking"].sort(key=lambda r: -r["ndcg@10"])
    write_results("deep_ml100k", payload, markdown(payload), args.quick)


if __name__ == "__main__":
    main()
