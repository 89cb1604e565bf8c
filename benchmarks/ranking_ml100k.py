"""Top-N protocol on MovieLens 100K: reclib and implicit side by side on one split.

Usage: ``python benchmarks/ranking_ml100k.py [--quick]``

Protocol (book/protocols.md, top-N): every rating is an interaction; ``stratified_split(df, 0.75, seed=42)``;
full ranking of every item not in the user's training set; k = 10. implicit's models are
scored through the same code as reclib's: a small adapter turns their factors (or item-item
similarities) into a :class:`~reclib.models.Recommender`, so ``evaluate_ranking`` ranks, masks
and scores them exactly as it does reclib's.

Every model runs at its library defaults and tuned: the two libraries get the same grid budget
for each pair of peers (16 points per ALS over confidence scheme and alpha, regularisation,
factors and sweeps; 12 per BPR over learning rate, regularisation, factors and epochs; 6 per
neighbourhood model), and every grid is searched on a validation split carved from the training
set (``stratified_split(train, 0.75, seed=1)``), never the test set; the winner is refitted on
the whole training set. implicit's ALS takes the confidence matrix as given, so it is handed
the same :math:`C` that reclib's ImplicitALS builds (:func:`confidence`). Fit times are for
that final fit. Threads: OpenBLAS is pinned to one thread (as implicit recommends); implicit's
solvers and reclib's numba kernels each use the machine's cores (2 here). The ALS timing
section compares equal factors and sweeps.

Writes ``benchmarks/results/ranking_ml100k.json`` and ``.md`` (``--quick``: ``*_quick.*``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import reclib  # noqa: E402
from reclib.evaluation import evaluate_ranking  # noqa: E402
from reclib.models import Recommender  # noqa: E402
from reclib.notebook import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ["precision@10", "recall@10", "ndcg@10", "map@10", "map_rel@10", "coverage@10"]
PUBLISHED = {  # Microsoft Recommenders, MovieLens 100k benchmark table (published, not re-run)
    "BiVAE": 0.4751, "BPR (Cornac)": 0.4420, "LightGCN": 0.4198, "NCF": 0.3961}


class PeerScores(Recommender):
    """Adapter: scores of a peer library's fitted model, through reclib's ranking code."""

    def __init__(self, score_fn=None):
        self.score_fn = score_fn

    def _fit(self, data):
        self.matrix_ = data.to_csr(binary=True).astype(np.float32)

    def _score_users(self, users):
        return self.score_fn(self, users)


def implicit_factory(kind, params):
    """(fit(train) -> adapter) for an implicit model; scores are its own dot products."""
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

    def fit(train):
        adapter = PeerScores().fit(train)
        X = adapter.matrix_
        if kind == "als":
            params_ = dict(params)
            scheme, alpha = params_.pop("confidence", None), params_.pop("alpha", None)
            if scheme is not None:                    # implicit takes C as given: build it
                X = confidence(train, scheme, alpha)
            model = AlternatingLeastSquares(random_state=0, **params_)
        elif kind == "bpr":
            model = BayesianPersonalizedRanking(random_state=0, **params)
        elif kind == "cosine":
            model = CosineRecommender(**params)
        else:
            model = BM25Recommender(**params)
        start = time.perf_counter()
        model.fit(X, show_progress=False)
        adapter.fit_time_ = time.perf_counter() - start
        if kind in ("als", "bpr"):
            U, V = np.asarray(model.user_factors), np.asarray(model.item_factors)
            adapter.score_fn = lambda a, users: U[users] @ V.T
        else:
            S = model.similarity.tocsr()                       # scores = X S, as implicit's
            adapter.score_fn = lambda a, users: np.asarray((a.matrix_[users] @ S).todense())
        return adapter
    return fit


def confidence(train, scheme, alpha):
    r"""The confidence matrix reclib's ImplicitALS builds, for implicit's ALS (float32 CSR).

    implicit's ALS reads each stored value as :math:`c_{ui}` (and 1 for missing entries), so the
    peer is given :math:`c_{ui} = 1 + \alpha` (``"linear"``, binary) or
    :math:`1 + \alpha \log(1 + r_{ui})` (``"log"``, star ratings), the same weights as
    ``ImplicitALS(confidence=..., binary=...)``: the two libraries then fit the same objective
    apart from reclib's frequency-scaled regularisation.
    """
    R = train.to_csr(binary=scheme == "linear").astype(np.float32)
    R.data = 1.0 + alpha * (np.log1p(R.data) if scheme == "log" else R.data)
    return R


def reclib_factory(cls, params):
    def fit(train):
        model = cls(**params)
        start = time.perf_counter()
        model.fit(train)
        model.fit_time_ = time.perf_counter() - start
        return model
    return fit


def grids(quick):
    """(library, name, factory, defaults, grid): the same budget per model."""
    from reclib.models import BPR, EASE, ImplicitALS, Popularity
    # ALS: 16 points per library over the same axes (confidence scheme and alpha, factors,
    # sweeps), each with its own regularisation scale (implicit: a constant lambda; reclib:
    # lambda times the row's total confidence, nu = 1, Rendle et al. 2022).
    als_grid = [dict(factors=f, regularization=r, alpha=a, confidence=c, iterations=n)
                for c, a, r, f, n in
                [("linear", 10.0, 100.0, 64, 15), ("linear", 20.0, 100.0, 64, 15),
                 ("linear", 30.0, 100.0, 64, 15), ("linear", 20.0, 60.0, 64, 15),
                 ("linear", 20.0, 200.0, 64, 15), ("linear", 50.0, 300.0, 64, 15),
                 ("linear", 20.0, 100.0, 128, 15), ("linear", 20.0, 100.0, 64, 30),
                 ("log", 5.0, 60.0, 64, 15), ("log", 5.0, 30.0, 64, 15),
                 ("log", 5.0, 100.0, 64, 15), ("log", 3.0, 60.0, 64, 15),
                 ("log", 10.0, 100.0, 64, 15), ("log", 10.0, 300.0, 64, 15),
                 ("log", 5.0, 60.0, 128, 15), ("log", 5.0, 60.0, 64, 30)]]
    ials_grid = [dict(reg=r, reg_exponent=nu, alpha=a, confidence=c, binary=c == "linear",
                      n_factors=f, n_epochs=n) for c, a, r, nu, f, n in
                 [("linear", 10.0, 0.03, 1.0, 64, 15), ("linear", 10.0, 0.02, 1.0, 64, 15),
                  ("linear", 10.0, 0.05, 1.0, 64, 15), ("linear", 3.0, 0.03, 1.0, 64, 15),
                  ("linear", 20.0, 0.03, 1.0, 64, 15), ("linear", 10.0, 100.0, 0.0, 64, 15),
                  ("linear", 10.0, 0.03, 1.0, 128, 15), ("linear", 10.0, 0.03, 1.0, 64, 30),
                  ("log", 5.0, 0.03, 1.0, 64, 15), ("log", 5.0, 0.02, 1.0, 64, 15),
                  ("log", 5.0, 0.04, 1.0, 64, 15), ("log", 3.0, 0.03, 1.0, 64, 15),
                  ("log", 8.0, 0.03, 1.0, 64, 15), ("log", 5.0, 60.0, 0.0, 64, 15),
                  ("log", 5.0, 0.03, 1.0, 128, 15), ("log", 5.0, 0.03, 1.0, 64, 30)]]
    # BPR: 12 points per library over learning rate, regularisation, factors and epochs.
    ibpr_grid = [dict(factors=f, learning_rate=lr, regularization=r, iterations=n)
                 for f, lr, r, n in
                 [(100, 0.005, 0.01, 100), (100, 0.01, 0.01, 50), (100, 0.002, 0.01, 200),
                  (100, 0.001, 0.01, 400), (100, 0.002, 0.003, 200), (100, 0.005, 0.03, 100),
                  (64, 0.005, 0.01, 100), (200, 0.002, 0.01, 200), (100, 0.01, 0.03, 100),
                  (100, 0.002, 0.03, 200), (32, 0.005, 0.01, 100), (100, 0.005, 0.01, 200)]]
    bpr_grid = [dict(n_factors=f, lr=lr, reg=r, n_epochs=n) for f, lr, r, n in
                [(64, 0.02, 0.01, 150), (64, 0.02, 0.02, 150), (64, 0.02, 0.03, 150),
                 (64, 0.02, 0.05, 150), (64, 0.05, 0.02, 100), (64, 0.01, 0.02, 300),
                 (128, 0.02, 0.02, 150), (32, 0.02, 0.02, 150), (64, 0.02, 0.02, 300),
                 (64, 0.01, 0.01, 200), (64, 0.03, 0.03, 150), (128, 0.02, 0.03, 200)]]
    ease_grid = [dict(reg=r) for r in (100.0, 200.0, 300.0, 500.0, 800.0, 1200.0, 2000.0,
                                        3000.0)]
    knn_grid = [dict(K=k) for k in (20, 50, 100, 200, 400, 800)]
    bm25_grid = [dict(K=k, K1=k1, B=b) for k, k1, b in
                 [(50, 1.2, 0.75), (100, 1.2, 0.75), (200, 1.2, 0.75), (100, 0.5, 0.75),
                  (100, 2.0, 0.75), (100, 1.2, 0.3)]]
    rknn_grid = [dict(feedback="implicit", k=k) for k in (20, 50, 100, 200, 400, 800)]
    rbm25_grid = [dict(feedback="implicit", weighting="bm25", similarity="dot", k=k)
                  for k in (20, 50, 100, 200, 400, 800)]
    seed = dict(random_state=0)
    rows = [
        ("implicit", "ALS", lambda p: implicit_factory("als", p), {}, als_grid),
        ("reclib", "ImplicitALS", lambda p: reclib_factory(ImplicitALS, {**seed, **p}), {},
         ials_grid),
        ("implicit", "BPR", lambda p: implicit_factory("bpr", p), {}, ibpr_grid),
        ("reclib", "BPR", lambda p: reclib_factory(BPR, {**seed, **p}), {}, bpr_grid),
        ("reclib", "EASE", lambda p: reclib_factory(EASE, p), {}, ease_grid),
        ("implicit", "ItemItem cosine", lambda p: implicit_factory("cosine", p), {}, knn_grid),
        ("implicit", "ItemItem BM25", lambda p: implicit_factory("bm25", p), {}, bm25_grid),
    ]
    try:
        from reclib.models import ItemKNN
        rows += [("reclib", "ItemKNN cosine", lambda p: reclib_factory(ItemKNN, p),
                  dict(feedback="implicit"), rknn_grid),
                 ("reclib", "ItemKNN BM25", lambda p: reclib_factory(ItemKNN, p),
                  dict(feedback="implicit", weighting="bm25", similarity="dot"), rbm25_grid)]
    except ImportError:
        print("reclib.models.ItemKNN is not available: skipped")
    rows.append(("reclib", "Popularity", lambda p: reclib_factory(Popularity, p), {}, []))
    if quick:
        rows = [(lib, name, fac, d, g[:2]) for lib, name, fac, d, g in rows]
    return rows


def run_model(factory, defaults, grid, train, test, fit_tr, val):
    best, best_val, searched = defaults, None, []
    for params in grid:
        score = evaluate_ranking(factory(params)(fit_tr), fit_tr, val)["ndcg@10"]
        searched.append({"params": params, "val_ndcg@10": score})
        if best_val is None or score > best_val:
            best, best_val = params, score
    out = {}
    for label, params in (("default", defaults), ("tuned", best)):
        if label == "tuned" and not grid:
            continue
        model = factory(params)(train)
        start = time.perf_counter()
        metrics = evaluate_ranking(model, train, test, k=10)
        out[label] = {"params": params, "fit_s": model.fit_time_,
                      "eval_s": time.perf_counter() - start,
                      **{m: metrics[m] for m in METRICS + ["novelty@10"]}}
    out["search"] = searched
    return out


def time_als(train_csr, repeats, n_factors=64, n_epochs=15):
    """Fit seconds (best of ``repeats``) of both ALS implementations at equal settings."""
    from implicit.cpu.als import AlternatingLeastSquares
    from reclib.models import ImplicitALS
    X = train_csr.astype(np.float32)
    ImplicitALS(n_epochs=1).fit(X)                             # JIT compile outside the clock
    ours, theirs = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        ImplicitALS(n_factors=n_factors, n_epochs=n_epochs, random_state=0).fit(X)
        ours.append(time.perf_counter() - start)
        peer = AlternatingLeastSquares(factors=n_factors, iterations=n_epochs, random_state=0)
        start = time.perf_counter()
        peer.fit(X, show_progress=False)
        theirs.append(time.perf_counter() - start)
    return {"reclib_s": min(ours), "implicit_s": min(theirs), "ratio": min(ours) / min(theirs),
            "n_factors": n_factors, "n_epochs": n_epochs, "shape": list(X.shape),
            "nnz": int(X.nnz)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two grid points per model")
    args = parser.parse_args()
    df = reclib.datasets.load_movielens("100k")
    train, test = reclib.split.stratified_split(df, ratio=0.75, seed=42)
    fit_tr, val = reclib.split.stratified_split(train, ratio=0.75, seed=1)
    results = {"machine": machine(), "numba_threads": numba.get_num_threads(),
               "openblas_threads": os.environ["OPENBLAS_NUM_THREADS"], "quick": args.quick,
               "models": {}, "published": PUBLISHED}
    for lib, name, factory, defaults, grid in grids(args.quick):
        print(f"{lib} {name} ...", flush=True)
        results["models"][f"{lib}: {name}"] = run_model(factory, defaults, grid, train, test,
                                                        fit_tr, val)
    syn = reclib.datasets.synthetic_interactions(50_000, 10_000, 1_000_000, alpha=1.0, seed=0)
    syn_csr = reclib.Interactions.from_dataframe(syn, rating_col=None).to_csr(binary=True)
    repeats = 1 if args.quick else 3
    results["als_timing"] = {"ml-100k": time_als(train.to_csr(binary=True), repeats),
                             "synthetic 1M": time_als(syn_csr, repeats)}
    suffix = "_quick" if args.quick else ""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"ranking_ml100k{suffix}.json").write_text(json.dumps(results, indent=2))
    (RESULTS / f"ranking_ml100k{suffix}.md").write_text(markdown(results))
    print(markdown(results))


def markdown(results):
    models = results["models"]
    peer_of = {"reclib: ImplicitALS": "implicit: ALS", "reclib: BPR": "implicit: BPR",
               "reclib: ItemKNN cosine": "implicit: ItemItem cosine",
               "reclib: ItemKNN BM25": "implicit: ItemItem BM25"}
    lines = ["# Top-N ranking on MovieLens 100K (stratified 75/25 split, seed 42, k = 10)", "",
             f"Machine: {results['machine']}; numba threads {results['numba_threads']}, "
             f"OpenBLAS threads {results['openblas_threads']}, implicit on all cores."
             + (" Quick run (two grid points per model)." if results["quick"] else ""), "",
             "| model | setting | P@10 | R@10 | nDCG@10 | MAP@10 | MAP_rel@10 | coverage@10 "
             "| fit s | fit time / peer |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, res in sorted(models.items(), key=lambda kv: -kv[1].get("tuned", kv[1]["default"])
                            ["ndcg@10"]):
        for label in ("tuned", "default"):
            if label not in res:
                continue
            r = res[label]
            peer = models.get(peer_of.get(name, ""), {}).get(label)
            ratio = f"{r['fit_s'] / peer['fit_s']:.2f}" if peer else ""
            lines.append(f"| {name} | {label} | {r['precision@10']:.4f} | {r['recall@10']:.4f} | "
                         f"{r['ndcg@10']:.4f} | {r['map@10']:.4f} | {r['map_rel@10']:.4f} | "
                         f"{r['coverage@10']:.3f} | {r['fit_s']:.2f} | {ratio} |")
    lines += ["", "Fit time / peer compares each library at its own setting in that row; the "
              "equal-settings ALS timing is below.", "",
              "MAP@10 divides by min(k, |R_u|); MAP_rel@10 by |R_u| (Microsoft Recommenders' "
              "`map`). Tuned settings won a validation split carved from train (listed below; every "
              "searched point is in the JSON). implicit's ALS is given the same confidence matrix "
              "as reclib's (c = 1 + alpha, or 1 + alpha log(1 + rating) for `confidence=log`).",
              "",
              "## Tuned settings (won on validation, refitted on the whole training set)", "",
              "| model | settings |", "|---|---|"]
    lines += [f"| {name} | " + ", ".join(f"{k}={v}" for k, v in res["tuned"]["params"].items())
              + " |" for name, res in models.items() if "tuned" in res]
    lines += ["", "## Published, not re-run: Microsoft Recommenders MovieLens-100k benchmark", "",
              "| model | nDCG@10 |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in results["published"].items()]
    lines += ["", "## ALS fit time at equal factors and sweeps (CG, 3 steps), best of repeats",
              "", "| data | shape | nnz | reclib s | implicit s | ratio |", "|---|---|---|---|---|---|"]
    for data, t in results["als_timing"].items():
        lines.append(f"| {data} | {t['shape'][0]} x {t['shape'][1]} | {t['nnz']} | "
                     f"{t['reclib_s']:.3f} | {t['implicit_s']:.3f} | {t['ratio']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
