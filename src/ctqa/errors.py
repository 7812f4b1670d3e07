"""The errors ctqa raises; each message says what happened and what to do."""


class CtqaError(Exception):
    """Base class: anything ctqa reports to a person as one clear sentence."""


class BadQuestion(CtqaError, ValueError):
    """The question cannot be asked as given (empty, too long, not text...)."""


class CorpusError(CtqaError):
    """A statement file or folder cannot be read as a corpus."""


class ModelError(CtqaError):
    """The bundled embedding model is missing or not the one ctqa was built for."""


class IndexProblem(CtqaError):
    """The index is missing, damaged, stale or cannot be written."""


class IndexDamaged(IndexProblem):
    """An index file is missing, damaged or inconsistent with the others."""


class IndexOutdated(IndexProblem):
    """The index was built with another format, model or settings than this ctqa uses."""


class IndexWriteError(IndexProblem):
    """A build could not write its generation (disk full, read-only folder)."""
