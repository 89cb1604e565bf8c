"""MovieLens loaders (F. M. Harper and J. A. Konstan, "The MovieLens Datasets: History and
Context", ACM TiiS 5(4), 2015).

The licence of MovieLens forbids redistribution, so no copy ships with reclib. Files are looked
for in this order, each checked against a fixed digest before it is used:

1. the cache, ``$RECLIB_DATA`` (default ``~/.cache/reclib``); a cached file whose digest is
   wrong is deleted with a warning and fetched again, never used;
2. for 100K only, the copy inside the ``recbole`` wheel (``pip install --no-deps
   recbole==1.2.1``), found through ``importlib.metadata`` and never imported; it is copied
   into the cache;
3. the GroupLens zip archive, downloaded (this works in Colab) and checked against the MD5
   digest that GroupLens publishes beside it.

Every write into the cache goes through a temporary file that is renamed only once verified.
"""

from __future__ import annotations

import importlib.metadata
import logging
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from .._validation import check_choice
from ._fetch import ChecksumError, atomic_copy, data_home as _data_home, download as _download
from ._fetch import is_valid

logger = logging.getLogger(__name__)

_GROUPLENS = "https://files.grouplens.org/datasets/movielens/"

#: version -> (url, file name, checksum) of the GroupLens archive (MD5 as GroupLens publishes).
ARCHIVES = {
    "100k": (_GROUPLENS + "ml-100k.zip", "ml-100k.zip", ("md5", "0e33842e24a9c977be4e0107933c0723")),
    "1m": (_GROUPLENS + "ml-1m.zip", "ml-1m.zip", ("md5", "c4d9eecfca2ab87c1945afe126590906")),
}

#: The 100K files inside the recbole 1.2.1 wheel, with their sha256 digests.
RECBOLE_FILES = {
    "ratings": ("ml-100k.inter", "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"),
    "items": ("ml-100k.item", "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532"),
    "users": ("ml-100k.user", "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972"),
}

GENRES_100K = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
               "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
               "Romance", "Sci-Fi", "Thriller", "War", "Western")

_VERSIONS = {"100k", "1m"}


def load_movielens(version: str = "100k", data_home=None, download: bool = True) -> pd.DataFrame:
    """Ratings as a frame with columns ``user_id, item_id, rating, timestamp``.

    Parameters
    ----------
    version : {"100k", "1m"}
        100K: 100,000 ratings by 943 users of 1,682 movies; 1M: 1,000,209 ratings by 6,040
        users of 3,706 movies.
    data_home : path, optional
        Cache directory (default ``$RECLIB_DATA`` or ``~/.cache/reclib``).
    download : bool
        Allow downloading from GroupLens when no local copy exists.
    """
    kind, path = _locate(version, data_home, download)
    if kind == "recbole":
        df = _read_recbole(path / RECBOLE_FILES["ratings"][0])
        df.columns = ["user_id", "item_id", "rating", "timestamp"]
    elif version == "100k":
        df = _read_member(path, "ml-100k/u.data", sep="\t", header=None,
                          names=["user_id", "item_id", "rating", "timestamp"])
    else:
        # '::'-separated; splitting on ':' keeps the C parser (fields 0, 2, 4, 6).
        df = _read_member(path, "ml-1m/ratings.dat", sep=":", header=None, usecols=[0, 2, 4, 6],
                          names=["user_id", "_a", "item_id", "_b", "rating", "_c", "timestamp"])
    return df.astype({"user_id": np.int64, "item_id": np.int64, "rating": np.float64,
                      "timestamp": np.int64}).reset_index(drop=True)


def load_movielens_items(version: str = "100k", data_home=None, download: bool = True) -> pd.DataFrame:
    """Movies as a frame with columns ``item_id, title, year, genres``.

    ``title`` has the year removed, ``year`` is a nullable integer (release year), and
    ``genres`` joins the movie's genres with ``"|"``.
    """
    kind, path = _locate(version, data_home, download)
    if kind == "recbole":
        raw = _read_recbole(path / RECBOLE_FILES["items"][0])
        df = pd.DataFrame({"item_id": raw.iloc[:, 0], "title": raw.iloc[:, 1],
                           "year": pd.to_numeric(raw.iloc[:, 2], errors="coerce"),
                           "genres": raw.iloc[:, 3].fillna("").str.split().str.join("|")})
    elif version == "100k":
        raw = _read_member(path, "ml-100k/u.item", sep="|", header=None, encoding="latin-1")
        flags = raw.iloc[:, 5:24].to_numpy(dtype=bool)
        df = pd.DataFrame({
            "item_id": raw[0], "title": _strip_year(raw[1]),
            "year": pd.to_numeric(raw[2].astype("string").str[-4:], errors="coerce"),
            "genres": ["|".join(g for g, f in zip(GENRES_100K, row) if f) for row in flags]})
    else:
        raw = _read_member(path, "ml-1m/movies.dat", sep="::", engine="python", header=None,
                           encoding="latin-1", names=["item_id", "title", "genres"])
        df = pd.DataFrame({"item_id": raw["item_id"], "title": _strip_year(raw["title"]),
                           "year": pd.to_numeric(raw["title"].str.extract(r"\((\d{4})\)\s*$")[0],
                                                 errors="coerce"),
                           "genres": raw["genres"]})
    return df.astype({"item_id": np.int64, "year": "Int64", "title": str, "genres": str})


def load_movielens_users(version: str = "100k", data_home=None, download: bool = True) -> pd.DataFrame:
    """Users as a frame with columns ``user_id, age, gender, occupation, zip_code``.

    In 1M, ``age`` is the lower bound of an age band and ``occupation`` a numeric code, as
    GroupLens distributes them.
    """
    kind, path = _locate(version, data_home, download)
    names = ["user_id", "age", "gender", "occupation", "zip_code"]
    if kind == "recbole":
        df = _read_recbole(path / RECBOLE_FILES["users"][0], dtype=str)
        df.columns = names
    elif version == "100k":
        df = _read_member(path, "ml-100k/u.user", sep="|", header=None, names=names, dtype=str)
    else:
        df = _read_member(path, "ml-1m/users.dat", sep="::", engine="python", header=None,
                          names=["user_id", "gender", "age", "occupation", "zip_code"], dtype=str)
        df = df[names]
    return df.astype({"user_id": np.int64, "age": np.int64, "gender": str, "occupation": str,
                      "zip_code": str})


# ---------------------------------------------------------------------- locating the files
def _locate(version: str, data_home, download: bool) -> tuple[str, Path]:
    """Find a verified copy: ``("recbole", folder)`` or ``("grouplens", zip_path)``."""
    check_choice("version", version, _VERSIONS)
    home = _data_home(data_home)
    url, zip_name, zip_checksum = ARCHIVES[version]
    folder = home / f"ml-{version}"
    if version == "100k" and all(
            [is_valid(folder / name, ("sha256", digest)) for name, digest in RECBOLE_FILES.values()]):
        return "recbole", folder
    zip_path = home / zip_name
    if is_valid(zip_path, zip_checksum):
        return "grouplens", zip_path
    if version == "100k":
        wheel = _recbole_folder()
        if wheel is not None:
            try:
                for name, digest in RECBOLE_FILES.values():
                    atomic_copy(wheel / name, folder / name, ("sha256", digest))
                return "recbole", folder
            except (ChecksumError, OSError) as err:
                logger.warning("the recbole copy of MovieLens 100K is unusable: %s", err)
    if download:
        try:
            return "grouplens", _download(url, zip_path, zip_checksum)
        except (urllib.error.URLError, OSError) as err:
            raise OSError(f"could not download MovieLens {version} from {url}: {err}") from err
    raise FileNotFoundError(
        f"MovieLens {version} is not in the cache {home}"
        + (", the recbole wheel is not installed (pip install --no-deps recbole==1.2.1)"
           if version == "100k" else "")
        + " and download=False")


def _recbole_folder() -> Path | None:
    """Folder of the 100K files inside an installed recbole wheel (recbole is never imported)."""
    try:
        dist = importlib.metadata.distribution("recbole")
    except importlib.metadata.PackageNotFoundError:
        return None
    folder = Path(dist.locate_file("recbole/dataset_example/ml-100k"))
    return folder if folder.is_dir() else None


# ---------------------------------------------------------------------- parsing
def _read_recbole(path: Path, **kwargs) -> pd.DataFrame:
    df = pd.read_csv(path, sep="\t", **kwargs)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def _read_member(zip_path: Path, member: str, **kwargs) -> pd.DataFrame:
    with zipfile.ZipFile(zip_path) as archive, archive.open(member) as fh:
        return pd.read_csv(fh, **kwargs)


def _strip_year(titles: pd.Series) -> pd.Series:
    return titles.astype(str).str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True).str.strip()
