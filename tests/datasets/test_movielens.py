"""MovieLens loaders: offline source, checksums, corrupt caches and downloads (on loopback)."""

import functools
import hashlib
import http.server
import io
import threading
import zipfile

import numpy as np
import pytest

from reclib.datasets import load_movielens, load_movielens_items, load_movielens_users
from reclib.datasets import movielens


def test_offline_100k_counts(tmp_path):
    df = load_movielens("100k", data_home=tmp_path, download=False)
    assert list(df.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert (len(df), df.user_id.nunique(), df.item_id.nunique()) == (100_000, 943, 1_682)
    assert df.rating.between(1, 5).all()
    items = load_movielens_items("100k", data_home=tmp_path, download=False)
    assert list(items.columns) == ["item_id", "title", "year", "genres"] and len(items) == 1682
    assert items.loc[items.item_id == 1, "title"].item() == "Toy Story"
    users = load_movielens_users("100k", data_home=tmp_path, download=False)
    assert list(users.columns) == ["user_id", "age", "gender", "occupation", "zip_code"]
    assert len(users) == 943 and users.zip_code.str.len().max() <= 10


def test_corrupt_cache_is_detected_removed_and_refetched(tmp_path, caplog):
    load_movielens("100k", data_home=tmp_path, download=False)
    cached = tmp_path / "ml-100k" / "ml-100k.inter"
    good = cached.read_bytes()
    cached.write_bytes(good.replace(b"\t3\t", b"\t5\t", 1))  # one rating changed
    with caplog.at_level("WARNING"):
        df = load_movielens("100k", data_home=tmp_path, download=False)
    assert "corrupt cached file removed" in caplog.text
    assert cached.read_bytes() == good and len(df) == 100_000


def test_nothing_available_raises(tmp_path, monkeypatch):
    monkeypatch.setattr(movielens, "_recbole_folder", lambda: None)
    with pytest.raises(FileNotFoundError, match="recbole"):
        load_movielens("100k", data_home=tmp_path, download=False)
    with pytest.raises(ValueError, match="version == '10k'"):
        load_movielens("10k", data_home=tmp_path)


# ---------------------------------------------------------------------- downloads on loopback
ML1M = {
    "ml-1m/ratings.dat": "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
    "ml-1m/movies.dat": "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n",
    "ml-1m/users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n",
}
ML100K = {
    "ml-100k/u.data": "196\t242\t3\t881250949\n186\t302\t3\t891717742\n",
    "ml-100k/u.item": "242|Kolya (1996)|24-Jan-1997||http://x|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
                      "302|L.A. Confidential (1997)|01-Jan-1997||http://y|0|0|0|0|0|0|1|0|0|0|1|0|0|1|0|0|1|0|0\n",
    "ml-100k/u.user": "196|49|M|writer|55105\n186|39|F|executive|00000\n",
}


def make_zip(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text.encode("latin-1"))
    return buf.getvalue()


@pytest.fixture
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def publish(monkeypatch, server, version, payload, checksum_of=None):
    root, url = server
    name = f"ml-{version}.zip"
    (root / name).write_bytes(payload)
    md5 = hashlib.md5(checksum_of if checksum_of is not None else payload).hexdigest()
    monkeypatch.setitem(movielens.ARCHIVES, version, (url + name, name, ("md5", md5)))
    monkeypatch.setattr(movielens, "_recbole_folder", lambda: None)


def test_1m_download_checksum_and_cache(tmp_path, server, monkeypatch):
    publish(monkeypatch, server, "1m", make_zip(ML1M))
    df = load_movielens("1m", data_home=tmp_path)
    assert df.to_dict("list") == {"user_id": [1, 1, 2], "item_id": [1193, 661, 1193],
                                  "rating": [5.0, 3.0, 4.0],
                                  "timestamp": [978300760, 978302109, 978298413]}
    assert (tmp_path / "ml-1m.zip").exists()
    items = load_movielens_items("1m", data_home=tmp_path, download=False)  # from the cache
    assert items.title.tolist() == ["One Flew Over the Cuckoo's Nest", "James and the Giant Peach"]
    assert items.year.tolist() == [1975, 1996]
    users = load_movielens_users("1m", data_home=tmp_path, download=False)
    assert users.age.tolist() == [1, 56] and users.gender.tolist() == ["F", "M"]


def test_download_with_wrong_checksum_never_lands(tmp_path, server, monkeypatch):
    publish(monkeypatch, server, "1m", make_zip(ML1M), checksum_of=b"something else")
    with pytest.raises(OSError, match="md5"):
        load_movielens("1m", data_home=tmp_path)
    assert not (tmp_path / "ml-1m.zip").exists()
    assert not list(tmp_path.glob(".ml-1m.zip*"))  # no temporary file left behind


def test_100k_grouplens_format(tmp_path, server, monkeypatch):
    publish(monkeypatch, server, "100k", make_zip(ML100K))
    df = load_movielens("100k", data_home=tmp_path)
    assert df.user_id.tolist() == [196, 186] and df.rating.dtype == np.float64
    items = load_movielens_items("100k", data_home=tmp_path)
    assert items.title.tolist() == ["Kolya", "L.A. Confidential"]
    assert items.year.tolist() == [1997, 1997]
    assert items.genres.tolist() == ["Comedy", "Crime|Film-Noir|Mystery|Thriller"]
    users = load_movielens_users("100k", data_home=tmp_path)
    assert users.zip_code.tolist() == ["55105", "00000"]


def test_corrupt_cached_zip_is_refetched(tmp_path, server, monkeypatch):
    publish(monkeypatch, server, "1m", make_zip(ML1M))
    load_movielens("1m", data_home=tmp_path)
    (tmp_path / "ml-1m.zip").write_bytes(b"garbage")
    assert len(load_movielens("1m", data_home=tmp_path)) == 3
