"""Shared test helpers: the canonical extract schemas and a writer of tiny Parquet extracts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_ID = ("lopnr", pa.int64())
_S = pa.string()
_D = pa.date32()
_F = pa.float64()
_I16 = pa.int16()

# The canonical layout of extracts.md as Arrow schemas, written out by hand (not read from
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
        ]
    ),
    "lmr": pa.schema([_ID, ("edatum", _D), ("atc", _S), ("antal", _F), ("ddd", _F)]),
    "rekvisition": pa.schema([_ID, ("adm_datum", _D), ("atc", _S), ("sjukhus", _S), ("mvo", _S)]),
    "dors": pa.schema([_ID, ("dodsdat", _D), ("ulorsak", _S)]),
    "ndr": pa.schema(
        [_ID, ("regdat", _D), ("diabetestyp", _I16), ("hba1c", _F), ("bmi", _F), ("systoliskt", _F)]
    ),
    "nkbc": pa.schema([_ID, ("diagnosdatum", _D), ("er", _S), ("her2", _S), ("stadium", _S)]),
    "gms": pa.schema([_ID, ("provdatum", _D), ("gene", _S), ("variant", _S), ("klass", _S)]),
    "biobank": pa.schema([_ID, ("provdatum", _D), ("provtyp", _S), ("biobank", _S)]),
    "optout": pa.schema([_ID, ("datum", _D), ("andamal", _S)]),
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
