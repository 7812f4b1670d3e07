"""The index for a process that runs for days: a new generation is picked up without a
restart."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from .errors import IndexProblem
from .manifest import SHAPING_KEYS, current_generation
from .store import Index, load_index

T = TypeVar("T")


class LiveIndex(Generic[T]):
    """What `make` builds from the current generation, for a reader that runs for days.

    `get()` checks `CURRENT` (one small read) and, when a build has switched it, loads the new
    generation and swaps it in; a caller holds on to what `get()` returned for a whole search,
    so each search completes on one generation. While one thread loads a new generation the
    others keep getting the old one. A new generation that fails to load is reported once
    through `log` and the old one keeps serving.

    >>> live = LiveIndex(index_dir, load_index(index_dir), make=lambda ix: ix)  # doctest: +SKIP
    >>> live.get().folder.name                                                 # doctest: +SKIP
    'gen-20261127T002359-2234341a'
    """

    def __init__(self, index_dir: Path, first: Index, make: Callable[[Index], T], log=None):
        self.index_dir = Path(index_dir)
        self._make = make
        self._expected = {key: first.manifest.get(key) for key in SHAPING_KEYS}
        self._log = log or (lambda message: None)
        self._loading = threading.Lock()
        self._refused: str | None = None
        self._served = (first.folder.name, make(first))  # one tuple: swapped in one step

    @property
    def generation(self) -> str:
        """Name of the generation `get()` serves."""
        return self._served[0]

    def get(self) -> T:
        name, value = self._served
        wanted = self._wanted()
        if wanted is None or wanted in (name, self._refused):
            return value
        if not self._loading.acquire(blocking=False):
            return value
        try:
            return self._reload()
        finally:
            self._loading.release()

    def _wanted(self) -> str | None:
        try:
            generation = current_generation(self.index_dir)
        except IndexProblem:
            return None
        return generation.name if generation is not None else None

    def _reload(self) -> T:
        name, value = self._served
        wanted = self._wanted()
        if wanted is None or wanted in (name, self._refused):
            return value
        try:
            index = load_index(self.index_dir, self._expected)
        except IndexProblem as exc:
            self._refused = wanted
            self._log(f"the new index generation {wanted} is not used: {exc}")
            return value
        self._served = (index.folder.name, self._make(index))
        return self._served[1]
