"""Cache directory, checksums, atomic writes and verified downloads."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from .._progress import tqdm

logger = logging.getLogger(__name__)


class ChecksumError(OSError):
    """A file's digest does not match the one it must have."""


def data_home(data_home=None) -> Path:
    """The cache directory: ``data_home``, else ``$RECLIB_DATA``, else ``~/.cache/reclib``."""
    path = data_home or os.environ.get("RECLIB_DATA") or Path.home() / ".cache" / "reclib"
    path = Path(path).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_digest(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path, checksum: tuple[str, str]) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has digest ``checksum = (algorithm, hex)``."""
    algorithm, expected = checksum
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise ChecksumError(f"{path} has {algorithm} {actual}, expected {expected}")


def is_valid(path, checksum: tuple[str, str]) -> bool:
    """True when ``path`` exists and matches; a file that exists and does not match is removed."""
    path = Path(path)
    if not path.exists():
        return False
    try:
        verify(path, checksum)
        return True
    except ChecksumError as err:
        logger.warning("corrupt cached file removed, it will be fetched again: %s", err)
        path.unlink()
        return False


def atomic_copy(source, dest, checksum: tuple[str, str]) -> Path:
    """Copy ``source`` to ``dest`` through a temporary file, verified before it is renamed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out)
        verify(tmp, checksum)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def download(url: str, dest, checksum: tuple[str, str], timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically; the file appears only once its checksum matches."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                      disable=total is None or total < (1 << 20)) as bar:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
        verify(tmp, checksum)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
