"""The model file format: every broken file gives a ModelFileError that names it."""

import io
import json
import zipfile

import numpy as np
import pytest

import reclib
from reclib.core import ModelFileError, modelfile
from reclib.models import EASE, BPR, ImplicitALS, Popularity, Recommender
from tests.conftest import planted_frame


@pytest.fixture(scope="module")
def data():
    return reclib.Interactions.from_dataframe(planted_frame())


@pytest.fixture
def saved(data, tmp_path):
    return EASE(reg=5.0).fit(data).save(tmp_path / "ease")


def rewrite(path, out, change_header=None, drop=(), replace=None):
    """Copy a model file, editing its header or members."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist() if n not in drop}
    if change_header is not None:
        npy = np.load(io.BytesIO(members["__header__.npy"]))
        header = change_header(json.loads(bytes(npy).decode()))
        buf = io.BytesIO()
        np.save(buf, np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
        members["__header__.npy"] = buf.getvalue()
    members.update(replace or {})
    with zipfile.ZipFile(out, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    return out


def test_header_records_version_class_params_and_checksums(saved):
    header, arrays = modelfile.read(saved)
    assert header["format"] == "reclib-model" and header["format_version"] == 2
    assert header["class"] == "reclib.models.ease.EASE" and header["params"]["reg"] == 5.0
    assert header["reclib_version"] == reclib.__version__
    for name, spec in header["arrays"].items():
        assert spec["sha256"] == modelfile.checksum(arrays[name])


def test_save_and_load_agree_on_the_name(data, tmp_path):
    path = Popularity().fit(data).save(tmp_path / "m")
    assert path.name == "m.npz"
    assert isinstance(Recommender.load(tmp_path / "m"), Popularity)
    assert isinstance(Recommender.load(path), Popularity)


def test_empty_file(tmp_path):
    (tmp_path / "e.npz").write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"e\.npz is empty"):
        Recommender.load(tmp_path / "e.npz")


def test_random_bytes_never_suggest_pickle(tmp_path):
    (tmp_path / "r.npz").write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(ModelFileError, match=r"r\.npz is not a reclib model file") as info:
        Recommender.load(tmp_path / "r.npz")
    assert "allow_pickle" not in str(info.value)


def test_truncated_file(saved, tmp_path):
    blob = saved.read_bytes()
    (tmp_path / "t.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelFileError, match=r"t\.npz"):
        Recommender.load(tmp_path / "t.npz")


def test_npz_without_header(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.arange(3))
    with pytest.raises(ModelFileError, match="no __header__ member"):
        Recommender.load(tmp_path / "plain.npz")


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        Recommender.load(tmp_path / "nothing_here")


def test_class_that_does_not_match_the_arrays(saved, tmp_path):
    bad = rewrite(saved, tmp_path / "swapped.npz",
                  lambda h: {**h, "class": "reclib.models.bpr.BPR", "params": {}})
    with pytest.raises(ModelFileError, match=r"swapped\.npz: its arrays do not fit a BPR"):
        Recommender.load(bad)


def test_parameters_the_constructor_refuses(saved, tmp_path):
    bad = rewrite(saved, tmp_path / "params.npz",
                  lambda h: {**h, "params": {**h["params"], "reg": -1.0}})
    with pytest.raises(ModelFileError, match=r"params\.npz: the saved parameters of EASE are "
                                             r"not valid: reg == -1.0"):
        Recommender.load(bad)
    bad = rewrite(saved, tmp_path / "unknown.npz",
                  lambda h: {**h, "params": {**h["params"], "nonsense": 1}})
    with pytest.raises(ModelFileError, match="unknown.npz: the saved parameters"):
        Recommender.load(bad)


def test_unknown_class_and_version(saved, tmp_path):
    bad = rewrite(saved, tmp_path / "cls.npz", lambda h: {**h, "class": "reclib.models.Nope"})
    with pytest.raises(ModelFileError, match="unknown model class 'reclib.models.Nope'"):
        Recommender.load(bad)
    bad = rewrite(saved, tmp_path / "v.npz", lambda h: {**h, "format_version": 99})
    with pytest.raises(ModelFileError, match="format version 99"):
        Recommender.load(bad)


def test_missing_array_and_corrupt_array(saved, tmp_path):
    bad = rewrite(saved, tmp_path / "missing.npz", drop=("attr/item_ids_.npy",))
    with pytest.raises(ModelFileError, match="missing.*attr/item_ids_"):
        Recommender.load(bad)
    with zipfile.ZipFile(saved) as z:
        blob = bytearray(z.read("attr/item_ids_.npy"))
    blob[-1] ^= 1
    bad = rewrite(saved, tmp_path / "flip.npz", replace={"attr/item_ids_.npy": bytes(blob)})
    with pytest.raises(ModelFileError, match="flip.npz: array 'attr/item_ids_' does not match"):
        Recommender.load(bad)


def test_load_through_a_subclass_checks_the_class(saved):
    with pytest.raises(TypeError, match="not a ImplicitALS"):
        ImplicitALS.load(saved)


def test_loaded_model_ranks_like_the_original(data, tmp_path):
    model = BPR(n_factors=4, n_epochs=5, random_state=0).fit(data)
    loaded = Recommender.load(model.save(tmp_path / "b"))
    a, b = model.recommend(data.user_ids, k=5), loaded.recommend(data.user_ids, k=5)
    np.testing.assert_array_equal(a[0], b[0])
