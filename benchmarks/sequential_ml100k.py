"""Next-item recommendation on MovieLens 100K: SASRec and GRU4Rec against ID baselines.

Protocol (book/protocols.md, sequential): ``leave_last_out(validation=True)`` orders each user's
ratings by time, ties by file order; the last item is the test item and the second-to-last
the validation item. Every model is fitted on the test item's training prefix (train plus
validation item) and ranks all items not in the user's history; HR@10 and NDCG@10. Each
model is also scored with 100 sampled negatives (the sampled-metric lesson; never headline).

Baselines: most popular, item-kNN on the last item (cosine of item columns), EASE and iALS
on the prefixes; then GRU4Rec (CE) and SASRec with CE (3 seeds) and with one-negative BCE.
``--quick`` trains the sequence models for a fifth of their epochs (a smoke test).

    python benchmarks/sequential_ml100k.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

import reclib
from _results import write_results
from reclib.evaluation import evaluate_ranking, evaluate_sampled_ranking
from reclib.models import EASE, ImplicitALS, Popularity
from reclib.models.base import Recommender
from reclib.neural import GRU4Rec, SASRec

SEEDS = (0, 1, 2)
#: Measured earlier on exactly this protocol (full ranking, ties by file order).
REFERENCE = {"most popular": (0.086, 0.044), "EASE": (0.139, 0.072),
             "RecBole 1.2.1 GRU4Rec (CE, 4 epochs)": (0.158, 0.081),
             "RecBole 1.2.1 SASRec (CE, 6 epochs)": (0.193, 0.0955)}


class LastItemKNN(Recommender):
    """Scores item :math:`j` by :math:`\\cos(x_{\\ell(u)}, x_j)`, the cosine between the item
    columns of the user's last training item :math:`\\ell(u)` and of :math:`j`."""

    def _fit(self, data):
        X = data.to_csr(binary=True).astype(np.float64)
        norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0))).ravel()
        norms[norms == 0] = 1.0
        unit = X @ sp.diags(1.0 / norms)
        self.similarity_ = (unit.T @ unit).toarray()
        order = np.lexsort((np.arange(data.n_interactions), data.timestamps, data.users))
        last = np.full(data.n_users, -1)
        last[data.users[order]] = data.items[order]            # later rows overwrite earlier
        self.last_item_ = last

    def _score_users(self, users):
        return self.similarity_[self.last_item_[users]]


def split():
    frame = reclib.datasets.load_movielens("100k")
    train, valid, test = reclib.split.leave_last_out(reclib.Interactions.from_dataframe(frame),
                                                    validation=True)
    prefix = reclib.Interactions.from_dataframe(pd.concat([train.to_dataframe(),
                                                           valid.to_dataframe()]))
    return prefix, reclib.Interactions.from_dataframe(test.to_dataframe(), reference=prefix)


def score(name, model, prefix, test, **extra):
    start = time.perf_counter()
    model.fit(prefix)
    fit_s = time.perf_counter() - start
    full = evaluate_ranking(model, prefix, test, k=10, metrics=["hit_rate", "ndcg"])
    with warnings.catch_warnings():  # its warning (not comparable with full ranking) is the point
        warnings.simplefilter("ignore")
        sampled = evaluate_sampled_ranking(model, prefix, test, k=10, n_negatives=100,
                                           random_state=0)
    row = {"model": name, "hit_rate@10": full["hit_rate@10"], "ndcg@10": full["ndcg@10"],
           "sampled_hit_rate@10": sampled["hit_rate@10"], "sampled_ndcg@10": sampled["ndcg@10"],
           "fit_s": fit_s, "params": {k: v for k, v in model.get_params().items()
                                      if isinstance(v, (int, float, str, bool, type(None)))},
           **extra}
    print(f"{name:28s} HR@10 {row['hit_rate@10']:.4f} NDCG@10 {row['ndcg@10']:.4f} "
          f"sampled NDCG@10 {row['sampled_ndcg@10']:.4f} fit {fit_s:.0f} s", flush=True)
    return row


def summary(rows, name):
    runs = [r for r in rows if r["model"] == name]
    out = {"model": name, "n_seeds": len(runs)}
    for key in ("hit_rate@10", "ndcg@10", "sampled_hit_rate@10", "sampled_ndcg@10", "fit_s"):
        values = np.array([r[key] for r in runs])
        out[key] = float(values.mean())
        out[key + "_min"], out[key + "_max"] = float(values.min()), float(values.max())
        out[key + "_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def markdown(payload):
    lines = ["# Sequential recommendation, MovieLens 100K (leave-last-out)", "",
             "Full ranking over the items not in the user's history; headline metrics.",
             "SASRec rows: mean over seeds (min-max).", "",
             "| model | HR@10 | NDCG@10 | sampled HR@10 | sampled NDCG@10 | fit (s) |",
             "|---|---|---|---|---|---|"]
    for r in payload["summary"]:
        spread = (f" ({r['ndcg@10_min']:.4f}-{r['ndcg@10_max']:.4f})"
                  if r["n_seeds"] > 1 else "")
        lines.append(f"| {r['model']} | {r['hit_rate@10']:.4f} | {r['ndcg@10']:.4f}{spread} | "
                     f"{r['sampled_hit_rate@10']:.4f} | {r['sampled_ndcg@10']:.4f} | "
                     f"{r['fit_s']:.0f} |")
    m = payload["margin"]
    lines += ["", f"SASRec (CE) minus the best other model ({m['best_other']}): "
              f"NDCG@10 {m['ndcg@10']:+.4f} (worst seed {m['ndcg@10_worst_seed']:+.4f}), "
              f"HR@10 {m['hit_rate@10']:+.4f} (worst seed {m['hit_rate@10_worst_seed']:+.4f}).",
              "", "Reference figures measured earlier on this protocol (HR@10 / NDCG@10):", ""]
    lines += [f"- {k}: {v[0]} / {v[1]}" for k, v in REFERENCE.items()]
    mach = payload["machine"]
    lines += ["", f"Machine: {mach['platform']}, {mach['cpus']} CPUs, torch "
              f"{mach['torch']}; load average (1 min) {mach['load_start']:.2f} at the start, "
              f"{mach['load_end']:.2f} at the end (the machine is shared). Training uses one "
              f"torch thread.", "", f"Command: `{payload['command']}`", ""]
    return "\n".join(lines)


def main(quick: bool) -> None:
    import torch
    load_start = os.getloadavg()[0]
    prefix, test = split()
    shorten = (lambda cls: {"n_epochs": max(1, cls().n_epochs // 5)}) if quick else (lambda c: {})
    rows = [score("most popular", Popularity(), prefix, test),
            score("item-kNN (last item)", LastItemKNN(), prefix, test),
            score("EASE", EASE(), prefix, test),
            score("iALS", ImplicitALS(), prefix, test),
            score("GRU4Rec (CE)", GRU4Rec(**shorten(GRU4Rec)), prefix, test)]
    for seed in SEEDS:
        rows.append(score("SASRec (BCE, 1 negative)",
                          SASRec(loss="bce", random_state=seed, **shorten(SASRec)), prefix, test,
                          seed=seed))
    for seed in SEEDS:
        rows.append(score("SASRec (CE)", SASRec(random_state=seed, **shorten(SASRec)), prefix,
                          test, seed=seed))
    names = list(dict.fromkeys(r["model"] for r in rows))
    table = [summary(rows, n) for n in names]
    others = [t for t in table if t["model"] != "SASRec (CE)"]
    best = max(others, key=lambda t: t["ndcg@10"])
    sas = [r for r in rows if r["model"] == "SASRec (CE)"]
    best_hr = max(t["hit_rate@10"] for t in others)
    margin = {"best_other": best["model"],
              "ndcg@10": float(np.mean([r["ndcg@10"] for r in sas]) - best["ndcg@10"]),
              "ndcg@10_worst_seed": float(min(r["ndcg@10"] for r in sas) - best["ndcg@10"]),
              "hit_rate@10": float(np.mean([r["hit_rate@10"] for r in sas]) - best_hr),
              "hit_rate@10_worst_seed": float(min(r["hit_rate@10"] for r in sas) - best_hr)}
    payload = {"protocol": "ml-100k leave-last-out (validation=True); fit on train+validation, "
                           "test on the last item; full ranking excluding the user's history",
               "n_users": int(test.n_users), "n_items": int(prefix.n_items), "rows": rows,
               "summary": table, "margin": margin, "reference": REFERENCE, "quick": quick,
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "torch": torch.__version__, "python": sys.version.split()[0],
                           "load_start": load_start, "load_end": os.getloadavg()[0]},
               "command": "python benchmarks/sequential_ml100k.py" + (" --quick" if quick else "")}
    write_results("sequential_ml100k", payload, markdown(payload), quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
