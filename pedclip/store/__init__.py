"""The only code that touches DuckDB and FAISS."""

from pedclip.store.db import Store

__all__ = ["Store"]
