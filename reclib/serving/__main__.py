"""``python -m reclib.serving --model PATH --port 8000``: serve a model over HTTP.

Every option can also come from the environment (``RECLIB_SERVING_<OPTION>``, e.g.
``RECLIB_SERVING_MODEL``, ``RECLIB_SERVING_INDEX=hnsw``); the command line wins.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

_OPTIONS = [
    # name, type, default, help
    ("model", str, None, "model file (Recommender.save) or serving store (ModelStore.save)"),
    ("host", str, "127.0.0.1", "address to bind (loopback by default)"),
    ("port", int, 8000, "TCP port"),
    ("index", str, "exact", "index kind: exact, hnsw or ivf"),
    ("m", int, 32, "HNSW graph degree"),
    ("ef_construction", int, 128, "HNSW candidate list while building"),
    ("ef_search", int, 128, "HNSW candidate list while searching"),
    ("nlist", int, None, "IVF cells (default about 4 sqrt(n_items))"),
    ("nprobe", int, 16, "IVF cells scanned per query"),
    ("index_file", str, None, "faiss index cache: read if present, else built and written"),
    ("event_log", str, None, "SQLite event log (default: MODEL.events.sqlite)"),
    ("no_event_log", bool, False, "keep events in memory only (not durable)"),
    ("text_source", str, "wheel", "where the sentence encoder of POST /items loads from: "
                                  "wheel (offline) or hub"),
]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m reclib.serving",
        description="Serve a fitted reclib model: /recommend, /events, /items/{id}/similar, "
                    "/health, /metrics and a web page at /. Each option may also be set as "
                    "RECLIB_SERVING_<NAME> in the environment.")
    for name, kind, default, text in _OPTIONS:
        env = f"RECLIB_SERVING_{name.upper()}"
        raw = os.environ.get(env)
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            value = default if raw is None else raw.strip().lower() in ("1", "true", "yes")
            parser.add_argument(flag, action="store_true", default=value,
                                help=f"{text} [env {env}]")
            continue
        try:
            value = default if raw is None else kind(raw)
        except ValueError:
            parser.error(f"{env} == {raw!r} is not a valid {kind.__name__}")
        parser.add_argument(flag, type=kind, default=value,
                            help=f"{text} [env {env}; default {default}]")
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error("--model is required (or set RECLIB_SERVING_MODEL)")
    if args.index not in ("exact", "hnsw", "ivf"):
        parser.error(f"--index == {args.index!r}, must be exact, hnsw or ivf")
    if args.text_source not in ("wheel", "hub"):
        parser.error(f"--text-source == {args.text_source!r}, must be wheel or hub")
    return args


def build_service(args: argparse.Namespace):
    """Store, index and event log from parsed options (replays the log)."""
    from .events import EventLog
    from .index import build_index, load_or_build
    from .service import Service
    from .store import load_any

    store = load_any(args.model)
    params = {"exact": {}, "hnsw": {"m": args.m, "ef_construction": args.ef_construction,
                                    "ef_search": args.ef_search},
              "ivf": {"nlist": args.nlist, "nprobe": args.nprobe}}[args.index]
    if args.index_file and args.index != "exact":
        index = load_or_build(store.item_vectors, args.index, args.index_file, **params)
    else:
        index = build_index(store.item_vectors, args.index, **params)
    log = None
    if not args.no_event_log:
        log = EventLog(args.event_log or f"{args.model}.events.sqlite")
    text_encoder = None
    if store.text_map is not None:                # loaded on the first POST /items
        from ..text.encoder import SentenceEncoder
        text_encoder = SentenceEncoder(source=args.text_source, cache=False)
    return Service(store, index, log, text_encoder=text_encoder)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import uvicorn

    from .app import create_app
    from .store import StoreError

    try:
        # One request is one small solve or search: BLAS threads would only contend for the
        # cores the event loop and the clients need.
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:
        pass
    try:
        service = build_service(args)
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    logging.getLogger("reclib.serving").info(
        "serving %s: %d users, %d items, index %s, %d events replayed", args.model,
        service.store.n_users, service.store.n_items, service.index.params(), service.replayed)
    options = {"log_level": "warning", "access_log": False}
    try:
        import uvloop  # noqa: F401  (faster event loop when installed)
        options["loop"] = "uvloop"
    except ImportError:
        pass
    try:
        import httptools  # noqa: F401
        options["http"] = "httptools"
    except ImportError:
        pass
    try:
        uvicorn.run(create_app(service), host=args.host, port=args.port, **options)
    finally:
        if service.log is not None:
            service.log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
