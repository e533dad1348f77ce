"""Spark (pyspark, the optional extra `antal[spark]`): the Parquet extracts as temporary
views of a Spark session, for installations that outgrow one machine.

One SparkSession per process (starting the JVM takes seconds); each backend works in its
own `newSession()`, so two installations' views never meet. The session's settings are
explicit, not Spark's version-dependent defaults: ANSI mode on (an overflow or a bad cast
is an error, never a silent NULL or a wrapped number; Spark 4's default, set here so that
Spark 3 means the same), the UTC time zone (dates never shift), and, by default, local
mode on two cores with two shuffle partitions and no web UI (`ANTAL_SPARK_MASTER` names
another master, e.g. a cluster's). A count's time budget cancels its Spark jobs."""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from antal.catalog import Catalog, DataSource, Installation
from antal.engine.backends import Backend
from antal.engine.compiler import Compiled
from antal.engine.errors import EngineError, QueryTimeout
from antal.engine.limits import QUERY_SECONDS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SPARK_SETTINGS", "SparkBackend", "spark_session"]

SPARK_SETTINGS: dict[str, str] = {
    "spark.sql.ansi.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}

_CANCEL_EVERY = 0.05  # s
_session: SparkSession | None = None
_session_lock = threading.Lock()


@contextlib.contextmanager
def _pandas_note_silenced() -> Iterator[None]:
    """PySpark warns on import that it does not fully support pandas 3 (FutureWarning, from
    pyspark.testing.utils). antal hands Spark SQL text and collects rows: no pandas-on-Spark,
    no Arrow conversion, the parts the note is about. The pair in constraints.txt (pyspark
    4.3, pandas 3.1) runs the Spark backend's tests, so the note is for pandas users, not
    ours, and is silenced where antal imports pyspark."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        yield


def _errors() -> tuple[type[BaseException], ...]:
    try:
        with _pandas_note_silenced():
            from py4j.protocol import Py4JError
            from pyspark.errors import PySparkException
    except ImportError:  # not installed: get_backend says so when it is asked for
        return ()
    return (PySparkException, Py4JError)


def spark_session() -> SparkSession:
    """The process's Spark session, started on first use."""
    global _session
    with _session_lock:
        if _session is None:
            try:
                with _pandas_note_silenced():
                    from pyspark.sql import SparkSession
            except ImportError:
                raise EngineError(
                    "the spark backend needs pyspark: pip install 'antal[spark]'"
                ) from None
            # the driver binds to loopback unless told otherwise: no port on other interfaces
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            builder = SparkSession.builder.master(
                os.environ.get("ANTAL_SPARK_MASTER", "local[2]")
            ).appName("antal")
            for key, value in SPARK_SETTINGS.items():
                builder = builder.config(key, value)
            with _pandas_note_silenced():  # starting the context imports pyspark.testing
                _session = builder.getOrCreate()
            _session.sparkContext.setLogLevel("ERROR")
        return _session


class SparkBackend(Backend):
    dialect = "spark"
    placements = frozenset({"parquet"})
    errors = _errors()

    def __init__(
        self,
        installation: Installation,
        catalog: Catalog,
        threads: int | None = None,
        memory_limit: str | None = None,
        query_seconds: float | None = QUERY_SECONDS,
    ) -> None:
        # cores and memory are the Spark master's (ANTAL_SPARK_MASTER), not one count's
        super().__init__(installation, catalog)
        self.query_seconds = query_seconds
        self.spark = spark_session().newSession()
        self._attached: set[str] = set()
        self._lock = threading.Lock()

    def _frame(self, rid: str, src: DataSource) -> DataFrame:
        from pyspark.sql import functions as F

        df = self.spark.read.parquet(src.parquet or "")
        reg = self.catalog.register(rid)
        if reg is None or not src.columns:
            return df
        # names from the installation's config, through the DataFrame API: never SQL text
        return df.select(*(F.col(src.column(v.name)).alias(v.name) for v in reg.variables))

    def attach(self, registers: set[str] | frozenset[str]) -> None:
        self.require(registers)
        for rid in sorted(set(registers) - self._attached):
            self._frame(rid, self.installation.sources[rid]).createOrReplaceTempView(rid)
            self._attached.add(rid)

    def forget(self, register_id: str) -> None:
        with self._lock:
            self._attached.discard(register_id)

    def run(self, compiled: Compiled) -> list[tuple[Any, ...]]:
        with self._lock:
            self.attach(compiled.registers)
            sc = self.spark.sparkContext
            group = f"antal-{uuid.uuid4().hex}"
            done, fired = threading.Event(), threading.Event()
            watcher = None
            if self.query_seconds:
                args = (sc, group, self.query_seconds, done, fired)
                watcher = threading.Thread(target=_watch, args=args, daemon=True)
            sc.setJobGroup(group, "antal count", interruptOnCancel=True)
            if watcher is not None:
                watcher.start()
            try:
                rows = [tuple(r) for r in self.spark.sql(compiled.sql(self.dialect)).collect()]
            except self.errors:
                if fired.is_set():
                    raise QueryTimeout(self.query_seconds or 0.0) from None
                raise
            finally:
                done.set()
                if watcher is not None:
                    watcher.join()
            if fired.is_set():  # over budget, even if the last job slipped past the cancel
                raise QueryTimeout(self.query_seconds or 0.0)
            return rows

    def error_kind(self, exc: BaseException) -> str:
        get_condition = getattr(exc, "getCondition", None)  # Spark's named error conditions
        condition = get_condition() if get_condition is not None else None
        if condition:
            return f"{type(exc).__name__} ({condition})"
        java = getattr(exc, "java_exception", None)  # a JVM error without a condition
        if java is not None:
            try:  # the innermost cause's class: SparkException wraps what went wrong
                names = [java.getClass().getName()]
                while (java := java.getCause()) is not None and len(names) < 10:
                    names.append(java.getClass().getName())
                return f"{type(exc).__name__} ({names[0]} < {names[-1]})"
            except Exception:  # the JVM is gone (it may have run out of memory)
                pass
        return type(exc).__name__

    def close(self) -> None:
        # the views die with this backend; the process's session stays for the next one
        for rid in self._attached:
            self.spark.catalog.dropTempView(rid)
        self._attached.clear()


def _watch(
    sc: Any, group: str, seconds: float, done: threading.Event, fired: threading.Event
) -> None:
    """Cancel the group's jobs once `seconds` have passed, and again until the statement
    ends: a cancel sent before a job is submitted is lost."""
    if done.wait(seconds):
        return
    fired.set()
    while True:
        sc.cancelJobGroup(group)
        if done.wait(_CANCEL_EVERY):
            return
