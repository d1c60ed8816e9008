"""Atomic file writing, the one way every output is written (shards, topology, manifest, plan,
unit records, the trainer's model file and ablation state): write
``<name>.tmp-<host>-<pid>-<random>`` next to the target (unique across the hosts of a cluster
writing one shared folder), fsync it, rename it over the target. A killed writer leaves at
most a ``*.tmp-*`` file (builds delete them, ``shards verify`` reports them), never a
half-written target.

In ``shards/``, the lowest package that writes files this way (``pipeline/`` and ``trainer/``
import it).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "commit", "temp_path", "write_atomic"]


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name for a write of ``path``: ``<name>.tmp-<host>-<pid>-<random>``
    (the pid alone repeats across hosts; the random part across calls)."""
    path = Path(path)
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
    return path.with_name(f"{path.name}.tmp-{host}-{os.getpid()}-{secrets.token_hex(4)}")


def commit(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Make the finished temporary file ``tmp`` durable (fsync) and rename it to ``path``."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """``with atomic_path(p) as tmp: <write tmp>``: on success ``tmp`` is fsync'ed and renamed
    to ``p``; on an exception it is deleted and ``p`` is left as it was."""
    tmp = temp_path(path)
    try:
        yield tmp
        commit(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
