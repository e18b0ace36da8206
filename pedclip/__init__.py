"""pedclip: evaluate CLIP-family models on pediatric chest X-rays from one local embedding store.

The small public API, imported lazily so that `import pedclip` (and `pedclip --help`) stays fast:

    from pedclip import Store, load_encoder, ingest, embed_dataset, embed_texts
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Store": "pedclip.store",
    "Paths": "pedclip.config",
    "PedclipError": "pedclip.errors",
    "Encoder": "pedclip.models",
    "load_encoder": "pedclip.models",
    "parse_spec": "pedclip.models",
    "list_specs": "pedclip.models",
    "save_local": "pedclip.models",
    "ingest": "pedclip.data.ingest",
    "embed_dataset": "pedclip.embed.pipeline",
    "EmbedConfig": "pedclip.embed.pipeline",
    "embed_texts": "pedclip.embed.text",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pedclip' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
