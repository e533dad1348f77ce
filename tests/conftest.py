"""Shared test helpers: the canonical extract schemas and a writer of tiny Parquet extracts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# antal's cache (catalog/usercache.py: code lists, grammar tables, digests of extract files)
# is a directory of this run's, not the home directory's of whoever runs the tests
os.environ.setdefault("XDG_CACHE_HOME", tempfile.mkdtemp(prefix="antal-test-cache-"))
os.environ.pop("ANTAL_CACHE_DIR", None)

_ID = ("lopnr", pa.int64())
_S = pa.string()
_D = pa.date32()
_F = pa.float64()
_I16 = pa.int16()

# The canonical layout of docs/extracts.md as Arrow schemas, written out by hand (not read from
# the catalog), so that a test fails if the catalog and the spec disagree.
EXTRACT_SCHEMAS: dict[str, pa.Schema] = {
    "population": pa.schema(
        [
            _ID,
            ("kon", _I16),
            ("fodelsear", _I16),
            ("fodelsemanad", _I16),
            ("lan", _S),
            ("kommun", _S),
        ]
    ),
    "npr": pa.schema(
        [
            _ID,
            ("indatum", _D),
            ("utdatum", _D),
            ("vardform", _S),
            ("sjukhus", _S),
            ("mvo", _S),
            ("hdia", _S),
            ("diagnos", _S),
            ("op", _S),
            ("ekod", _S),
        ]
    ),
    "lmr": pa.schema(
        [
            _ID,
            ("edatum", _D),
            ("atc", _S),
            ("antal", _F),
            ("ddd", _F),
            ("fdatum", _D),
            ("doser", _S),
            ("ordinationsorsak", _S),
            ("arbetsplats", _S),
        ]
    ),
    "rekvisition": pa.schema([_ID, ("adm_datum", _D), ("atc", _S), ("sjukhus", _S), ("mvo", _S)]),
    "dors": pa.schema(
        [_ID, ("dodsdat", _D), ("dodsdag_okand", _I16), ("ulorsak", _S), ("morsak", _S)]
    ),
    "ndr": pa.schema(
        [_ID, ("regdat", _D), ("diabetestyp", _I16), ("hba1c", _F), ("bmi", _F), ("systoliskt", _F)]
    ),
    "nkbc": pa.schema([_ID, ("diagnosdatum", _D), ("er", _S), ("her2", _S), ("stadium", _S)]),
    "gms": pa.schema([_ID, ("provdatum", _D), ("gene", _S), ("variant", _S), ("klass", _S)]),
    "biobank": pa.schema([_ID, ("provdatum", _D), ("provtyp", _S), ("biobank", _S)]),
    "optout": pa.schema([_ID, ("datum", _D), ("andamal", _S)]),
    "migration": pa.schema([_ID, ("datum", _D), ("riktning", _S)]),
}


def write_extracts(tables: dict[str, list[dict[str, Any]]], directory: Path) -> Path:
    """Write `tables` (register id -> rows) as `DIR/<id>.parquet` with the canonical types.

    Every register of the canonical layout gets a file (an empty one when not given); a
    column missing from a row is NULL. Unknown registers or columns are an error (typos).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    unknown = set(tables) - set(EXTRACT_SCHEMAS)
    if unknown:
        raise KeyError(f"unknown register(s) {sorted(unknown)}")
    for rid, schema in EXTRACT_SCHEMAS.items():
        rows = tables.get(rid, [])
        for row in rows:
            extra = set(row) - set(schema.names)
            if extra:
                raise KeyError(f"{rid}: unknown column(s) {sorted(extra)}")
        columns = {name: [row.get(name) for row in rows] for name in schema.names}
        pq.write_table(pa.table(columns, schema=schema), directory / f"{rid}.parquet")
    return directory


# --- a real PostgreSQL server, started by the tests ------------------------------------------

import contextlib  # noqa: E402
import glob  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail(
            "PostgreSQL is not installed: `apt-get install postgresql` (bash .ci/run does it)",
            pytrace=False,
        )
    return Path(found[-1]).parent


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    # the server refuses to run as root; Debian's package made the `postgres` user
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on loopback; yields a DSN prefix without database."""
    bin_dir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="antal-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        root.chmod(0o700)
    port = _free_port()
    subprocess.run(
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]),
        check=True, capture_output=True,
    )  # fmt: skip
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=on -c max_connections=200"
    subprocess.run(
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"]),
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_server: str) -> str:
    """A fresh, empty database on the test server."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server + "/postgres", autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return f"{pg_server}/{name}"


# --- the same extracts on every backend ------------------------------------------------------

from collections.abc import Callable  # noqa: E402

from antal.catalog import Installation, PostgresPlacement  # noqa: E402
from antal.catalog.vocabulary import BACKENDS  # noqa: E402


def _on_files(request: pytest.FixtureRequest, directory: Path) -> Installation:
    return Installation.from_data_dir(directory)


def _on_postgres(request: pytest.FixtureRequest, directory: Path) -> Installation:
    """The Parquet files loaded into a fresh schema of the test server (`antal load-postgres`)."""
    from antal.engine.backends.pgload import load_postgres

    dsn = request.getfixturevalue("pg_extracts")
    schema = "x_" + uuid.uuid4().hex[:12]
    load_postgres(directory, dsn, schema)
    return Installation.from_postgres(PostgresPlacement(dsn=dsn, schema=schema))


# where each backend's test extracts are placed: a new backend adds its line here
PLACE: dict[str, Callable[[pytest.FixtureRequest, Path], Installation]] = {
    "duckdb": _on_files,
    "postgres": _on_postgres,
    "spark": _on_files,
}
assert set(PLACE) == set(BACKENDS), "every backend is a test parameter"


@pytest.fixture(scope="session")
def pg_extracts(pg_server: str) -> str:
    """One database on the test server for the extracts of every test (a schema each)."""
    import psycopg

    with psycopg.connect(pg_server + "/postgres", autocommit=True) as con:
        con.execute('CREATE DATABASE "extracts"')
    return f"{pg_server}/extracts"


@pytest.fixture
def place(request: pytest.FixtureRequest) -> Callable[..., Installation]:
    """`place(backend, tables, directory)`: the tables written as Parquet files in the
    directory, and placed where that backend reads them; the installation over them."""

    def make(
        backend: str, tables: dict[str, list[dict[str, Any]]], directory: Path
    ) -> Installation:
        return PLACE[backend](request, write_extracts(tables, directory))

    return make


def researcher_service(
    data: Path, store: Path, registers: tuple[str, ...]
) -> tuple[Any, dict[str, str], Any]:
    """The HTTP service on the extracts in `data`, a researcher `res` in project `p`
    (forskning, budget 10, approved for `registers`): its client, the researcher's headers
    and the service's state (store, accounts)."""
    from fastapi.testclient import TestClient

    from antal.api.app import create_app
    from antal.api.settings import Settings

    app = create_app(Settings(data=data, store=str(store)))
    st = app.state.antal
    st.accounts.create_user("res", "R", "researcher")
    st.store.create_project("p", "P", "forskning", 10.0, registers)
    st.accounts.add_member("p", "res")
    return TestClient(app), {"Authorization": f"Bearer {st.accounts.issue_token('res')}"}, st
