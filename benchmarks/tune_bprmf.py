"""Choose BPRMF's defaults on a validation split carved from the MovieLens 100K training set.

The top-N protocol's training part (stratified 75/25, seed 42) is split again (75/25, seed 1);
each setting is fitted on the inner training part and scored by nDCG@10 on the inner
validation part. The test part is never looked at.

    python benchmarks/tune_bprmf.py
"""

from __future__ import annotations

import argparse

import reclib
from reclib.evaluation import evaluate_ranking
from reclib.neural import BPRMF

from _results import write_results

GRID = [("sparse_adam", 0.01, 1e-3), ("sparse_adam", 0.01, 1e-2), ("sparse_adam", 0.003, 1e-2),
        ("sparse_adam", 0.01, 3e-2), ("rowwise_adagrad", 0.05, 1e-2),
        ("rowwise_adagrad", 0.1, 1e-2)]
EPOCHS = (10, 20, 40)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two settings, 10 epochs")
    args = parser.parse_args()
    grid, epochs = (GRID[:2], (10,)) if args.quick else (GRID, EPOCHS)
    df = reclib.datasets.load_movielens("100k")
    train, _ = reclib.split.stratified_split(df, ratio=0.75, seed=42)
    fit_train, validation = reclib.split.stratified_split(train, ratio=0.75, seed=1)
    rows = []
    for optimizer, lr, reg in grid:
        for n_epochs in epochs:
            model = BPRMF(n_epochs=n_epochs, lr=lr, reg=reg, optimizer=optimizer, device="cpu",
                          random_state=0).fit(fit_train)
            score = evaluate_ranking(model, fit_train, validation, k=10)["ndcg@10"]
            rows.append({"optimizer": optimizer, "lr": lr, "reg": reg, "n_epochs": n_epochs,
                         "val_ndcg@10": score})
            print(rows[-1], flush=True)
    best = max(rows, key=lambda r: r["val_ndcg@10"])
    lines = ["# BPRMF on a validation split of the MovieLens 100K training set", "",
             "| optimizer | lr | reg | epochs | validation nDCG@10 |", "|---|---|---|---|---|"]
    lines += [f"| {r['optimizer']} | {r['lr']} | {r['reg']} | {r['n_epochs']} | "
              f"{r['val_ndcg@10']:.4f} |" for r in rows]
    lines += ["", f"Best: {best}", "", f"Machine: {reclib.notebook.machine()}."]
    write_results("tune_bprmf", {"rows": rows, "best": best,
                                 "machine": reclib.notebook.machine()},
                  "\n".join(lines) + "\n", args.quick)


if __name__ == "__main__":
    main()
