"""ctqa: cited answers from official statements, retrieved, never written.

>>> from ctqa import answer                                   # doctest: +SKIP
>>> answer("Who led the French delegation?").citations[0].paragraph   # doctest: +SKIP
3

Importing ctqa is light: torch, FAISS and Gradio load only when first needed.
"""

from .config import Settings
from .errors import BadQuestion, CorpusError, CtqaError, IndexProblem, ModelError

__all__ = [
    "Answer",
    "Bot",
    "Citation",
    "Settings",
    "answer",
    "BadQuestion",
    "CorpusError",
    "CtqaError",
    "IndexProblem",
    "ModelError",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("Answer", "Citation"):
        from . import results

        return getattr(results, name)
    if name in ("Bot", "answer"):
        from . import bot

        return getattr(bot, name)
    raise AttributeError(f"module 'ctqa' has no attribute {name!r}")
