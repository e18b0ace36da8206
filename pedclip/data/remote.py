"""Sources addressed by URL (s3://, gs://, hdfs://, file://...), read through pyarrow's filesystems.

A CSV manifest may list URLs instead of paths, so that every node of a cluster reads the same object store.
Credentials and regions come from the environment, as pyarrow's filesystems read them.
"""

from __future__ import annotations

import os


def is_url(path: str | os.PathLike) -> bool:
    """True for 'scheme://...' (a plain path, even one containing ':', is not a URL)."""
    text = str(path) if isinstance(path, str) else ""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isidentifier()


def url_name(url: str) -> str:
    """The last segment of a URL (the file name), without a query string."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def read_url(url: str) -> bytes:
    """The bytes at `url`; OSError (with the URL in the message) when it cannot be read."""
    import pyarrow as pa
    from pyarrow import fs

    try:
        filesystem, inner = fs.FileSystem.from_uri(url)
        with filesystem.open_input_stream(inner) as stream:
            return stream.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise OSError(f"{url} cannot be read through pyarrow ({exc})") from exc
