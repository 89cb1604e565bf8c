"""The validation search behind the LightGCN and NeuMF defaults.

Every setting is fitted on a validation split carved from the top-N protocol's training set
(``stratified_split(train, 0.75, seed=1)``, as in ``ranking_ml100k.py``) and scored by nDCG@10
on the held-out quarter; the test set is never read. The table lists each setting's validation
nDCG@10 and fit time. Validation scores are lower than test scores because each user has
fewer held-out items. Differences below about 0.001 are treated as ties (one seed each).

    python benchmarks/tune_deep_ml100k.py [--quick] [--jobs 2]

``--quick`` runs two settings per model for a tenth of their epochs (a smoke test).
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import reclib
import reclib.neural as neural
from _results import write_results
from reclib.evaluation import evaluate_ranking


#: (model, settings); empty settings = the model's defaults. The previous defaults come first.
SEARCH = [
    ("LightGCN", {"n_factors": 64, "n_epochs": 90, "lr": 1e-2, "reg": 3e-3}),
    ("LightGCN", {"n_factors": 64, "n_epochs": 90, "lr": 1e-2, "reg": 3e-3, "n_negatives": 4}),
    ("LightGCN", {"n_factors": 64, "n_epochs": 90, "lr": 1e-2, "reg": 3e-3, "n_layers": 2}),
    ("LightGCN", {"n_factors": 64, "n_epochs": 90, "lr": 1e-2, "reg": 3e-3, "batch_size": 1024}),
    ("LightGCN", {"n_factors": 64, "n_epochs": 300, "lr": 3e-3, "reg": 3e-3}),
    ("LightGCN", {"n_factors": 64, "n_epochs": 300, "lr": 3e-3, "reg": 1e-3}),
    ("LightGCN", {"n_factors": 64, "n_epochs": 500, "lr": 2e-3, "reg": 3e-3}),
    ("LightGCN", {"n_factors": 128, "n_epochs": 300, "lr": 3e-3, "reg": 3e-3}),
    ("LightGCN", {"n_factors": 128, "n_epochs": 300, "lr": 3e-3, "reg": 2e-3}),
    ("LightGCN", {"n_factors": 128, "n_epochs": 300, "lr": 3e-3, "reg": 5e-3}),
    ("LightGCN", {"n_factors": 128, "n_epochs": 200, "lr": 5e-3, "reg": 3e-3}),
    ("LightGCN", {}),
    ("NeuMF", {"pretrain": False, "n_epochs": 20, "lr": 1e-3}),
    ("NeuMF", {"pretrain": False, "n_epochs": 25, "lr": 1e-3, "reg": 1e-3}),
    ("NeuMF", {"n_epochs": 20, "lr": 1e-3}),
    ("NeuMF", {"n_epochs": 1}),
    ("NeuMF", {}),
    ("NeuMF", {"n_epochs": 3, "lr": 3e-5}),
    ("NeuMF", {"n_epochs": 5, "lr": 3e-4, "reg": 3e-3}),
    ("NeuMF", {"alpha": 0.3}),
    ("NeuMF", {"alpha": 0.7}),
]


def validation_split():
    df = reclib.datasets.load_movielens("100k")
    train, _ = reclib.split.stratified_split(df, ratio=0.75, seed=42)
    return reclib.split.stratified_split(train, ratio=0.75, seed=1)


def run_one(job):
    name, settings, quick = job
    fit_tr, val = validation_split()
    cls = getattr(neural, name)
    params = dict(settings)
    if quick:
        params["n_epochs"] = max(1, params.get("n_epochs", cls().n_epochs) // 10)
    start = time.perf_counter()
    model = cls(random_state=0, device="cpu", **params).fit(fit_tr)
    fit_s = time.perf_counter() - start
    score = evaluate_ranking(model, fit_tr, val, k=10)["ndcg@10"]
    print(f"{name} {settings}: validation nDCG@10 {score:.4f} ({fit_s:.0f} s)", flush=True)
    return {"model": name, "settings": settings, "is_default": not settings,
            "val_ndcg@10": score, "fit_s": fit_s}


def markdown(payload) -> str:
    lines = ["# Validation search for the LightGCN and NeuMF defaults", "",
             f"Machine: {payload['machine']}; {payload['jobs']} settings fitted at once.", "",
             "Fitted on 75% of the top-N training set, scored on the other 25% (the test set is "
             "not used). An empty setting is the model's current default. Settings within about "
             "0.001 of the best are treated as ties (each setting ran with one seed); among ties the "
             "defaults keep the "
             "paper's choices (NeuMF: alpha = 0.5).", ""]
    if payload["quick"]:
        lines += ["**Quick mode: a tenth of the epochs; not the search that set the defaults.**",
                  ""]
    for name in dict.fromkeys(r["model"] for r in payload["rows"]):
        rows = [r for r in payload["rows"] if r["model"] == name]
        best = max(r["val_ndcg@10"] for r in rows)
        lines += [f"## {name}", "", "| settings | validation nDCG@10 | fit s |", "|---|---|---|"]
        for r in rows:
            label = ", ".join(f"{k}={v}" for k, v in r["settings"].items()) or "**defaults**"
            mark = " (best)" if r["val_ndcg@10"] == best else ""
            lines.append(f"| {label} | {r['val_ndcg@10']:.4f}{mark} | {r['fit_s']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--jobs", type=int, default=1, help="settings fitted at once")
    args = parser.parse_args(argv)
    search = SEARCH
    if args.quick:
        search = ([s for s in SEARCH if s[0] == "LightGCN"][:2]
                  + [s for s in SEARCH if s[0] == "NeuMF"][:2])
    jobs = [(name, settings, args.quick) for name, settings in search]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(run_one, jobs))
    else:
        rows = [run_one(job) for job in jobs]
    payload = {"machine": reclib.notebook.machine(), "quick": args.quick, "jobs": args.jobs,
               "rows": rows}
    write_results("tune_deep_ml100k", payload, markdown(payload), args.quick)


if __name__ == "__main__":
    main()
