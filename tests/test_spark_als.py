r"""SparkALS: Spark MLlib's implicit ALS at small size, beside reclib's ImplicitALS.

Skipped, with the reason, when pyspark (the ``spark`` extra) or a Java runtime is missing.
``reclib.spark`` is not one of the namespaces the contract suite discovers (it would start a
JVM for every contract check), so the parts of the contract that apply (recommending, clone,
save/load without Spark, bad input) are checked here.

The key check is :func:`test_spark_solves_the_count_basis_ridge_system`: Spark's last
half-step computes every user's factor from the final item factors :math:`Y`, so Spark's
:math:`x_u` must equal the dense solve of
:math:`(Y^\top C^u Y + \lambda n_u I)\, x_u = Y^\top C^u p(u)` with
:math:`c_{ui} = 1 + \alpha r_{ui}`, which is what ``ImplicitALS(reg_basis="count")`` solves.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

import reclib
from reclib.evaluation import evaluate_ranking
from reclib.models import ImplicitALS
from tests.conftest import planted_frame

try:
    import pyspark  # noqa: F401
    HAVE_PYSPARK = True
except ImportError:
    HAVE_PYSPARK = False

from reclib import spark as rspark  # noqa: E402  (imports without pyspark)

needs_pyspark = pytest.mark.skipif(not HAVE_PYSPARK,
                                   reason="pyspark is not installed (pip install reclib[spark])")
needs_spark = pytest.mark.skipif(not HAVE_PYSPARK or rspark.java_executable() is None,
                                 reason="pyspark or a Java runtime (java on PATH or JAVA_HOME) "
                                        "is missing")

SETTINGS = dict(n_factors=8, reg=0.1, alpha=5.0, n_epochs=10)
#: two blocks per side for two task threads: at this size Spark's time is per-task overhead
SPARK = dict(n_blocks=2, random_state=0)


@pytest.fixture(scope="module")
def split():
    df = planted_frame(n_users=60, n_items=40, seed=0)
    return reclib.split.stratified_split(df, ratio=0.75, seed=0)


@pytest.fixture(scope="module")
def session():
    with rspark.local_session("local[2]", driver_memory="1g") as spark:
        yield spark


@pytest.fixture(scope="module")
def fitted(split, session):
    train, _ = split
    return rspark.SparkALS(**SPARK, **SETTINGS).fit(train)


def test_missing_pyspark_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(ImportError, match=r"reclib\[spark\]"):
        rspark.SparkALS(n_factors=2).fit(reclib.Interactions.from_dataframe(planted_frame()))


@needs_pyspark
def test_missing_java_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(rspark, "java_executable", lambda: None)
    with pytest.raises(RuntimeError, match="Java runtime"):
        rspark._start_session("local[1]", "1g", str(tmp_path))


@pytest.mark.parametrize("name, value", [("master", "yarn"), ("master", "local[0]"),
                                         ("driver_memory", "lots"), ("n_factors", 0),
                                         ("reg", -1.0), ("alpha", float("nan")),
                                         ("n_epochs", 0), ("n_blocks", 0), ("binary", "yes")])
def test_bad_parameters_are_named(name, value):
    data = reclib.Interactions.from_dataframe(planted_frame())
    with pytest.raises((ValueError, TypeError), match=name):
        rspark.SparkALS(**{name: value}).fit(data)


@needs_spark
def test_fit_without_a_session_starts_and_stops_its_own():
    from pyspark.sql import SparkSession
    assert SparkSession.getActiveSession() is None
    data = reclib.Interactions.from_dataframe(planted_frame())
    model = rspark.SparkALS(n_factors=3, n_epochs=2, n_blocks=1, master="local[1]",
                            driver_memory="1g", random_state=0).fit(data)
    assert model.user_factors_.shape == (data.n_users, 3)
    assert SparkSession.getActiveSession() is None


@needs_spark
def test_local_session_refuses_a_second_active_one(session):
    with pytest.raises(RuntimeError, match="already active"):
        with rspark.local_session():
            pass


@needs_spark
def test_factors_come_back_by_index_and_it_recommends(fitted, split):
    data, _ = split
    assert fitted.user_factors_.shape == (data.n_users, SETTINGS["n_factors"])
    assert fitted.item_factors_.shape == (data.n_items, SETTINGS["n_factors"])
    assert fitted.user_factors_.dtype == np.float32 == fitted.item_factors_.dtype
    assert np.abs(fitted.user_factors_).sum(axis=1).min() > 0     # every user was fitted
    assert fitted.spark_version_ == "4.3.0" and fitted.spark_master_ == "local[2]"
    users = fitted.user_ids_[:5]
    recs, scores = fitted.recommend(users, k=5)
    assert recs.shape == (5, 5) and np.all(np.diff(scores, axis=1) <= 0)
    seen = data.to_csr(binary=True)
    for u, row in zip(fitted.user_index(users), recs):
        assert seen[u, fitted.item_index(row)].nnz == 0


@needs_spark
def test_spark_solves_the_count_basis_ridge_system(fitted):
    R = fitted.seen_.toarray().astype(np.float64)                # p_ui (binary)
    Y = fitted.item_factors_.astype(np.float64)
    conf = 1.0 + SETTINGS["alpha"] * R
    f = Y.shape[1]
    for u in range(R.shape[0]):
        A = Y.T @ (conf[u, :, None] * Y) + SETTINGS["reg"] * R[u].sum() * np.eye(f)
        expected = np.linalg.solve(A, Y.T @ (conf[u] * R[u]))
        np.testing.assert_allclose(fitted.user_factors_[u], expected, rtol=2e-3, atol=2e-5)


@needs_spark
def test_same_ndcg_as_implicit_als_with_the_count_basis(fitted, split):
    train, test = split
    ours = ImplicitALS(reg_basis="count", reg_exponent=1.0, solver="exact", random_state=0,
                       **SETTINGS).fit(train)
    spark_ndcg = evaluate_ranking(fitted, train, test, k=10)["ndcg@10"]
    ours_ndcg = evaluate_ranking(ours, train, test, k=10)["ndcg@10"]
    assert spark_ndcg > 0.3 and ours_ndcg > 0.3                 # both learnt the two groups
    assert abs(spark_ndcg - ours_ndcg) < 0.03


@needs_spark
def test_seed_makes_spark_reproducible(fitted, split):
    train, _ = split
    again = rspark.SparkALS(**SPARK, **SETTINGS).fit(train)
    np.testing.assert_allclose(again.item_factors_, fitted.item_factors_, rtol=1e-5, atol=1e-6)


@needs_spark
def test_clone_and_save_load_without_spark(fitted, tmp_path):
    twin = clone(fitted)
    assert twin.get_params() == fitted.get_params() and not hasattr(twin, "user_factors_")
    loaded = rspark.SparkALS.load(fitted.save(tmp_path / "spark_als"))
    np.testing.assert_array_equal(loaded.item_factors_, fitted.item_factors_)
    assert loaded.spark_version_ == fitted.spark_version_
    users = fitted.user_ids_[:3]
    np.testing.assert_array_equal(loaded.recommend(users, k=3)[0], fitted.recommend(users, k=3)[0])


def test_stderr_into_sends_file_descriptor_2_to_the_file_and_restores_it(tmp_path, capfd):
    import os
    log = tmp_path / "jvm.log"
    with rspark._stderr_into(log):
        os.write(2, b"from a child process\n")
    os.write(2, b"after\n")
    assert log.read_text() == "from a child process\n"
    assert capfd.readouterr().err == "after\n"


@needs_spark
def test_the_jvm_prints_nothing_on_the_process_stderr(tmp_path):
    # the JVM's start-up notices and netlib's failed BLAS look-ups are not the reader's output
    import subprocess
    code = ("import reclib; from reclib.spark import SparkALS; from tests.conftest import "
            "planted_frame; SparkALS(n_factors=4, n_epochs=2, master='local[1]', "
            "driver_memory='1g').fit(reclib.Interactions.from_dataframe(planted_frame()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=str(Path(__file__).resolve().parents[1]))
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
