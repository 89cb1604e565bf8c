"""The durable event log: an append-only SQLite table in WAL mode with ``synchronous=FULL``.

An event is acknowledged only after the transaction that holds it has committed, and with
``synchronous=FULL`` a WAL commit is on disk (fsync) before ``COMMIT`` returns, so a
``kill -9`` of the server, or a power cut, loses no acknowledged event. On start the service
reads the log back in order (:meth:`EventLog.replay`). Items added while serving go to a
second table, ``items``, under the same rules, with the vector they were given, so a restart
restores them without re-encoding their text (:meth:`EventLog.replay_items`).

Writes go through one writer thread that commits whatever has queued up as one transaction
(group commit): concurrent requests never share a connection, and under load one fsync
covers many requests instead of one each.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np

_SCHEMA = """CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    weight REAL NOT NULL,
    ts REAL
)"""
_ITEMS_SCHEMA = """CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL UNIQUE,
    title TEXT,
    text TEXT,
    vector BLOB NOT NULL
)"""
_INSERT = {"events": "INSERT INTO events (user_id, item_id, weight, ts) VALUES (?, ?, ?, ?)",
           "items": "INSERT INTO items (item_id, title, text, vector) VALUES (?, ?, ?, ?)"}


class EventLog:
    """Append-only log of ``(user_id, item_id, weight, ts)`` rows.

    Parameters
    ----------
    path : str or Path
        The SQLite file (created if missing; its ``-wal`` and ``-shm`` files sit beside it).
    """

    def __init__(self, path):
        self.path = Path(path)
        self._queue: queue.Queue = queue.Queue()
        conn = self._connect()
        conn.execute(_SCHEMA)
        conn.execute(_ITEMS_SCHEMA)
        conn.close()
        self._closed = False
        self._thread = threading.Thread(target=self._writer, name="event-log", daemon=True)
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def append(self, rows: list[tuple]) -> Future:
        """Queue rows for the next commit; the future resolves to their ``seq`` numbers."""
        return self._enqueue("events", rows)

    def append_items(self, rows: list[tuple]) -> Future:
        """Queue ``(item_id, title, text, vector)`` rows (vector float32) like :meth:`append`."""
        rows = [(str(i), title, text, np.asarray(v, dtype="<f4").tobytes())
                for i, title, text, v in rows]
        return self._enqueue("items", rows)

    def _enqueue(self, table: str, rows: list[tuple]) -> Future:
        if self._closed:
            raise RuntimeError("the event log is closed")
        fut: Future = Future()
        self._queue.put((table, list(rows), fut))
        return fut

    def _writer(self) -> None:
        conn = self._connect()
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while True:                      # everything queued so far joins this commit
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            try:
                conn.execute("BEGIN IMMEDIATE")
                results = []
                for table, rows, _ in batch:
                    seqs = []
                    for row in rows:
                        seqs.append(conn.execute(_INSERT[table], row).lastrowid)
                    results.append(seqs)
                conn.execute("COMMIT")
            except Exception as err:         # the whole group fails together, nothing acked
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                for *_, fut in batch:
                    fut.set_exception(err)
                continue
            for (*_, fut), seqs in zip(batch, results):
                fut.set_result(seqs)
        conn.close()

    def replay(self):
        """Every logged row ``(seq, user_id, item_id, weight, ts)`` in commit order."""
        conn = self._connect()
        try:
            yield from conn.execute("SELECT seq, user_id, item_id, weight, ts FROM events "
                                    "ORDER BY seq")
        finally:
            conn.close()

    def replay_items(self):
        """Every added item ``(item_id, title, vector)`` in commit order."""
        conn = self._connect()
        try:
            for item_id, title, blob in conn.execute("SELECT item_id, title, vector FROM items "
                                                     "ORDER BY seq"):
                yield item_id, title, np.frombuffer(blob, dtype="<f4").copy()
        finally:
            conn.close()

    def count(self) -> int:
        conn = self._connect()
        try:
            return conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        finally:
            conn.close()

    def close(self) -> None:
        """Finish pending commits and stop the writer thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
