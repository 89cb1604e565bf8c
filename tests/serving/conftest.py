"""Fixtures of the serving tests: a small fitted iALS, its store file, a live server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("faiss")


def _planted_frame(seed: int = 0) -> pd.DataFrame:
    """60 users x 40 items in two taste groups, 8 interactions each."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(60):
        group = u % 2
        pool = np.arange(group * 20, group * 20 + 20)
        for i in rng.choice(pool, 8, replace=False):
            rows.append((u + 1, int(i) + 100, 1.0))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])


@pytest.fixture(scope="session")
def ials_model():
    from reclib import Interactions
    from reclib.models import ImplicitALS
    X = Interactions.from_dataframe(_planted_frame())
    return ImplicitALS(n_factors=8, n_epochs=10, solver="exact", random_state=0).fit(X)


@pytest.fixture(scope="session")
def store_path(ials_model, tmp_path_factory):
    from reclib.serving import export_model
    titles = {i: f"Film {i}" for i in ials_model.item_ids_.tolist()}
    return export_model(ials_model, titles).save(tmp_path_factory.mktemp("store") / "s.npz")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m reclib.serving`` as a subprocess on a loopback port."""

    def __init__(self, model, log_path, *extra):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reclib.serving", "--model", str(model), "--port",
             str(self.port), "--event-log", str(log_path), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stdout.read().decode()}")
            try:
                self.get("/health")
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not start within 60 s")

    def request(self, method, path, body=None, raw: bytes | None = None):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read().decode()
                status = resp.status
        except urllib.error.HTTPError as err:
            text, status = err.read().decode(), err.code
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body=None, raw=None):
        return self.request("POST", path, body, raw)

    def kill9(self):
        self.proc.kill()                              # SIGKILL: no shutdown code runs
        self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture()
def server(store_path, tmp_path):
    srv = Server(store_path, tmp_path / "events.sqlite")
    yield srv
    srv.stop()


@pytest.fixture()
def make_server(tmp_path):
    started = []

    def make(model, log_path, *extra):
        srv = Server(model, log_path, *extra)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


__all__ = ["Server", "Path", "free_port"]
