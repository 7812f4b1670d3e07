"""What a generation of the index says about itself (`manifest.json`), and the checks that
decide whether it can serve: its format, its checksums, the settings it was built with, and the
statements it holds against those on disk."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .chunking import SPLITTER_NAME, UNITS_NAME
from .config import Settings
from .corpus import statement_paths
from .errors import CtqaError, IndexDamaged, IndexOutdated, IndexProblem
from .files import file_sha256
from .lexical import LEXICAL_SETTINGS
from .vectors import IVF_CODES

FORMAT_VERSION = 1


CURRENT = "CURRENT"


# The manifest keys that shape an index's content (see `index_settings`).
SHAPING_KEYS = ("format_version", "model", "chunking", "lexical", "vectors")


REBUILD = "rebuild with `ctqa index`"


VECTOR_INDEXES = ("auto", "flat", "ivf")


@dataclass(frozen=True)
class IndexStatus:
    """Whether an index matches its corpus and settings; `reason` says why not."""

    state: str  # "fresh", "missing", "stale" or "damaged"
    reason: str = ""

    @property
    def fresh(self) -> bool:
        return self.state == "fresh"


def index_settings(settings: Settings, model_name: str, weights_sha256: str, dim: int) -> dict:
    """Everything that shapes an index's content; a change makes the index stale. An unknown
    `vector_index` is refused here, before a build embeds anything."""
    if settings.vector_index not in VECTOR_INDEXES:
        raise CtqaError(
            f"unknown vector index {settings.vector_index!r}; use one of "
            f"{', '.join(VECTOR_INDEXES)}."
        )
    return {
        "format_version": FORMAT_VERSION,
        "model": {"name": model_name, "weights_sha256": weights_sha256, "dim": dim},
        "chunking": {
            "max_passage_tokens": settings.max_passage_tokens,
            "splitter": SPLITTER_NAME,
            "units": UNITS_NAME,
        },
        "lexical": LEXICAL_SETTINGS,
        "vectors": {
            "index": settings.vector_index,
            "ivf_from": settings.ivf_from,
            "ivf_codes": IVF_CODES,
        },
    }


def current_generation(index_dir: Path) -> Path | None:
    """Folder of the generation `CURRENT` names, or None when there is none. Cheap: one small
    read, so a long-running reader can call it per question to notice a new generation."""
    try:
        name = (Path(index_dir) / CURRENT).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexDamaged(f"{index_dir}/{CURRENT} cannot be read ({exc}); {REBUILD}.") from None
    if not name.startswith("gen-") or "/" in name or any(c.isspace() for c in name):
        raise IndexDamaged(f"{index_dir}/{CURRENT} is damaged; {REBUILD}.")
    return Path(index_dir) / name


def manifest_checksum(manifest: dict) -> str:
    """sha256 of the manifest's content without its own `checksum` entry."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_manifest(generation: Path) -> dict:
    """The generation's manifest, checked: readable, a format this ctqa reads, its checksum."""
    path = generation / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexDamaged(
            f"the index at {generation.parent} names generation {generation.name}, which is "
            f"missing or has no manifest; {REBUILD}."
        ) from None
    except (OSError, ValueError) as exc:
        raise IndexDamaged(f"the index manifest {path} is damaged ({exc}); {REBUILD}.") from None
    if not isinstance(manifest, dict):
        raise IndexDamaged(f"the index manifest {path} is damaged (not an object); {REBUILD}.")
    _check_format(manifest, generation)
    # manifests written before the checksum existed have none; their files are still checked
    if "checksum" in manifest and manifest["checksum"] != manifest_checksum(manifest):
        raise IndexDamaged(f"the index manifest {path} is damaged (checksum mismatch); {REBUILD}.")
    return manifest


def _check_format(manifest: dict, generation: Path) -> None:
    version = manifest.get("format_version")
    if version == FORMAT_VERSION:
        return
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise IndexOutdated(
            f"the index in {generation.parent} was written by a newer ctqa (index format "
            f"{version}; this one reads {FORMAT_VERSION}); {REBUILD} or upgrade ctqa."
        )
    if isinstance(version, int) and not isinstance(version, bool) and version > 0:
        raise IndexOutdated(
            f"the index in {generation.parent} has the old format {version} (this ctqa reads "
            f"{FORMAT_VERSION}); {REBUILD}."
        )
    raise IndexDamaged(
        f"the index manifest in {generation} is damaged (format {version!r}); {REBUILD}."
    )


def verify_files(generation: Path, manifest: dict) -> None:
    """Every file the manifest lists exists and has its recorded sha256."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise IndexDamaged(f"the index manifest in {generation} lists no files; {REBUILD}.")
    for name, expected in files.items():
        path = generation / name
        if ".." in Path(name).parts or not path.is_file():
            raise IndexDamaged(f"index file {path} is missing; {REBUILD}.")
        if file_sha256(path) != expected:
            raise IndexDamaged(f"index file {path} is damaged (checksum mismatch); {REBUILD}.")


def settings_difference(built: dict, expected: dict) -> str | None:
    """How the settings an index was built with differ from `expected`, in words; None if not.

    >>> settings_difference({"model": {"name": "a", "weights_sha256": "1" * 64, "dim": 4}},
    ...                     {"model": {"name": "a", "weights_sha256": "2" * 64, "dim": 4}})
    'the model a (weights 111111111111…, 4 dimensions), not a (weights 222222222222…, 4 dimensions)'
    """
    for key, wanted in expected.items():
        have = built.get(key)
        if have == wanted:
            continue
        if key == "model" and isinstance(have, dict) and isinstance(wanted, dict):
            return f"the model {_model_words(have)}, not {_model_words(wanted)}"
        return f"other {key} settings ({_compact(have)}, not {_compact(wanted)})"
    return None


def _model_words(model: dict) -> str:
    sha = str(model.get("weights_sha256"))[:12]
    return f"{model.get('name')} (weights {sha}…, {model.get('dim')} dimensions)"


def _compact(value: object) -> str:
    return json.dumps(value, sort_keys=True)[:160]


def corpus_fingerprint(corpus_dir: Path) -> dict[str, str]:
    """File name -> sha256 of every statement in the corpus folder."""
    return {path.name: file_sha256(path) for path in statement_paths(corpus_dir)}


def corpus_changes(indexed: dict[str, str], actual: dict[str, str]) -> str:
    """Statements added, removed or changed, in words; empty when none.

    >>> corpus_changes({"a.txt": "1", "b.txt": "2"}, {"a.txt": "9", "c.txt": "3", "d.txt": "4"})
    'statements added: c.txt, d.txt; statement removed: b.txt; statement changed: a.txt'
    """
    parts = []
    for verb, names in (
        ("added", sorted(actual.keys() - indexed.keys())),
        ("removed", sorted(indexed.keys() - actual.keys())),
        ("changed", sorted(n for n in actual.keys() & indexed.keys() if actual[n] != indexed[n])),
    ):
        if names:
            noun = "statement" if len(names) == 1 else "statements"
            shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if names[10:] else "")
            parts.append(f"{noun} {verb}: {shown}")
    return "; ".join(parts)


def check_status(index_dir: Path, corpus_dir: Path | None, expected_settings: dict) -> IndexStatus:
    """Compare an index with its corpus and the code's settings, without loading vectors.
    Changes nothing on disk."""
    try:
        generation = current_generation(index_dir)
        if generation is None:
            return IndexStatus("missing", f"there is no index in {index_dir}")
        manifest = read_manifest(generation)
        verify_files(generation, manifest)
    except IndexOutdated as exc:
        return IndexStatus("stale", str(exc))
    except IndexProblem as exc:
        return IndexStatus("damaged", str(exc))
    if (difference := settings_difference(manifest, expected_settings)) is not None:
        return IndexStatus("stale", f"it was built with {difference}")
    if corpus_dir is not None:
        documents = manifest.get("documents", [])
        indexed = {d["path"]: d["sha256"] for d in documents if isinstance(d, dict)}
        if changes := corpus_changes(indexed, corpus_fingerprint(corpus_dir)):
            return IndexStatus("stale", changes)
    return IndexStatus("fresh")
