"""Serving benchmark: ANN recall and latency against exact search, and the HTTP service under load.

Catalogues: the 1,682 MovieLens 100K items (iALS factors, 64 dimensions) and a synthetic
catalogue of ``--n-items`` (default 1,000,000) 64-dimensional vectors drawn around 1,000
centres (synthetic: the honest source at this scale). For each, recall@10 of faiss HNSW (over
efSearch) and IVF (over nprobe) against the exact index, and the mean query time on one
thread; then the service is started on 127.0.0.1 over the large catalogue (HNSW) and driven by
``reclib.serving.loadtest``: the recommend workload and the 80/20 mixed one (durable events).

    python benchmarks/serving.py                     # the full run (minutes)
    python benchmarks/serving.py --n-items 100000 --duration 10    # a smaller one
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reclib.serving import ExactIndex, HNSWIndex, IVFIndex, ModelStore, recall_at_k  # noqa: E402
from reclib.serving.loadtest import request_maker, run_load  # noqa: E402


def synthetic_store(n_items: int, n_users: int = 10_000, dim: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim)).astype(np.float32)
    items = centres[rng.integers(1000, size=n_items)] + 0.5 * rng.standard_normal(
        (n_items, dim)).astype(np.float32)
    users = centres[rng.integers(1000, size=n_users)] + 0.5 * rng.standard_normal(
        (n_users, dim)).astype(np.float32)
    rows = np.repeat(np.arange(n_users), 20)
    cols = rng.integers(n_items, size=len(rows))
    seen = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
    seen.data[:] = 1.0
    pop = np.bincount(cols, minlength=n_items).astype(float)
    # iALS-style fold-in settings so events re-solve users as they would for a real model
    foldin = {"reg": 0.03, "alpha": 10.0, "confidence": "linear", "epsilon": 1.0,
              "binary": True, "reg_exponent": 1.0}
    return ModelStore(np.arange(n_users), np.arange(n_items), users, items, seen, pop, foldin,
                      "synthetic")


def movielens_store():
    from reclib import Interactions
    from reclib.datasets import load_movielens
    from reclib.models import ImplicitALS
    from reclib.serving import export_model
    model = ImplicitALS(n_factors=64, random_state=0).fit(
        Interactions.from_dataframe(load_movielens("100k")))
    return export_model(model)


def timed_search(index, queries, k=10):
    start = time.perf_counter()
    found = np.vstack([index.search(q[None, :], k)[0] for q in queries])
    return found, (time.perf_counter() - start) / len(queries) * 1e3


def sweep(store, n_queries, ef_values, nprobe_values, index_dir: Path, label: str):
    rng = np.random.default_rng(1)
    queries = store.user_vectors[rng.choice(store.n_users, n_queries, replace=False)]
    exact = ExactIndex(store.item_vectors)
    truth, exact_ms = timed_search(exact, queries)
    rows = [{"catalogue": label, "index": "exact", "param": None, "recall@10": 1.0,
             "ms_per_query": exact_ms}]
    start = time.perf_counter()
    hnsw = HNSWIndex(store.item_vectors, m=32, ef_construction=128, threads=os.cpu_count())
    build = time.perf_counter() - start
    hnsw._faiss.omp_set_num_threads(1)
    if label != "movielens":
        hnsw._faiss.write_index(hnsw.index, str(index_dir / "hnsw.faiss"))
    for ef in ef_values:
        hnsw.ef_search = ef
        found, ms = timed_search(hnsw, queries)
        rows.append({"catalogue": label, "index": "hnsw", "param": f"efSearch={ef}",
                     "recall@10": recall_at_k(found, truth), "ms_per_query": ms,
                     "build_s": build})
    start = time.perf_counter()
    ivf = IVFIndex(store.item_vectors, threads=os.cpu_count())
    build = time.perf_counter() - start
    ivf._faiss.omp_set_num_threads(1)
    for nprobe in nprobe_values:
        ivf.nprobe = nprobe
        found, ms = timed_search(ivf, queries)
        rows.append({"catalogue": label, "index": "ivf", "param": f"nlist={ivf.nlist},nprobe={nprobe}",
                     "recall@10": recall_at_k(found, truth), "ms_per_query": ms,
                     "build_s": build})
    return rows


def serve_and_load(store_path: Path, index_file: Path, ef: int, duration: float, log: Path,
                   connections=(4, 8)):
    port = 18000 + os.getpid() % 1000
    cmd = [sys.executable, "-m", "reclib.serving", "--model", str(store_path), "--port",
           str(port), "--index", "hnsw", "--ef-search", str(ef), "--index-file", str(index_file),
           "--event-log", str(log)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        store = ModelStore.load(store_path)
        results = {"runs": []}
        for n_conn in connections:
            for workload in ("recommend", "mixed"):
                make = request_maker(workload, store.user_ids[:5000], store.item_ids, seed=2)
                out = asyncio.run(run_load("127.0.0.1", port, make, duration, 200_000, n_conn))
                lat = np.asarray(out.pop("latencies_ms"))
                out.pop("routes")
                out["histogram_ms"] = np.histogram(lat, bins=np.geomspace(0.2, 200, 41))[0].tolist()
                out.update(workload=workload, connections=n_conn)
                results["runs"].append(out)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        fold = [line for line in text.splitlines() if line.startswith("reclib_foldin_seconds_")]
        total = float(next(x for x in fold if x.startswith("reclib_foldin_seconds_sum")).split()[1])
        count = float(next(x for x in fold if x.startswith("reclib_foldin_seconds_count")).split()[1])
        results["foldin_mean_ms"] = total / max(count, 1) * 1e3
        return results, " ".join(cmd)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-items", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--ef", type=int, default=128, help="efSearch of the served index")
    parser.add_argument("--connections", default="4,8",
                        help="closed-loop client counts, comma-separated")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/serving"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        tmp = Path(tmp)
        rows += sweep(movielens_store(), 200, [8, 16, 32, 64], [1, 2, 4, 8], tmp, "movielens")
        big = synthetic_store(args.n_items)
        rows += sweep(big, args.queries, [16, 32, 64, 128, 256], [1, 4, 16, 64], tmp,
                      f"synthetic-{args.n_items}")
        store_path = big.save(tmp / "big.npz")
        note = tmp / "hnsw.faiss.json"
        import hashlib
        note.write_text(json.dumps({"kind": "hnsw", "params": {"m": 32, "ef_construction": 128,
                                                                "ef_search": args.ef},
                                    "sha256": hashlib.sha256(big.item_vectors.tobytes()).hexdigest()}))
        connections = tuple(int(c) for c in args.connections.split(","))
        load, command = serve_and_load(store_path, tmp / "hnsw.faiss", args.ef, args.duration,
                                       tmp / "events.sqlite", connections)
    result = {"machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "command": " ".join(["python", "benchmarks/serving.py"] + sys.argv[1:]),
              "server_command": command, "n_items": args.n_items, "dim": 64,
              "served_ef_search": args.ef, "sweep": rows, "load": load}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    lines = ["# Serving benchmark", "", f"Machine: {result['machine']}; load average before "
             f"{load_before[0]:.2f}, after {result['load_average_after'][0]:.2f} (shared).",
             f"Command: `{result['command']}`", "",
             "| catalogue | index | parameter | recall@10 | ms/query |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['catalogue']} | {r['index']} | {r['param'] or ''} | "
                     f"{r['recall@10']:.3f} | {r['ms_per_query']:.3f} |")
    lines += ["", f"Service on {args.n_items:,} items (HNSW efSearch={args.ef}), one uvicorn "
              f"worker, closed-loop clients on the same 2 cores, {args.duration:g} s per run:", "",
              "| workload | connections | requests | errors | req/s | p50 ms | p95 ms | p99 ms |",
              "|---|---|---|---|---|---|---|---|"]
    for x in load["runs"]:
        lines.append(f"| {x['workload']} | {x['connections']} | {x['requests']} | {x['errors']} | "
                     f"{x['throughput_rps']:.0f} | {x['p50_ms']:.2f} | {x['p95_ms']:.2f} | "
                     f"{x['p99_ms']:.2f} |")
    lines += ["", f"Mean fold-in time per event batch (server side): {load['foldin_mean_ms']:.3f} ms"]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
