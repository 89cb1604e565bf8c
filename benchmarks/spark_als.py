"""Spark MLlib's implicit ALS beside reclib's ImplicitALS on one machine.

Usage: ``python benchmarks/spark_als.py [--quick] [--sizes 1M,10M:3] [--master local[2]]
[--scale-epochs 15] [--driver-memory 6g] [--models spark,exact,cg] [--add] [--note TEXT]``

``--add`` runs only the synthetic sizes given and merges them into the existing results file
(MovieLens 100K and the other sizes are kept, and so are the regularisation and alpha chosen
there); the file records the first run and each addition. ``--models`` leaves out fits on the
synthetic sets, e.g. ``--sizes 10M --models spark,cg --add`` for 15 sweeps at 10M without the
exact solver, which would take more than half an hour there.

Both sides fit the same objective: Spark's ``ALS(implicitPrefs=True)`` (through
:class:`reclib.spark.SparkALS`) and ``ImplicitALS(reg_basis="count", reg_exponent=1)``, i.e.
:math:`c_{ui} = 1 + \\alpha` on every interaction and the ridge weight
:math:`\\lambda n_u` per row, at equal factors, :math:`\\lambda`, :math:`\\alpha` and sweeps.
reclib runs both its exact (Cholesky, as Spark) and its conjugate-gradient solver (3 steps).

* MovieLens 100K, the top-N protocol of chapter 4: every rating is an interaction,
  ``stratified_split(df, 0.75, seed=42)``, full ranking of the unseen items, k = 10.
  :math:`\\lambda` and :math:`\\alpha` are chosen on a validation split carved from the training
  set (``stratified_split(train, 0.75, seed=1)``) with reclib's CG solver, never on the test
  set; both libraries then use the winner. ImplicitALS at its own defaults is listed for
  context.
* Synthetic power-law data (:func:`reclib.datasets.synthetic_interactions`,
  ``n_users = N / 20``, ``n_items = N / 50``, as in ``scale_cpu.py``), split the same way;
  nDCG@10 on 2,000 sampled test users (full ranking over every item).

Fit seconds are wall time of ``fit`` on warmed-up code (numba compiled, the JVM started and
run once on a tiny problem); Spark's time is also given without moving data in and out
(``ALS.fit`` alone). Threads: Spark ``local[2]`` (two task threads, one JVM); reclib's numba
kernels 2 threads; OpenBLAS 1 thread. The machine is shared, so the load average is recorded
around every fit. One run per fit (no repeats: Spark's fits are minutes at scale).

Writes ``benchmarks/results/spark_als.json`` and ``.md`` (``--quick``: ``*_quick.*``, with a
small synthetic size and few sweeps). Not part of ``make test``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402

import reclib  # noqa: E402
from reclib.evaluation import evaluate_ranking  # noqa: E402
from reclib.models import ImplicitALS  # noqa: E402
from reclib.notebook import machine  # noqa: E402
from reclib.spark import SparkALS, java_executable, local_session  # noqa: E402

SIZES = {"100k": 100_000, "1M": 1_000_000, "3M": 3_000_000, "10M": 10_000_000}
FACTORS, EPOCHS = 64, 15
GRID = [dict(reg=r, alpha=a) for a in (1.0, 10.0) for r in (0.03, 0.1, 0.3, 1.0)]
EVAL_USERS = 2_000
#: implicit's published Spark comparison (not re-run here): seconds per iteration, averaged
#: over 5 iterations, on MovieLens 20M filtered to 4+ stars, at 256 factors, Spark built with
#: native BLAS, an Intel i7-7820x CPU and a GTX 1080 Ti GPU (implicit's benchmarks/README.md).
PUBLISHED = {"source": "https://github.com/benfred/implicit/blob/main/benchmarks/README.md",
             "dataset": "MovieLens 20M (ratings of 4 stars and more)", "factors": 256,
             "hardware": "Intel i7-7820x CPU, NVIDIA GTX 1080 Ti GPU",
             "spark_mllib_s_per_iteration": 54.0, "implicit_cpu_s_per_iteration": 6.52,
             "implicit_gpu_s_per_iteration": 0.79}


def java_version() -> str:
    java = java_executable()
    if java is None:
        return "none"
    out = subprocess.run([java, "-version"], capture_output=True, text=True)
    return (out.stderr or out.stdout).splitlines()[0]


def timed_fit(model, train) -> dict:
    load = os.getloadavg()[0]
    start = time.perf_counter()
    model.fit(train)
    out = {"fit_s": time.perf_counter() - start, "load_before": load,
           "load_after": os.getloadavg()[0]}
    if isinstance(model, SparkALS):
        out["spark_als_fit_s"] = model.spark_seconds_
    return out


def scores(model, train, test) -> dict:
    m = evaluate_ranking(model, train, test, k=10)
    return {"ndcg@10": m["ndcg@10"], "precision@10": m["precision@10"],
            "recall@10": m["recall@10"]}


#: ``--models`` names of the three fits, in the order of the tables
MODELS = {"spark": "Spark MLlib ALS", "exact": "reclib ImplicitALS exact (count)",
          "cg": "reclib ImplicitALS cg (count)"}


def block_key(label: str, epochs: int) -> str:
    """A synthetic block's name in the results: the size, with ``:<sweeps>`` unless it ran the
    default number of sweeps (so a 3-sweep and a 15-sweep run of one size are both kept)."""
    return label if epochs == EPOCHS else f"{label}:{epochs}"


def models(params: dict, epochs: int, master: str, driver_memory: str,
           keep=tuple(MODELS.values())) -> dict:
    common = dict(n_factors=FACTORS, n_epochs=epochs, random_state=0, **params)
    fits = {
        "Spark MLlib ALS": SparkALS(master=master, driver_memory=driver_memory, **common),
        "reclib ImplicitALS exact (count)": ImplicitALS(reg_basis="count", solver="exact",
                                                        **common),
        "reclib ImplicitALS cg (count)": ImplicitALS(reg_basis="count", solver="cg",
                                                     cg_steps=3, **common),
    }
    return {name: model for name, model in fits.items() if name in keep}


def movielens(master: str, driver_memory: str, quick: bool) -> dict:
    df = reclib.datasets.load_movielens("100k")
    train, test = reclib.split.stratified_split(df, ratio=0.75, seed=42)
    fit_tr, val = reclib.split.stratified_split(train, ratio=0.75, seed=1)
    epochs = 3 if quick else EPOCHS
    search = []
    for params in (GRID[:2] if quick else GRID):
        model = ImplicitALS(n_factors=FACTORS, n_epochs=epochs, reg_basis="count",
                            random_state=0, **params).fit(fit_tr)
        search.append({"params": params,
                       "val_ndcg@10": evaluate_ranking(model, fit_tr, val)["ndcg@10"]})
    best = max(search, key=lambda s: s["val_ndcg@10"])["params"]
    print(f"ml-100k: chosen on validation {best}", flush=True)
    rows = {}
    for name, model in models(best, epochs, master, driver_memory).items():
        print(f"ml-100k: {name} ...", flush=True)
        rows[name] = {**timed_fit(model, train), **scores(model, train, test)}
    default = ImplicitALS(random_state=0)
    rows["reclib ImplicitALS defaults"] = {**timed_fit(default, train),
                                           **scores(default, train, test),
                                           "params": default.get_params()}
    return {"params": {"n_factors": FACTORS, "n_epochs": epochs, **best}, "search": search,
            "shape": [train.n_users, train.n_items], "train_interactions": train.n_interactions,
            "rows": rows}


def synthetic(label: str, params: dict, epochs: int, master: str, driver_memory: str,
              keep=tuple(MODELS.values())) -> dict:
    n = SIZES[label]
    start = time.perf_counter()
    df = reclib.datasets.synthetic_interactions(n // 20, n // 50, n, alpha=1.0, seed=0,
                                                user_alpha=0.5)
    full = reclib.Interactions.from_dataframe(df, rating_col=None)
    del df
    train, test = reclib.split.stratified_split(full, ratio=0.75, seed=42)
    users = np.unique(test.users)
    pick = np.random.default_rng(0).choice(users, size=min(EVAL_USERS, len(users)),
                                           replace=False)
    test = test.subset(np.flatnonzero(np.isin(test.users, pick)))
    print(f"synthetic {label}: data ready in {time.perf_counter() - start:.0f} s", flush=True)
    rows = {}
    for name, model in models(params, epochs, master, driver_memory, keep).items():
        print(f"synthetic {label}: {name} ...", flush=True)
        rows[name] = {**timed_fit(model, train), **scores(model, train, test)}
        print(f"  {rows[name]}", flush=True)
        del model
    return {"n_interactions": n, "train_interactions": train.n_interactions,
            "shape": [train.n_users, train.n_items], "n_epochs": epochs,
            "eval_users": len(pick), "rows": rows}


def warm_up(master: str, driver_memory: str) -> None:
    """Compile numba's kernels and run the JVM's ALS once, outside every clock."""
    tiny = reclib.datasets.synthetic_interactions(200, 100, 2_000, seed=1)
    data = reclib.Interactions.from_dataframe(tiny, rating_col=None)
    for solver in ("exact", "cg"):
        ImplicitALS(n_factors=FACTORS, n_epochs=1, reg_basis="count", solver=solver).fit(data)
    SparkALS(n_factors=FACTORS, n_epochs=2, master=master, driver_memory=driver_memory,
             random_state=0).fit(data)


def markdown(res: dict) -> str:
    ml = res["movielens_100k"]
    p = ml["params"]
    lines = [
        "# Spark MLlib ALS beside reclib ImplicitALS",
        "",
        f"Machine: {res['machine']}; Spark {res['spark_version']} ({res['master']}), "
        f"{res['java']}; reclib numba threads {res['numba_threads']}, OpenBLAS threads "
        f"{res['openblas_threads']}. Load average (1 min) at the start {res['load_start'][0]:.1f}"
        f", at the end {res['load_end'][0]:.1f} (shared machine).",
        "",
        f"Same objective on both sides: {p['n_factors']} factors, {p['n_epochs']} sweeps, "
        f"lambda = {p['reg']} times the row's interaction count, alpha = {p['alpha']} "
        "(chosen on a validation split of the training set).",
        "",
        f"## MovieLens 100K (chapter 4 split, {ml['train_interactions']:,} training "
        "interactions)",
        "",
        "| model | nDCG@10 | P@10 | fit s | Spark ALS.fit s | load |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in ml["rows"].items():
        spark = f"{r['spark_als_fit_s']:.1f}" if "spark_als_fit_s" in r else ""
        lines.append(f"| {name} | {r['ndcg@10']:.4f} | {r['precision@10']:.4f} | "
                     f"{r['fit_s']:.2f} | {spark} | {r['load_before']:.1f} |")
    for label, syn in res["synthetic"].items():
        lines += ["", f"## Synthetic {label.split(':')[0]} ({syn['train_interactions']:,} training "
                  f"interactions, {syn['shape'][0]:,} users x {syn['shape'][1]:,} items, "
                  f"{syn['n_epochs']} sweeps; nDCG on {syn['eval_users']:,} test users)", "",
                  "| model | nDCG@10 | P@10 | fit s | s per sweep | load |",
                  "|---|---|---|---|---|---|"]
        for name, r in syn["rows"].items():
            lines.append(f"| {name} | {r['ndcg@10']:.4f} | {r['precision@10']:.4f} | "
                         f"{r['fit_s']:.1f} | {r['fit_s'] / syn['n_epochs']:.2f} | "
                         f"{r['load_before']:.1f} |")
    lines += ["", "## Summary", ""]
    for s in res["summary"]:
        lines.append(f"- {s}")
    pub = res["published"]
    lines += ["", f"Published for comparison (not re-run): implicit's benchmark on "
              f"{pub['dataset']} at {pub['factors']} factors ({pub['hardware']}): Spark MLlib "
              f"{pub['spark_mllib_s_per_iteration']} s per iteration, implicit "
              f"{pub['implicit_cpu_s_per_iteration']} s on the CPU and "
              f"{pub['implicit_gpu_s_per_iteration']} s on the GPU ({pub['source']})."]
    if res.get("notes"):
        lines += [""] + [f"Note: {n}" for n in res["notes"]]
    for a in res.get("additions", []):
        lines += ["", f"Added later (`--add`): synthetic {', '.join(a['sizes'])}, by "
                  f"`{a['command']}` on {a['date']}; the rest is from "
                  f"`{res['base_run']['command']}` on {res['base_run']['date']}."]
    return "\n".join(lines) + "\n"


def summary(res: dict) -> list[str]:
    out = []
    for label, block in [("MovieLens 100K", res["movielens_100k"])] + \
            [(f"synthetic {k.split(':')[0]}, {v['n_epochs']} sweeps", v)
             for k, v in res["synthetic"].items()]:
        rows = block["rows"]
        spark = rows.get("Spark MLlib ALS")
        for name in ("reclib ImplicitALS exact (count)", "reclib ImplicitALS cg (count)"):
            r = rows.get(name)
            if spark is None or r is None:
                continue
            out.append(f"{label}, {name}: nDCG@10 {r['ndcg@10']:.4f} vs Spark "
                       f"{spark['ndcg@10']:.4f} (difference "
                       f"{r['ndcg@10'] - spark['ndcg@10']:+.4f}); fit {r['fit_s']:.2f} s vs "
                       f"{spark['fit_s']:.2f} s, Spark takes {spark['fit_s'] / r['fit_s']:.1f}x "
                       f"as long ({spark['spark_als_fit_s'] / r['fit_s']:.1f}x counting "
                       f"ALS.fit alone)")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few sweeps")
    parser.add_argument("--sizes", default="1M,10M",
                        help=f"synthetic sizes, comma-separated, of {sorted(SIZES)}; "
                             f"'10M:3' runs that size with 3 sweeps instead of --scale-epochs")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--scale-epochs", type=int, default=EPOCHS,
                        help="sweeps on the synthetic sets")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"fits on the synthetic sets, comma-separated, of {list(MODELS)}")
    parser.add_argument("--add", action="store_true",
                        help="run only the synthetic sizes and merge them into the existing "
                             "results file")
    parser.add_argument("--note", action="append", default=[],
                        help="a sentence recorded with the results")
    args = parser.parse_args()
    sizes = {}
    for item in (["100k:2"] if args.quick else [s for s in args.sizes.split(",") if s]):
        label, _, sweeps = item.partition(":")
        if label not in SIZES or (sweeps and not sweeps.isdigit()):
            parser.error(f"--sizes: {item!r} must be a size of {sorted(SIZES)}, optionally "
                         f"with ':<sweeps>'")
        sizes[label] = int(sweeps) if sweeps else args.scale_epochs
    chosen = [m for m in args.models.split(",") if m]
    unknown = [m for m in chosen if m not in MODELS]
    if unknown or not chosen:
        parser.error(f"--models: {args.models!r} must name some of {list(MODELS)}")
    keep = tuple(MODELS[m] for m in chosen)
    earlier = None
    if args.add:
        path = Path(__file__).resolve().parent / "results" / \
            ("spark_als_quick.json" if args.quick else "spark_als.json")
        if not path.exists():
            parser.error(f"--add: there is no {path.name} to add to; run without --add first")
        earlier = json.loads(path.read_text())
    res = {"machine": machine(), "numba_threads": numba.get_num_threads(),
           "openblas_threads": os.environ["OPENBLAS_NUM_THREADS"], "master": args.master,
           "java": java_version(), "load_start": list(os.getloadavg()), "quick": args.quick,
           "published": PUBLISHED, "notes": args.note}
    with local_session(args.master, args.driver_memory) as spark:
        res["spark_version"] = spark.version
        warm_up(args.master, args.driver_memory)
        if earlier is None:
            res["movielens_100k"] = movielens(args.master, args.driver_memory, args.quick)
        else:
            res["movielens_100k"] = earlier["movielens_100k"]
        params = {k: res["movielens_100k"]["params"][k] for k in ("reg", "alpha")}
        res["synthetic"] = {}
        for label, epochs in sizes.items():
            res["synthetic"][block_key(label, epochs)] = synthetic(
                label, params, epochs, args.master, args.driver_memory, keep)
    res["load_end"] = list(os.getloadavg())
    if earlier is not None:
        res = merge(earlier, res, list(res["synthetic"]))
    res["summary"] = summary(res)
    write_results("spark_als", res, markdown(res), args.quick)


def merge(earlier: dict, new: dict, sizes: list) -> dict:
    """``earlier`` with the synthetic blocks of ``new`` added (a block of the same name is
    replaced), and a record of the addition beside the first run's command."""
    out = dict(earlier)
    blocks = {block_key(k.split(":")[0], v["n_epochs"]): v
              for k, v in earlier["synthetic"].items()}
    blocks.update(new["synthetic"])
    order = sorted(blocks, key=lambda k: (SIZES[k.split(":")[0]], blocks[k]["n_epochs"]))
    out["synthetic"] = {k: blocks[k] for k in order}
    out.setdefault("base_run", {"command": earlier["command"], "date": earlier["date"]})
    out["additions"] = earlier.get("additions", []) + [{
        "sizes": sizes, "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "date": time.strftime("%Y-%m-%d"), "load_start": new["load_start"],
        "load_end": new["load_end"], "notes": new["notes"]}]
    out["notes"] = earlier.get("notes", []) + new["notes"]
    return out


if __name__ == "__main__":
    main()
