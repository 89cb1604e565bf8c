"""reclib's layers import downward only: foundations -> data -> models -> frameworks ->
evaluation -> serving (the architecture section of CONTRIBUTING.md)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "reclib"

#: (module prefix, layer); the longest matching prefix wins. Pure metric functions sit low so
#: that training loops can report nDCG without importing the protocols.
LAYERS = [
    ("reclib._constants", 0), ("reclib._version", 0), ("reclib._validation", 0), ("reclib.core", 0),
    ("reclib._progress", 0), ("reclib._random", 0),
    ("reclib.evaluation.metrics", 1), ("reclib.evaluation.beyond", 1),
    ("reclib.evaluation.diversity", 1), ("reclib._training", 1),
    ("reclib.interactions", 2), ("reclib.features", 2), ("reclib.split", 2),
    ("reclib.datasets", 2),
    ("reclib.models", 3),
    ("reclib.neural", 4), ("reclib.keras", 4), ("reclib.text", 4),
    ("reclib.evaluation", 5),
    ("reclib.serving", 6), ("reclib.neural.distributed", 6),   # the torchrun command line scores
    ("reclib.notebook", 7), ("reclib", 7),
]


def layer_of(module: str) -> int:
    best = max((p for p, _ in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return dict(LAYERS)[best]


def module_name(path: Path) -> str:
    parts = ["reclib", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str | None = None):
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("reclib"):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("reclib"):
                if node.module is None:       # "from . import datasets": each name is a module
                    for alias in node.names:
                        yield node.lineno, f"{target}.{alias.name}"
                else:
                    yield node.lineno, target


FILES = sorted(ROOT.rglob("*.py"))


def test_every_module_has_a_layer():
    assert FILES
    for path in FILES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_downward(path):
    name = module_name(path)
    own = layer_of(name)
    upward = [(line, target) for line, target in imports_of(path)
              if layer_of(target) > own]
    assert not upward, (f"{name} (layer {own}) imports higher layers: " + ", ".join(
        f"{t} (layer {layer_of(t)}, line {line})" for line, t in upward))


def test_the_checker_catches_an_upward_import(tmp_path):
    fake = tmp_path / "base.py"
    fake.write_text("from ..evaluation.protocols import evaluate_ranking\nimport numpy\n"
                    "from . import ease\n")
    found = list(imports_of(fake, "reclib.models.base"))
    assert found == [(1, "reclib.evaluation.protocols"), (3, "reclib.models.ease")]
    assert layer_of(found[0][1]) > layer_of("reclib.models.base")
