"""book/execute.py: notebooks executed into the build's jupyter-cache, several at a time."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_cache import get_cache

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("book_execute", ROOT / "book" / "execute.py")
execute = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = execute     # the worker processes find _execute by this name
spec.loader.exec_module(execute)


def _notebook(path: Path, source: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _output(cache, path: Path) -> str:
    _, merged = cache.merge_match_into_notebook(nbformat.read(path, as_version=4))
    return "".join(out.get("text", "") for out in merged.cells[0].outputs)


def test_every_notebook_of_the_repository_is_in_the_toc_in_reading_order():
    listed = execute.toc_notebooks(ROOT / "_toc.yml")
    assert set(listed) == set((ROOT / "notebooks").glob("*.ipynb"))
    chapters = [p.name for p in listed if p.name[0].isdigit()]
    assert chapters == sorted(chapters)


def test_shared_notebooks_get_one_thread_the_alone_ones_keep_the_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    code = "import os; print(os.getcwd() == {cwd!r}, os.environ.get('OMP_NUM_THREADS'))"
    paths = [_notebook(tmp_path / f"n{k}.ipynb", code.format(cwd=str(tmp_path)) + f"  # {k}")
             for k in range(3)]
    cache_dir = tmp_path / "cache"
    failed = execute.execute_into_cache(cache_dir, paths, jobs=2, alone=frozenset({paths[2]}),
                                        timeout=120)
    assert failed == []
    cache = get_cache(str(cache_dir))
    # cached under the notebook's own hash, so that the book build uses the outputs
    assert [_output(cache, p) for p in paths] == ["True 1\n", "True 1\n", "True None\n"]
    record = cache.match_cache_notebook(nbformat.read(paths[0], as_version=4))
    assert record.data["execution_seconds"] > 0
    # a second run finds everything cached and executes nothing
    assert execute.execute_into_cache(cache_dir, paths, jobs=2, timeout=120) == []


def test_after_an_edit_only_the_edited_notebook_runs_again(tmp_path, capsys):
    paths = [_notebook(tmp_path / f"n{k}.ipynb", f"print({k})") for k in range(3)]
    cache_dir = tmp_path / "cache"
    assert execute.execute_into_cache(cache_dir, paths, jobs=2, timeout=120) == []
    assert execute.execute_into_cache(cache_dir, paths, jobs=2, timeout=120) == []
    assert "nothing to execute" in capsys.readouterr().out
    _notebook(paths[1], "print('edited')")
    assert execute.execute_into_cache(cache_dir, paths, jobs=2, timeout=120) == []
    out = capsys.readouterr().out
    assert "executing 1 of 3 notebooks" in out and "n1.ipynb" in out
    assert "n0.ipynb" not in out and "n2.ipynb" not in out
    assert _output(get_cache(str(cache_dir)), paths[1]) == "edited\n"


def test_a_failing_notebook_is_reported_and_not_cached(tmp_path, capsys):
    good = _notebook(tmp_path / "good.ipynb", "print('fine')")
    bad = _notebook(tmp_path / "bad.ipynb", "raise ValueError('broken cell')")
    cache_dir = tmp_path / "cache"
    assert execute.execute_into_cache(cache_dir, [good, bad], jobs=2, timeout=120) == [bad]
    assert "broken cell" in capsys.readouterr().err
    cache = get_cache(str(cache_dir))
    with pytest.raises(KeyError):
        cache.match_cache_notebook(nbformat.read(bad, as_version=4))
    assert _output(cache, good) == "fine\n"


@pytest.mark.parametrize("argv, message", [
    (["--cache", "c", "--jobs", "0"], "--jobs must be at least 1, got 0"),
    (["--cache", "c", "--alone", "notebooks/nope.ipynb"], "--alone names notebooks"),
    (["--cache", "c", "--only", "README.md"], "--only names notebooks"),
])
def test_bad_arguments_are_named(argv, message, capsys):
    with pytest.raises(SystemExit):
        execute.main(argv)
    assert message in capsys.readouterr().err


def test_a_kernel_that_dies_at_start_up_is_started_again(tmp_path, monkeypatch):
    path = _notebook(tmp_path / "nb.ipynb", "print(1)")
    real, calls = execute.single_nb_execution, []

    def flaky(*args, **kwargs):              # the first start dies, as on a port collision
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(*args, **kwargs)

    monkeypatch.setattr(execute, "single_nb_execution", flaky)
    text, error, _ = execute._execute(str(path), 60, False)
    assert error is None and len(calls) == 2
    assert "1" in nbformat.reads(text, as_version=4).cells[0].outputs[0]["text"]


def test_a_kernel_that_never_starts_is_an_error_and_other_errors_are_not_retried(
        tmp_path, monkeypatch):
    path = _notebook(tmp_path / "nb.ipynb", "print(1)")
    calls = []

    def dead(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("Kernel died before replying to kernel_info")

    monkeypatch.setattr(execute, "single_nb_execution", dead)
    with pytest.raises(RuntimeError, match="Kernel died"):
        execute._execute(str(path), 60, False)
    assert len(calls) == execute.KERNEL_STARTS

    def other(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("something else")

    calls.clear()
    monkeypatch.setattr(execute, "single_nb_execution", other)
    with pytest.raises(RuntimeError, match="something else"):
        execute._execute(str(path), 60, False)
    assert len(calls) == 1
