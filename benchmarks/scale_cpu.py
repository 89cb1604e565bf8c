"""CPU solvers at scale: reclib beside implicit (ALS, BPR) and Surprise (SVD) from 100k to 5M.

Usage: ``python benchmarks/scale_cpu.py [--sizes 100k,1M,5M] [--quick] [--repeats 3]``

Data: :func:`reclib.datasets.synthetic_interactions` with ``n_users = N / 20``,
``n_items = N / 50``, Zipf item popularity (``alpha=1``) and Zipf user activity
(``user_alpha=0.5``), seed 0. The rating models get star ratings ``1..5`` drawn uniformly with
a fixed seed (the SGD cost does not depend on their values). Every library fits the same
pairs with equal settings:

* ALS: 64 factors, 15 sweeps, 3 CG steps per row, :math:`\\alpha = 10`, a plain
  (unscaled) :math:`\\lambda = 0.1`; implicit is handed :math:`C` as reclib builds it.
* BPR: 64 factors, 30 epochs, learning rate 0.01, :math:`\\lambda = 0.01`, item bias on.
* BiasedMF / Surprise ``SVD``: 100 factors, 20 epochs, learning rate 0.005,
  :math:`\\lambda = \\lambda_b = 0.02`, initial standard deviation 0.1.

Each fit runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is its own:
the subprocess loads the pairs from a ``.npy`` file, builds its library's input (reclib's
``Interactions``, a CSR matrix for implicit, a ``Trainset`` for Surprise), warms the library
up on a tiny problem (so numba's cache load is not timed), then times ``fit``. Fit seconds are
the median of ``--repeats`` runs up to 1M and a single run above. Threads: OpenBLAS is pinned
to one thread for both libraries, as implicit asks; implicit and reclib's numba kernels use
every core; Surprise is single-threaded.

Writes ``benchmarks/results/scale_cpu.json`` and ``.md`` (``--quick``: ``*_quick.*``, sizes
20k and 100k, one run each). Not part of ``make test``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SIZES = {"20k": 20_000, "100k": 100_000, "1M": 1_000_000, "5M": 5_000_000}
ALS = dict(factors=64, iterations=15, cg_steps=3, alpha=10.0, reg=0.1)
BPR = dict(factors=64, epochs=30, lr=0.01, reg=0.01)
SVD = dict(factors=100, epochs=20, lr=0.005, reg=0.02, init_std=0.1)
#: (task, library, label) in the order of the table; the first library of a task is reclib.
ROWS = [("als", "reclib", "reclib ImplicitALS (cg)"), ("als", "implicit", "implicit ALS (cg)"),
        ("bpr", "reclib", "reclib BPR"), ("bpr", "implicit", "implicit BPR"),
        ("mf", "reclib", "reclib BiasedMF (sgd)"), ("mf", "surprise", "Surprise SVD")]


def make_data(n: int, path: Path) -> dict:
    from reclib.datasets.synthetic import synthetic_interactions

    df = synthetic_interactions(n // 20, n // 50, n, alpha=1.0, seed=0, user_alpha=0.5)
    ratings = np.random.default_rng(1).integers(1, 6, size=n).astype(np.float32)
    np.save(path, np.stack([df.user_id.to_numpy(), df.item_id.to_numpy(),
                            ratings.view(np.int32)]))
    return {"n_interactions": n, "n_users": n // 20, "n_items": n // 50,
            "users_seen": int(df.user_id.nunique()), "items_seen": int(df.item_id.nunique())}


def _status_mb(key: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of this process in MB, from /proc/self/status.

    Not ``ru_maxrss``: on Linux that survives ``exec`` and so would start at the resident size
    of the driver the worker was forked from."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak() -> bool:
    """Reset ``VmHWM`` to the present size (Linux >= 4.0), so the next peak is the fit's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- one fit, in a subprocess
def _reclib_fit(task, users, items, ratings, n_users, n_items, tiny):
    import numba
    import pandas as pd

    from reclib import Interactions
    from reclib.models import BPR as ReclibBPR
    from reclib.models import BiasedMF, ImplicitALS

    def build(u, i, r):
        df = pd.DataFrame({"user_id": u, "item_id": i, "rating": r})
        return Interactions.from_dataframe(df)

    def model():
        if task == "als":
            return ImplicitALS(n_factors=ALS["factors"], n_epochs=ALS["iterations"],
                               cg_steps=ALS["cg_steps"], alpha=ALS["alpha"], reg=ALS["reg"],
                               reg_exponent=0.0, random_state=0)
        if task == "bpr":
            return ReclibBPR(n_factors=BPR["factors"], n_epochs=BPR["epochs"], lr=BPR["lr"],
                             reg=BPR["reg"], random_state=0)
        return BiasedMF(n_factors=SVD["factors"], n_epochs=SVD["epochs"], lr=SVD["lr"],
                        reg=SVD["reg"], reg_bias=SVD["reg"], init_std=SVD["init_std"],
                        random_state=0)

    warm = model()
    warm.n_epochs = 1
    warm.fit(build(*tiny))
    data = build(users, items, ratings)
    del users, items, ratings
    return model(), data, numba.get_num_threads()


def _implicit_fit(task, users, items, ratings, n_users, n_items, tiny):
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    def build(u, i, r):
        X = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)),
                          shape=(int(u.max()) + 1, int(i.max()) + 1))
        X.sort_indices()
        if task == "als":   # reclib's C: c = 1 + alpha for every interaction
            X.data[:] = 1.0 + ALS["alpha"]
        return X

    def model():
        if task == "als":
            m = AlternatingLeastSquares(factors=ALS["factors"], iterations=ALS["iterations"],
                                        regularization=ALS["reg"], alpha=1.0, use_cg=True,
                                        random_state=0, num_threads=0)
            m.cg_steps = ALS["cg_steps"]
            return m
        return BayesianPersonalizedRanking(factors=BPR["factors"], iterations=BPR["epochs"],
                                           learning_rate=BPR["lr"], regularization=BPR["reg"],
                                           random_state=0, num_threads=0)

    class Fit:  # implicit's fit has its own signature
        def __init__(self, m):
            self.m = m

        def fit(self, X):
            self.m.fit(X, show_progress=False)

    Fit(model()).fit(build(*tiny))
    data = build(users, items, ratings)
    return Fit(model()), data, os.cpu_count()


def _surprise_fit(task, users, items, ratings, n_users, n_items, tiny):
    import pandas as pd
    from surprise import SVD as SurpriseSVD
    from surprise import Dataset, Reader

    def build(u, i, r):
        df = pd.DataFrame({"u": u, "i": i, "r": r})
        return Dataset.load_from_df(df, Reader(rating_scale=(1, 5))).build_full_trainset()

    def model():
        return SurpriseSVD(n_factors=SVD["factors"], n_epochs=SVD["epochs"], lr_all=SVD["lr"],
                           reg_all=SVD["reg"], init_std_dev=SVD["init_std"], random_state=0)

    model().fit(build(*tiny))
    data = build(users, items, ratings)
    return model(), data, 1


def tiny_pairs(n_items: int = 1200):
    """The warm-up problem: 50 users, every one of ``n_items`` items at least once, no pair
    twice. 1,200 items, because reclib's BPR runs its stratified kernel from 1,024 items on,
    the one every timed size uses, so the warm-up must load that one too."""
    rng = np.random.default_rng(3)
    items = np.concatenate([np.arange(n_items), rng.integers(0, n_items, 800)])
    users = rng.integers(0, 50, len(items))
    keep = np.unique(users * n_items + items, return_index=True)[1]
    return (users[keep].astype(np.int32), items[keep].astype(np.int32),
            rng.integers(1, 6, len(keep)).astype(np.float32))


def worker(task: str, library: str, path: str) -> None:
    if os.environ.get("SCALE_CPU_ONE_EPOCH") == "1":     # --memory: allocations, not time
        ALS["iterations"] = BPR["epochs"] = SVD["epochs"] = 1
    arr = np.load(path)
    users, items, ratings = arr[0], arr[1], arr[2].view(np.float32)
    del arr
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    tiny = tiny_pairs()
    build = {"reclib": _reclib_fit, "implicit": _implicit_fit, "surprise": _surprise_fit}[library]
    model, data, threads = build(task, users, items, ratings, n_users, n_items, tiny)
    del users, items, ratings
    gc.collect()
    rss_before = _status_mb("VmRSS")
    setup_peak = _status_mb("VmHWM")
    reset = _reset_peak()
    start = time.perf_counter()
    model.fit(data)
    seconds = time.perf_counter() - start
    fit_peak = _status_mb("VmHWM")
    print(json.dumps({"fit_s": seconds, "rss_before_fit_mb": rss_before,
                      "fit_peak_rss_mb": fit_peak if reset else None,
                      "peak_rss_mb": max(fit_peak, setup_peak), "threads": threads}))


# ---------------------------------------------------------------- driver
def run_one(task, library, path, timeout=3600, one_epoch=False) -> dict:
    env = dict(os.environ, SCALE_CPU_ONE_EPOCH="1" if one_epoch else "0")
    out = subprocess.run([sys.executable, __file__, "--worker", task, library, str(path)],
                         capture_output=True, text=True, timeout=timeout, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{library} {task} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> dict:
    import numba
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in ("numpy", "numba", "scipy", "implicit", "surprise"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return {"cpu": model, "cores": os.cpu_count(), "system": platform.system(),
            "python": platform.python_version(), "numba_threads": numba.get_num_threads(),
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "versions": versions}


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        "# CPU solvers at scale: fit time and peak memory", "",
        f"Command: `{payload['command']}`", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['system']}, Python {m['python']}; "
        f"numba threads {m['numba_threads']}, OpenBLAS threads {m['openblas_threads']}. "
        f"Load average (1, 5, 15 min) before: {payload['load_before']}, after: "
        f"{payload['load_after']}{'' if payload.get('complete') else ' (run cut short)'} (the machine is shared, so the two libraries of a row are "
        "measured back to back in the same run).", "",
        f"Data: synthetic power-law pairs, n_users = N/20, n_items = N/50. Settings: ALS "
        f"{ALS}; BPR {BPR}; SVD {SVD}.", "",
        "| model | N | fit s | runs | threads | peak RSS MB | peak RSS in fit MB | "
        "RSS before fit MB | fit time / peer | peak RSS / peer | peak in fit / peer |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {t: k for k, t in enumerate(("als", "bpr", "mf"))}
    rows = sorted(payload["rows"], key=lambda r: (order[r["task"]], r["n_interactions"],
                                                  r["library"] != "reclib"))
    for r in rows:
        ratio = "" if r["time_ratio"] is None else f"{r['time_ratio']:.2f}x"
        mem = "" if r["rss_ratio"] is None else f"{r['rss_ratio']:.2f}x"
        runs = ", ".join(f"{s:.2f}" for s in r["runs_s"])
        fit_peak = f"{r['fit_peak_rss_mb']:.0f}" if r.get("fit_peak_rss_mb") else ""
        fit_mem = f"{r['fit_rss_ratio']:.2f}x" if r.get("fit_rss_ratio") else ""
        mark = "" if r.get("rss_source") or not payload.get("memory_command") else " (a)"
        lines.append(f"| {r['label']} | {r['size']} | {r['fit_s']:.2f} | {runs} | "
                     f"{r['threads']} | {r['peak_rss_mb']:.0f}{mark} | {fit_peak} | "
                     f"{r['rss_before_fit_mb']:.0f} | {ratio} | {mem} | {fit_mem} |")
    lines += ["", "Fit s is the median of the runs listed. Peak RSS is the subprocess's "
              "high-water mark (library, data and fit); peak RSS in fit is the high-water mark "
              "from the start of `fit` on (reset through /proc/self/clear_refs), so it counts "
              "the data the fit is handed plus what the fit allocates. "
              "Ratios are reclib over its peer in the row below it."]
    if payload.get("not_run"):
        lines += ["", f"Not measured: {payload['not_run']}."]
    if payload.get("memory_command"):
        lines += ["", f"The memory columns come from a second pass, `{payload['memory_command']}` "
                  "(one sweep or epoch per fit: a fit allocates its arrays once, so the peak does "
                  "not grow with sweeps), load average before "
                  f"{payload['memory_load_before']}, after {payload['memory_load_after']}. "
                  "(a): not re-measured there; taken with `ru_maxrss` in the timing run, which on "
                  "Linux also counts the driver the worker was forked from, so it is a floor "
                  "near the driver's size, not the fit's."]
    return "\n".join(lines) + "\n"


def memory_pass(sizes, tasks, quick, argv) -> None:
    from _results import RESULTS, write_results

    stem = "scale_cpu_quick" if quick else "scale_cpu"
    payload = json.loads((RESULTS / f"{stem}.json").read_text())
    payload["memory_command"] = "python " + " ".join([Path(__file__).name] + (argv or sys.argv[1:]))
    payload["memory_load_before"] = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            path = Path(tmp) / f"{size}.npy"
            make_data(SIZES[size], path)
            for task in tasks:
                rows = {r["library"]: r for r in payload["rows"]
                        if r["task"] == task and r["size"] == size}
                if not rows:
                    continue
                for lib, row in rows.items():
                    m = run_one(task, lib, path, one_epoch=True)
                    print(size, task, lib, m, flush=True)
                    row.update(peak_rss_mb=m["peak_rss_mb"], rss_before_fit_mb=m["rss_before_fit_mb"],
                               fit_peak_rss_mb=m["fit_peak_rss_mb"], rss_source="memory pass")
                mine = rows["reclib"]
                peer = next(r for lib, r in rows.items() if lib != "reclib")
                mine["rss_ratio"] = mine["peak_rss_mb"] / peer["peak_rss_mb"]
                mine["fit_rss_ratio"] = (mine["fit_peak_rss_mb"] / peer["fit_peak_rss_mb"]
                                         if peer.get("fit_peak_rss_mb") else None)
    payload["memory_load_after"] = [round(x, 2) for x in os.getloadavg()]
    write_results("scale_cpu", payload, markdown(payload), quick)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100k,1M,5M",
                        help=f"comma-separated, from {sorted(SIZES)}")
    parser.add_argument("--quick", action="store_true", help="sizes 20k,100k, one run each")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", default="als,bpr,mf")
    parser.add_argument("--memory", action="store_true",
                        help="re-measure only the memory columns, with one sweep or epoch per "
                             "fit (the arrays a fit allocates do not grow with sweeps), and "
                             "merge them into the existing results file")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(*args.worker)
    sizes = ["20k", "100k"] if args.quick else args.sizes.split(",")
    for s in sizes:
        if s not in SIZES:
            raise SystemExit(f"--sizes: unknown size {s!r}; choose from {sorted(SIZES)}")
    tasks = args.tasks.split(",")
    repeats = 1 if args.quick else args.repeats
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _results import write_results

    if args.memory:
        return memory_pass(sizes, tasks, args.quick, argv)
    payload = {"command": "python " + " ".join([Path(__file__).name] + (argv or sys.argv[1:])),
               "machine": machine(), "load_before": [round(x, 2) for x in os.getloadavg()],
               "settings": {"als": ALS, "bpr": BPR, "mf": SVD}, "data": {}, "rows": []}
    # ALS first at every size, then the 1M rows of the SGD models, then their 5M rows: the
    # results are written after every (task, size), so a run cut short keeps what it measured
    plan = ([("als", s) for s in sizes] + [(t, s) for t in ("mf", "bpr") for s in sizes
                                            if SIZES[s] <= 1_000_000]
            + [(t, s) for t in ("mf", "bpr") for s in sizes if SIZES[s] > 1_000_000])
    plan = [(t, s) for t, s in plan if t in tasks]
    with tempfile.TemporaryDirectory() as tmp:
        for task, size in plan:
            n = SIZES[size]
            path = Path(tmp) / f"{size}.npy"
            if size not in payload["data"]:
                payload["data"][size] = make_data(n, path)
            runs_here = repeats if n <= 1_000_000 else 1
            pair = [row for row in ROWS if row[0] == task]
            results = {lib: [] for _, lib, _ in pair}
            for _ in range(runs_here):          # interleave the two libraries
                for _, lib, _ in pair:
                    results[lib].append(run_one(task, lib, path))
                    print(size, task, lib, results[lib][-1], flush=True)
            base = {}
            for _, lib, label in pair:
                rs = results[lib]
                row = {"task": task, "library": lib, "label": label, "size": size,
                       "n_interactions": n, "runs_s": [r["fit_s"] for r in rs],
                       "fit_s": statistics.median(r["fit_s"] for r in rs),
                       "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                       "rss_before_fit_mb": max(r["rss_before_fit_mb"] for r in rs),
                       "fit_peak_rss_mb": max((r.get("fit_peak_rss_mb") or 0.0) for r in rs),
                       "threads": rs[0]["threads"], "time_ratio": None, "rss_ratio": None}
                base[lib] = row
                payload["rows"].append(row)
            mine, peer = base["reclib"], base[pair[1][1]]
            mine["time_ratio"] = mine["fit_s"] / peer["fit_s"]
            mine["rss_ratio"] = mine["peak_rss_mb"] / peer["peak_rss_mb"]
            mine["fit_rss_ratio"] = (mine["fit_peak_rss_mb"] / peer["fit_peak_rss_mb"]
                                     if peer["fit_peak_rss_mb"] else None)
            payload["load_after"] = [round(x, 2) for x in os.getloadavg()]
            payload["complete"] = (task, size) == plan[-1]
            write_results("scale_cpu", payload, markdown(payload), args.quick)


if __name__ == "__main__":
    main()
