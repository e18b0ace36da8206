"""The one place that opens the DuckDB file.

Connections are short-lived: a writer holds the file only while it commits a chunk, and a reader
only while it runs a query, so the dashboard and a running `pedclip embed` can share one store.
DuckDB lets one process write or many read; whoever finds the file locked waits and retries.

Opening the file costs ~30-40 ms (DuckDB builds a database instance each time, whatever the file's
size), which a job making thousands of small queries pays over and over: the demo's tables step
spent half its time there. A job that owns its store for a while (`pedclip demo`) holds one
read-write connection with `Store.hold()`; every read and write of that file in the process is then a
cursor on it (~1 ms), and no other process can open the file until the block ends.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from pedclip.config import Paths
from pedclip.errors import DiskFullError, PedclipError, is_disk_full
from pedclip.store.schema import MIGRATIONS, SCHEMA_VERSION

LOCK_WAIT_S = 60.0

_held: dict[str, duckdb.DuckDBPyConnection] = {}  # resolved db path -> the connection `Store.hold` keeps
_held_lock = threading.Lock()  # cursors are opened from any thread (the embed pipeline's writer, the UI's)


_reading = threading.local()  # this thread's `Store.reading()` connections: resolved db path -> connection


def _open(path: Path, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    """A cursor on the held connection to `path` if this process holds one (or, for a read, this thread
    reads through one), else a new connection."""
    key = str(path.resolve())
    mine = getattr(_reading, "held", {}).get(key)
    if mine is not None:
        if not read_only:
            raise RuntimeError(f"a write to {path} inside Store.reading(): end the read-only block first")
        return mine.cursor()
    with _held_lock:
        anchor = _held.get(key)
        if anchor is not None:
            return anchor.cursor()
    return _connect(path, read_only, wait_s)


@contextlib.contextmanager
def released(path: Path) -> Iterator[None]:
    """Let other processes open the file for the block (the ranks `--nproc` spawns), if this one holds it."""
    key = str(Path(path).resolve())
    with _held_lock:
        anchor = _held.pop(key, None)
    if anchor is None:
        yield
        return
    anchor.close()
    try:
        yield
    finally:
        anchor = _connect(Path(path), read_only=False, wait_s=LOCK_WAIT_S)
        with _held_lock:
            _held[key] = anchor


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text or "different configuration" in text


def _connect(path: Path, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_s
    delay = 0.01
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


class Store:
    """The DuckDB store under one PEDCLIP_HOME. Use `write()` and `read()` as context managers."""

    def __init__(self, paths: Paths, lock_wait_s: float = LOCK_WAIT_S):
        self.paths = paths
        self.lock_wait_s = lock_wait_s
        self._writer: duckdb.DuckDBPyConnection | None = None

    @classmethod
    def open(cls, home: str | Path | None = None, create: bool = True) -> Store:
        """The store at `home`; migrated to the current schema (created when `create`)."""
        paths = Paths.at(home)
        if not paths.db.exists() and not create:
            raise PedclipError(
                f"no pedclip store at {paths.db}; run `pedclip demo` or `pedclip data ingest` first, "
                "or pass --home to point at an existing store"
            )
        store = cls(paths.ensure())
        store.migrate()
        return store

    @property
    def exists(self) -> bool:
        return self.paths.db.exists()

    @property
    def in_transaction(self) -> bool:
        """True inside `write()`: what is written now is not committed yet."""
        return self._writer is not None

    @contextlib.contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection inside one transaction, committed on exit, rolled back on error."""
        if self._writer is not None:  # nested: join the outer transaction
            yield self._writer
            return
        try:
            con = _open(self.paths.db, read_only=False, wait_s=self.lock_wait_s)
        except duckdb.Error as exc:
            if is_disk_full(exc):
                raise DiskFullError(self.paths.db) from exc
            raise
        self._writer = con
        try:
            con.begin()
            yield con
            con.commit()
        except BaseException as exc:
            with contextlib.suppress(duckdb.Error):
                con.rollback()
            if isinstance(exc, (duckdb.Error, OSError)) and is_disk_full(exc):
                raise DiskFullError(self.paths.db) from exc
            raise
        finally:
            self._writer = None
            with contextlib.suppress(duckdb.Error):
                con.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection showing the last committed state (or the open writer's, if nested)."""
        if self._writer is not None:
            yield self._writer
            return
        if not self.exists:
            raise PedclipError(f"no pedclip store at {self.paths.db}; run `pedclip demo` first")
        con = _open(self.paths.db, read_only=True, wait_s=self.lock_wait_s)
        try:
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def hold(self) -> Iterator[Store]:
        """Keep one read-write connection open for the block (see the module docstring); nests."""
        key = str(self.paths.db.resolve())
        with _held_lock:
            nested = key in _held
        if nested:
            yield self
            return
        anchor = _connect(self.paths.db, read_only=False, wait_s=self.lock_wait_s)
        with _held_lock:
            _held[key] = anchor
        try:
            yield self
        finally:
            with _held_lock:
                current = _held.pop(key, None)  # `released` may have replaced it
            if current is not None:
                current.close()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Store]:
        """Read through one read-only connection for the block, in this thread only (a page that makes
        dozens of small queries, like a case card); nests, and inside `hold()` it is the held connection.

        Other threads keep their own connections; a write from this thread inside the block is an error.
        Other processes can still read, and a writer waits for the block to end as it waits for any reader.
        """
        key = str(self.paths.db.resolve())
        held = getattr(_reading, "held", None)
        if held is None:
            held = _reading.held = {}
        with _held_lock:
            process_holds = key in _held
        if key in held or process_holds:
            yield self
            return
        if not self.exists:
            raise PedclipError(f"no pedclip store at {self.paths.db}; run `pedclip demo` first")
        held[key] = _connect(self.paths.db, read_only=True, wait_s=self.lock_wait_s)
        try:
            yield self
        finally:
            held.pop(key).close()

    def schema_version(self) -> int:
        with self.read() as con:
            row = con.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def migrate(self) -> int:
        """Apply the migrations this file has not seen; returns the resulting version."""
        with self.write() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, applied TIMESTAMP DEFAULT current_timestamp)"
            )
            current = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
            if current > SCHEMA_VERSION:
                raise PedclipError(
                    f"the store at {self.paths.db} has schema version {current}, newer than this pedclip "
                    f"({SCHEMA_VERSION}); upgrade pedclip or use another --home"
                )
            for version in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[version]:
                    con.execute(statement)
                con.execute("INSERT INTO schema_version (version) VALUES (?)", [version + 1])
        return SCHEMA_VERSION


def dumps(value: object) -> str:
    """JSON for the store's JSON columns: sorted keys so equal values compare equal as text."""
    return json.dumps(value, sort_keys=True, default=str)
