r"""Spark MLlib's implicit ALS behind reclib's :class:`~reclib.models.Recommender` API.

:class:`SparkALS` fits ``pyspark.ml.recommendation.ALS(implicitPrefs=True)`` in a local
Spark session on the training data's integer indices, then copies the user and item factor
matrices back into NumPy, so that recommending, evaluating, saving and loading go through the
same code as every other reclib model (a saved ``SparkALS`` loads and scores without Spark).

Spark's model is the iALS objective of Hu, Koren and Volinsky (2008) with the ridge weight
scaled by the row's number of ratings (see :class:`~reclib.models.ImplicitALS`,
``reg_basis="count"``, which solves the same per-row systems in one process).

Sessions: inside :func:`local_session` (or with any active ``SparkSession``) ``fit`` uses that
session and leaves it running; otherwise it starts a quiet local session itself and stops it
when the fit is done. The Java virtual machine behind it stays up for the rest of the Python
process (that is how pyspark works), so its memory is set by the first session started.

Needs the ``spark`` extra (``pip install reclib[spark]``) and a Java runtime (17 or 21).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ._validation import check_bool, check_float, check_int, check_random_state
from .interactions import Interactions
from .models.base import Recommender

__all__ = ["SparkALS", "local_session"]

_INSTALL_HINT = "pip install reclib[spark]"
_MASTER = re.compile(r"^local(\[(\*|[1-9][0-9]*)(,[0-9]+)?\])?$")
_MEMORY = re.compile(r"^[1-9][0-9]*[kmgt]?$", re.IGNORECASE)
#: Spark's log4j2 set-up for the sessions started here: errors only, on stderr. A shell's
#: entry point (pyspark's gateway) gets its own level too, or Spark announces that it
#: resets the level to WARN.
_LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
logger.repl.name = org.apache.spark.repl.Main
logger.repl.level = error
logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer
logger.gateway.level = error
"""
#: pyspark 4.3 warns once, on importing its test helpers, that it does not fully support
#: pandas 3; SparkALS hands Spark no pandas objects (the data travels as a CSV file).
_PANDAS_WARNING = "PySpark does not yet fully support pandas"


@contextlib.contextmanager
def _quiet_pyspark():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PANDAS_WARNING, category=FutureWarning)
        yield


def _require_pyspark():
    try:
        import pyspark
        from pyspark.sql import SparkSession
    except ImportError as err:
        raise ImportError(f"SparkALS needs pyspark, which is not installed ({err}); install "
                          f"it with `{_INSTALL_HINT}`") from None
    return pyspark, SparkSession


def java_executable() -> str | None:
    """The ``java`` that pyspark will launch (``$JAVA_HOME/bin/java``, else ``PATH``), or None."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java")


def _check_master(master) -> str:
    if not isinstance(master, str) or not _MASTER.match(master):
        raise ValueError(f"master == {master!r}, must be a local Spark master: 'local', "
                         f"'local[N]' or 'local[*]' (the data reaches Spark through a local "
                         f"file, so cluster masters are not supported)")
    return master


def _check_memory(name: str, value) -> str:
    if not isinstance(value, str) or not _MEMORY.match(value):
        raise ValueError(f"{name} == {value!r}, must be a JVM memory size such as '2g' or "
                         f"'512m'")
    return value


@contextlib.contextmanager
def _stderr_into(path: Path):
    """Point this process's file descriptor 2 at ``path`` inside the block, then restore it.

    A JVM that pyspark launches inside the block inherits the file as its stderr for its
    whole life, so its start-up notices (``Using incubator modules``) and the messages of
    native libraries it fails to load (netlib's BLAS) go to the file instead of a notebook's
    output. Spark's own errors still reach Python as exceptions.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _log_tail(path: Path, n_lines: int = 20) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n_lines:])


def _start_session(master: str, driver_memory: str, log_dir: str):
    """A new local SparkSession that prints errors only, with no UI and no progress bars.

    A JVM started here writes its stderr to ``log_dir/jvm-stderr.log`` (see
    :func:`_stderr_into`); a JVM that failed to start has that file's end in the error.
    """
    _, SparkSession = _require_pyspark()
    if java_executable() is None:
        raise RuntimeError("SparkALS needs a Java runtime (Java 17 or 21 for Spark 4), and "
                           "none was found: JAVA_HOME is unset or has no bin/java, and there "
                           "is no `java` on PATH")
    config = Path(log_dir) / "log4j2.properties"
    config.write_text(_LOG4J2)
    builder = (SparkSession.builder.master(master).appName("reclib-SparkALS")
               .config("spark.driver.memory", driver_memory)
               .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={config}")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.sql.shuffle.partitions", "8"))
    jvm_log = Path(log_dir) / "jvm-stderr.log"
    try:
        with _quiet_pyspark(), _stderr_into(jvm_log):
            spark = builder.getOrCreate()
    except Exception as err:  # pyspark raises its own error types for a JVM that did not start
        tail = _log_tail(jvm_log)
        raise RuntimeError(f"could not start a local Spark session (master {master!r}): "
                           f"{type(err).__name__}: {err}. Check that Java 17 or 21 is "
                           f"installed ({java_executable()})"
                           + (f". The JVM's stderr ended with:\n{tail}" if tail else "")) from err
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextlib.contextmanager
def local_session(master: str = "local[2]", driver_memory: str = "2g"):
    """A quiet local ``SparkSession`` for the duration of a ``with`` block, then stopped.

    Every :meth:`SparkALS.fit` inside the block uses it, so the session starts once.

    Parameters
    ----------
    master : str
        ``"local[N]"`` runs N task threads in this machine's JVM (``"local[*]"``: one per core).
    driver_memory : str
        JVM heap, e.g. ``"2g"``; in local mode the tasks run in the driver, so this bounds the
        whole fit. It takes effect only if no JVM is running yet in this Python process.

    Raises
    ------
    ImportError
        pyspark is not installed.
    RuntimeError
        No Java runtime, or the JVM did not start.
    """
    _check_master(master)
    _check_memory("driver_memory", driver_memory)
    _, SparkSession = _require_pyspark()
    if SparkSession.getActiveSession() is not None:
        raise RuntimeError("a SparkSession is already active; SparkALS.fit uses it as it is, "
                           "so no local_session is needed (or stop it first)")
    with tempfile.TemporaryDirectory(prefix="reclib-spark-") as log_dir:
        spark = _start_session(master, driver_memory, log_dir)
        try:
            yield spark
        finally:
            spark.stop()


class SparkALS(Recommender):
    r"""Implicit-feedback ALS fitted by Spark MLlib (``pyspark.ml.recommendation.ALS``).

    Spark minimises the iALS objective of Hu, Koren and Volinsky (2008),

    .. math::

        J = \sum_{u,i} c_{ui}\,(p_{ui} - x_u^\top y_i)^2
            + \lambda \Big(\sum_u n_u \lVert x_u \rVert^2 + \sum_i n_i \lVert y_i \rVert^2\Big),
        \qquad c_{ui} = 1 + \alpha |r_{ui}|,\quad p_{ui} = [r_{ui} > 0],

    where :math:`n_u` (:math:`n_i`) is the number of positive ratings of the user (item):
    the weighted-:math:`\lambda` rule of Zhou et al. (2008). Each half-step solves every row's
    normal equations by Cholesky, starting from the Gram matrix :math:`Y^\top Y` of the other
    side (``ALS.computeFactors`` in Spark's ``ml/recommendation/ALS.scala``). A sweep updates
    the items first, then the users. Rows are spread over ``n_blocks`` blocks per side, which
    the ``master``'s task threads work through in parallel.

    :class:`~reclib.models.ImplicitALS` with ``reg_basis="count"``, ``reg_exponent=1``,
    ``confidence="linear"`` and ``binary=True`` solves the same per-row systems, so with equal
    ``n_factors``, ``reg``, ``alpha`` and ``n_epochs`` the two differ only by their random
    starts (and the order of the half-steps).

    Parameters
    ----------
    n_factors : int
        ``rank``, the number of latent factors (Spark's default 10).
    reg : float
        ``regParam``, :math:`\lambda \ge 0` (Spark's default 0.1).
    alpha : float
        :math:`\alpha \ge 0` (Spark's default 1.0).
    n_epochs : int
        ``maxIter``, the number of sweeps (Spark's default 10).
    binary : bool
        Send :math:`r_{ui} = 1` for every interaction (default) or the stored ratings. With
        ratings, an interaction rated 0 gets :math:`p_{ui} = 0` in Spark.
    n_blocks : int
        ``numUserBlocks`` = ``numItemBlocks`` (Spark's default 10).
    master : str
        ``"local[N]"`` (or ``"local"``, ``"local[*]"``) for the session ``fit`` starts when no
        session is active; an active session is used as it is.
    driver_memory : str
        JVM heap of a session that ``fit`` starts, e.g. ``"2g"``.
    random_state : int, optional
        ``seed`` of Spark's initialisation; without one a seed is drawn at random.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, n_factors), float32
    item_factors_ : ndarray of shape (n_items, n_factors), float32
        Spark's factors, by reclib index (a row without interactions, which Spark never sees,
        is zero).
    spark_seconds_ : float
        Wall time of ``ALS.fit`` inside Spark (the rest of ``fit`` moves data in and out).
    spark_version_, spark_master_ : str
        The Spark version and master the fit ran on.
    """

    def __init__(self, n_factors: int = 10, reg: float = 0.1, alpha: float = 1.0,
                 n_epochs: int = 10, binary: bool = True, n_blocks: int = 10,
                 master: str = "local[2]", driver_memory: str = "2g", random_state=None):
        self.n_factors = n_factors
        self.reg = reg
        self.alpha = alpha
        self.n_epochs = n_epochs
        self.binary = binary
        self.n_blocks = n_blocks
        self.master = master
        self.driver_memory = driver_memory
        self.random_state = random_state

    def _validate_params(self) -> None:
        check_int("n_factors", self.n_factors, minimum=1)
        check_float("reg", self.reg, minimum=0.0)
        check_float("alpha", self.alpha, minimum=0.0)
        check_int("n_epochs", self.n_epochs, minimum=1)
        check_bool("binary", self.binary)
        check_int("n_blocks", self.n_blocks, minimum=1)
        _check_master(self.master)
        _check_memory("driver_memory", self.driver_memory)
        check_random_state(self.random_state)

    def _seed(self) -> int:
        if self.random_state is not None and not isinstance(self.random_state,
                                                            np.random.Generator):
            return int(self.random_state)
        return int(check_random_state(self.random_state).integers(0, 2**62))

    def _fit(self, data: Interactions) -> None:
        _, SparkSession = _require_pyspark()
        from pyspark.ml.recommendation import ALS

        coo = data.to_csr(binary=False).tocoo()      # duplicates summed, as ImplicitALS does
        ratings = (np.ones(coo.nnz, dtype=np.float32) if self.binary
                   else coo.data.astype(np.float32))
        if not np.all(np.isfinite(ratings)):
            raise ValueError("X has ratings that are NaN or infinite; Spark cannot use them")
        seed = self._seed()
        with contextlib.ExitStack() as stack:
            stack.enter_context(_quiet_pyspark())
            spark = SparkSession.getActiveSession()
            if spark is None:
                log_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="reclib-spark-"))
                spark = _start_session(self.master, self.driver_memory, log_dir)
                stack.callback(spark.stop)
            work = stack.enter_context(tempfile.TemporaryDirectory(prefix="reclib-spark-"))
            path = os.path.join(work, "ratings.csv")
            # a CSV file, not createDataFrame: no row-by-row Python conversion, no pyarrow
            pd.DataFrame({"user": coo.row.astype(np.int32), "item": coo.col.astype(np.int32),
                          "rating": ratings}).to_csv(path, header=False, index=False,
                                                     float_format="%.9g")
            frame = spark.read.csv(path, schema="user INT, item INT, rating FLOAT")
            als = ALS(rank=self.n_factors, maxIter=self.n_epochs, regParam=float(self.reg),
                      alpha=float(self.alpha), implicitPrefs=True, nonnegative=False,
                      numUserBlocks=self.n_blocks, numItemBlocks=self.n_blocks, seed=seed,
                      userCol="user", itemCol="item", ratingCol="rating")
            start = time.perf_counter()
            model = als.fit(frame)                   # eager: Spark materialises the factors
            self.spark_seconds_ = time.perf_counter() - start
            self.user_factors_ = _collect(model.userFactors, data.n_users, self.n_factors)
            self.item_factors_ = _collect(model.itemFactors, data.n_items, self.n_factors)
            self.spark_version_ = str(spark.version)
            self.spark_master_ = str(spark.sparkContext.master)
        if not (np.isfinite(self.user_factors_).all() and np.isfinite(self.item_factors_).all()):
            raise FloatingPointError(f"SparkALS returned non-finite factors; raise reg (now "
                                     f"{self.reg}) or lower alpha (now {self.alpha})")

    def _score_users(self, users):
        return self.user_factors_[users] @ self.item_factors_.T    # (len(users), n_items)

    def _item_vectors(self):
        return self.item_factors_


def _collect(factors, n_rows: int, n_factors: int) -> np.ndarray:
    """Spark's ``(id, features)`` factor frame as a dense float32 matrix indexed by ``id``."""
    out = np.zeros((n_rows, n_factors), dtype=np.float32)
    rows = factors.collect()
    if rows:
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        out[ids] = np.array([r[1] for r in rows], dtype=np.float32)
    return out
