"""Tabular outputs: one Parquet file per asset and partition, and DuckDB views over them all.

Parquet files are written atomically and read by anyone; the DuckDB catalog holds only views (no data), so its
single writer is whatever refreshes the views, and readers open it read-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from whisper_assets.files import atomic_path

TABLE_FILE = "part.parquet"


def table_path(tables_root: Path, table: str, partition: str | None = None) -> Path:
    folder = tables_root / table / (f"source={partition}" if partition else "all")
    return folder / TABLE_FILE


def partition_keys_of(tables_root: Path, table: str) -> list[str]:
    """The partitions a table has files for."""
    return sorted(
        p.parent.name.removeprefix("source=") for p in (tables_root / table).glob(f"source=*/{TABLE_FILE}")
    )


def remove_partition(tables_root: Path, table: str, partition: str) -> None:
    table_path(tables_root, table, partition).unlink(missing_ok=True)


def write_rows(path: Path, rows: Sequence[dict], schema: pa.Schema) -> None:
    """Write rows atomically with a fixed schema (so an empty table still has its columns)."""
    table = pa.Table.from_pylist(list(rows), schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_rows(path: Path) -> list[dict]:
    """A table file's rows ([] when there is none). `ParquetFile` reads the one file directly: `pq.read_table`
    goes through pyarrow.dataset, whose first import (pandas with it) costs ~1 s in every step process."""
    return pq.ParquetFile(path).read().to_pylist() if path.exists() else []


def read_table_all(tables_root: Path, table: str) -> list[dict]:
    """Rows of every partition of a table."""
    rows: list[dict] = []
    for path in sorted((tables_root / table).glob(f"*/{TABLE_FILE}")):
        rows.extend(read_rows(path))
    return rows


def refresh_catalog(catalog_path: Path, tables_root: Path, tables: Iterable[str]) -> list[str]:
    """(Re)create one DuckDB view per table over its Parquet files; return the view names."""
    created = []
    with duckdb.connect(str(catalog_path)) as con:
        for table in tables:
            pattern = (tables_root / table / "*" / TABLE_FILE).resolve()
            if not any((tables_root / table).glob(f"*/{TABLE_FILE}")):
                continue
            con.execute(
                f"CREATE OR REPLACE VIEW {table} AS "
                f"SELECT * FROM read_parquet('{pattern.as_posix()}', union_by_name = true, "
                "hive_partitioning = false)"  # the rows' own `source` column, not the folder's (a shard key)
            )
            created.append(table)
    return created


def query(catalog_path: Path, sql: str) -> tuple[list[str], list[tuple]]:
    """Run a read-only query against the catalog: column names and rows."""
    with duckdb.connect(str(catalog_path), read_only=True) as con:
        result = con.execute(sql)
        return [d[0] for d in result.description], result.fetchall()
