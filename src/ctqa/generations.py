"""Switching an index folder to a new generation safely.

An index folder holds generations; `CURRENT` names the one in use. A build writes a complete
new generation beside it under the folder's lock, flushes it to disk and switches `CURRENT` with
an atomic rename, so a reader sees the old generation or the new one, never a mix, and an
interrupted build leaves the previous one in use. The generation before the current one is
kept, so that a reader that read `CURRENT` just before a switch can still load it; older ones
and what interrupted builds left are removed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from .errors import IndexProblem, IndexWriteError
from .files import fsync_dir, fsync_tree, write_synced
from .manifest import CURRENT, current_generation
from .store import write_generation

# The names a build gives what it writes (`write_and_switch`): only these are ever removed, so a
# folder of the user's that happens to start with "gen-" is never touched.
GENERATION_NAME = re.compile(r"gen-\d{8}T\d{6}-[0-9a-f]{8}")
STAGING_NAME = re.compile(rf"\.{GENERATION_NAME.pattern}\.tmp")
POINTER_NAME = re.compile(rf"\.{CURRENT}\.[0-9a-f]{{8}}\.tmp")


@contextlib.contextmanager
def build_lock(index_dir: Path):
    """Only one build at a time per index folder (released by the kernel if a build dies)."""
    try:
        handle = open(index_dir / ".lock", "a")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise IndexWriteError(write_failure(index_dir, exc, current_name(index_dir))) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_name(index_dir: Path) -> str | None:
    try:
        generation = current_generation(index_dir)
    except IndexProblem:
        return None
    return generation.name if generation is not None else None


def write_and_switch(index_dir, documents, contents, shaping, corpus_dir, previous) -> Path:
    """Write the generation under a temporary name, flush it, rename it and point `CURRENT`
    at it; on failure remove what was written and leave `CURRENT` as it was."""
    name = f"gen-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    staging = index_dir / f".{name}.tmp"
    final = index_dir / name
    pointer = index_dir / f".{CURRENT}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        staging.mkdir()
        write_generation(staging, documents, contents, shaping, corpus_dir)
        fsync_tree(staging)
        os.rename(staging, final)
        write_synced(pointer, (name + "\n").encode("utf-8"))
        os.replace(pointer, index_dir / CURRENT)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        with contextlib.suppress(OSError):
            pointer.unlink(missing_ok=True)
        raise IndexWriteError(write_failure(index_dir, exc, previous)) from None
    # the switch is done; a failed directory flush only weakens durability on power loss
    with contextlib.suppress(OSError):
        fsync_dir(index_dir)
    return final


def write_failure(index_dir: Path, exc: OSError, previous: object) -> str:
    """One sentence: what stopped the build, what to do, and what still serves."""
    if (index_dir.exists() and not index_dir.is_dir()) or exc.errno == errno.ENOTDIR:
        cause = "it, or a folder above it, is a file"
        fix = "pass --index a folder (new or an index's)"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        cause, fix = "the disk is full", "free disk space"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        cause = "the folder is read-only"
        fix = "make it writable (or pass another --index folder)"
    else:
        cause = "the write failed"
        fix = "free disk space or fix the folder's permissions"
    detail = exc.strerror or str(exc)
    rest = "the previous index is still in use" if previous else "no index was written"
    return (
        f"cannot write the index in {index_dir}: {cause} ({detail}); {fix} and run "
        f"`ctqa index` again; {rest}."
    )


def remove_leftovers(index_dir: Path) -> None:
    """Remove what interrupted builds left: temporary generations and pointer files. Runs
    under the build lock, so no build is writing them."""
    for path in index_dir.iterdir():
        if STAGING_NAME.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif POINTER_NAME.fullmatch(path.name) and not path.is_dir():
            with contextlib.suppress(OSError):
                path.unlink()


def remove_old_generations(index_dir: Path, keep: set[str | None]) -> None:
    """Delete generations other than `keep` (the new one and the one it replaced: a reader
    may have just read its name) and leftovers of interrupted builds."""
    remove_leftovers(index_dir)
    for path in index_dir.iterdir():
        if (
            GENERATION_NAME.fullmatch(path.name)
            and path.name not in keep
            and path.is_dir()
            and not path.is_symlink()
        ):
            shutil.rmtree(path, ignore_errors=True)
