"""The model file format: named arrays plus a JSON header, never a pickle.

A file is a NumPy ``.npz`` archive (a zip of ``.npy`` members, read with
``allow_pickle=False``) holding

``__header__``
    UTF-8 JSON as a ``uint8`` array: ``{"format": "reclib-model", "format_version": 2,
    "reclib_version", "class", "params", "scalars", "arrays"}``, where ``arrays`` gives each
    array's dtype, shape and sha256;
one member per array
    named by kind: ``attr/<name>`` for a fitted array attribute, ``sparse/<name>/<part>`` for
    the ``data``/``indices``/``indptr``/``shape`` of a fitted sparse matrix, and
    ``weights/<name>`` for a network's weights by their framework's own names (a torch
    ``state_dict`` key such as ``embedding.weight``, or a Keras variable path).

Raw-id arrays of strings are stored as fixed-width unicode arrays. Every problem with a file
(missing, empty, truncated, not an archive, no header, a checksum that does not match, an
unknown format version) raises :class:`ModelFileError`, which names the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "reclib-model"
FORMAT_VERSION = 2
_HEADER = "__header__"


class ModelFileError(ValueError):
    """A model file that cannot be read: the message names the file and the problem."""


def resolve_path(path, must_exist: bool = False) -> Path:
    """``path`` with the ``.npz`` suffix that :func:`write` adds (so save and load agree)."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz")
    if must_exist and not path.exists():
        raise FileNotFoundError(f"no model file at {path}")
    return path


def checksum(array: np.ndarray) -> str:
    """sha256 of an array's bytes in C order."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def write(path, header: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` and ``header`` (plus format fields and checksums) atomically."""
    path = resolve_path(path)
    header = dict(header, format=FORMAT, format_version=FORMAT_VERSION,
                  arrays={name: {"dtype": a.dtype.str, "shape": list(a.shape),
                                 "sha256": checksum(a)} for name, a in arrays.items()})
    try:
        blob = json.dumps(header, sort_keys=True).encode()
    except TypeError as err:
        raise TypeError(f"the model's header must be JSON serialisable to be saved: {err}") from None
    members = {name: a for name, a in arrays.items()}
    members[_HEADER] = np.frombuffer(blob, dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **members)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read(path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and verify a model file; return its header and arrays."""
    path = Path(path)
    if not path.exists() and resolve_path(path).exists():
        path = resolve_path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path} is empty (0 bytes): not a reclib model file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a reclib model file: it is not an .npz (zip) "
                             f"archive, or it is truncated")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            if _HEADER not in names:
                raise ModelFileError(f"{path} has no {_HEADER} member: it is an .npz archive "
                                     f"but not one written by reclib")
            header = json.loads(bytes(npz[_HEADER]).decode())
            arrays = {name: npz[name] for name in names if name != _HEADER}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, ValueError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{path} cannot be read as a reclib model file "
                             f"({type(err).__name__}: {err})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path} has a header that is not a reclib model header")
    if header.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {header.get('format_version')!r}; this "
                             f"reclib reads version {FORMAT_VERSION}")
    expected = header.get("arrays", {})
    if set(expected) != set(arrays):
        missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
        raise ModelFileError(f"{path} does not hold the arrays its header lists (missing "
                             f"{missing}, unlisted {extra})")
    for name, array in arrays.items():
        spec = expected[name]
        if (array.dtype.str != spec["dtype"] or list(array.shape) != spec["shape"]
                or checksum(array) != spec["sha256"]):
            raise ModelFileError(f"{path}: array {name!r} does not match its header (dtype, "
                                 f"shape or sha256 differ); the file is corrupt")
    return header, arrays
