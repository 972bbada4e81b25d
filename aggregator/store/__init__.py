"""Where rollups live: :func:`open_store` picks SQLite (a file) or PostgreSQL (a URL)."""

from __future__ import annotations

from pathlib import Path

from aggregator.errors import StoreError
from aggregator.store.base import Run, Store

__all__ = ["Run", "Store", "open_store"]


def open_store(url: str, state_dir: Path) -> Store:
    """``postgresql://...`` or ``sqlite:PATH``; empty: ``state_dir/ioinagg.db``. Schema created."""
    store: Store
    try:
        if url.startswith(("postgresql://", "postgres://")):
            from aggregator.store.postgres import PostgresStore

            store = PostgresStore(url)
        else:
            from aggregator.store.sqlite import SqliteStore

            path = Path(url.removeprefix("sqlite:")) if url else state_dir / "ioinagg.db"
            path.parent.mkdir(parents=True, exist_ok=True)
            store = SqliteStore(path)
    except StoreError:
        raise
    except Exception as exc:  # the driver's connect error (sqlite3 / psycopg / OSError)
        raise StoreError("open", f"{url or state_dir}: {exc}") from exc
    store.create()
    return store
