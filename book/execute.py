"""Execute the book's notebooks into the build's jupyter-cache, several at a time.

``make book`` and ``make book-check`` run this before ``jupyter-book build``. The build then
finds every notebook's outputs in the cache and only renders the pages (jupyter-book itself
executes one notebook after another). Notebooks whose code has not changed since their last
cached run are not executed again.

Two notebooks run at a time on a two-core machine, each limited to one thread (BLAS, OpenMP,
numba, torch), so that neither steals the other's core. The chapters that measure the
machine itself (the serving load test, the bandwidth probe, two-process training, Spark on
both cores) run afterwards, alone and with the normal thread settings: pass them as
``--alone``.

Usage::

    python book/execute.py --cache _build/.jupyter_cache --jobs 2 \\
        --alone notebooks/08_serving.ipynb notebooks/09_scaling.ipynb

The notebooks are those of ``_toc.yml``; the cell timeout is ``execute.timeout`` of
``_config.yml``, as in the build.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import time
from pathlib import Path

import nbformat
import yaml
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from jupyter_cache.executors.utils import single_nb_execution

ROOT = Path(__file__).resolve().parent.parent
#: Thread settings of a notebook that shares the machine with another one.
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                     "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}


#: Starts of a notebook's kernel before its death at start-up is an error.
KERNEL_STARTS = 3
#: jupyter_client's message for a kernel that died before its first reply.
_KERNEL_DIED = "Kernel died before replying to kernel_info"


def toc_notebooks(toc: Path) -> list[Path]:
    """The ``.ipynb`` files that ``_toc.yml`` lists, in reading order."""
    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                yield node["file"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    files = [ROOT / f"{name}.ipynb" for name in walk(yaml.safe_load(toc.read_text()))]
    return [path for path in files if path.is_file()]


def _execute(path: str, timeout: int, one_thread: bool) -> tuple[str, str | None, float]:
    """Run one notebook in its own folder; return it as JSON, the error text, the seconds."""
    if one_thread:
        os.environ.update(ONE_THREAD)    # read by the kernel that nbclient starts below
    for attempt in range(1, KERNEL_STARTS + 1):
        notebook = nbformat.read(path, as_version=4)
        try:
            result = single_nb_execution(notebook, cwd=str(Path(path).parent),
                                         timeout=timeout, allow_errors=False,
                                         meta_override=True)
            break
        except RuntimeError as err:
            # a kernel that dies before its first reply ran no cell: most often two kernels
            # started at once picked the same free TCP port; a new start picks other ports
            if not str(err).startswith(_KERNEL_DIED) or attempt == KERNEL_STARTS:
                raise
    return nbformat.writes(result.nb), result.exc_string if result.err else None, result.time


def previous_seconds(cache) -> dict[str, float]:
    """The last recorded execution time of every notebook the cache has seen."""
    seconds = {}
    for record in sorted(cache.list_cache_records(), key=lambda r: r.created):
        if record.data and "execution_seconds" in record.data:
            seconds[record.uri] = float(record.data["execution_seconds"])
    return seconds


def execute_into_cache(cache_path: Path, notebooks: list[Path], jobs: int = 2,
                       alone: frozenset = frozenset(), timeout: int = 900) -> list[Path]:
    """Execute the notebooks whose code the cache has no outputs for; return those that failed.

    ``alone`` (a subset of ``notebooks``) run after the others, one at a time, with the
    thread settings of this process; the others run ``jobs`` at a time, one thread each
    when ``jobs > 1``.
    """
    cache = get_cache(str(cache_path))
    stale = []
    for path in notebooks:
        cache.add_nb_to_project(str(path))
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            stale.append(path)
    if not stale:
        print(f"all {len(notebooks)} notebooks are cached; nothing to execute")
        return []
    # longest first, so that the last notebook to start is a short one: by the last recorded
    # run; notebooks never run go first, later chapters (larger models) before earlier ones
    seconds = previous_seconds(cache)
    shared = sorted((p for p in stale if p not in alone),
                    key=lambda p: (-seconds.get(str(p), float("inf")), -notebooks.index(p)))
    solo = [p for p in stale if p in alone]
    print(f"executing {len(stale)} of {len(notebooks)} notebooks: {len(shared)} at most "
          f"{jobs} at a time, then {len(solo)} alone", flush=True)
    failed, start = [], time.perf_counter()

    def store(path: Path, text: str, error: str | None, elapsed: float) -> None:
        if error is not None:
            failed.append(path)
            print(f"FAILED  {path.name} after {elapsed:.0f} s\n{error}", file=sys.stderr, flush=True)
            return
        cache.cache_notebook_bundle(
            CacheBundleIn(nbformat.reads(text, as_version=4), str(path),
                          data={"execution_seconds": elapsed}),
            check_validity=False, overwrite=True)
        print(f"{elapsed:6.0f} s  {path.name}  (wall clock {time.perf_counter() - start:.0f} s)",
              flush=True)

    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_execute, str(path), timeout, jobs > 1): path for path in shared}
        for future in concurrent.futures.as_completed(futures):
            store(futures[future], *future.result())
    for path in solo:
        store(path, *_execute(str(path), timeout, one_thread=False))
    print(f"executed in {time.perf_counter() - start:.0f} s wall clock", flush=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True,
                        help="the jupyter-cache folder of the build (<output>/_build/.jupyter_cache)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks run at the same time")
    parser.add_argument("--alone", nargs="*", default=[], type=Path,
                        help="notebooks run afterwards, one at a time, with all threads")
    parser.add_argument("--only", nargs="*", type=Path,
                        help="execute these notebooks only (default: every notebook of _toc.yml)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    notebooks = toc_notebooks(ROOT / "_toc.yml")
    for option, paths in (("--only", args.only or []), ("--alone", args.alone)):
        unknown = {path.resolve() for path in paths} - set(notebooks)
        if unknown:
            parser.error(f"{option} names notebooks that _toc.yml does not list: "
                         f"{sorted(map(str, unknown))}")
    if args.only is not None:
        wanted = {path.resolve() for path in args.only}
        notebooks = [path for path in notebooks if path in wanted]
    timeout = int(yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]["timeout"])
    failed = execute_into_cache(args.cache, notebooks, args.jobs,
                                frozenset(path.resolve() for path in args.alone), timeout)
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(p.name for p in failed)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
