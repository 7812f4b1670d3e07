"""Files hashed and written durably: the index and the models are checked by sha256, and a
build flushes what it writes before switching to it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_synced(path: Path, data: bytes | memoryview) -> None:
    """Write a file and flush it to disk; every write error surfaces as `OSError`."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_tree(folder: Path) -> None:
    """Flush every file under `folder`, then the folder, to disk."""
    for path in sorted(folder.rglob("*"), reverse=True):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(folder)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (new names, renames) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
