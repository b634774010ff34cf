"""One exception hierarchy for the whole package.

Every error the library raises on purpose derives from :class:`CctvSrError`. Subclasses also
derive from the matching builtin, so callers that already catch ``OSError`` or ``ValueError``
keep working. Messages are one line that names the input and what is wrong with it.
"""

from __future__ import annotations


class CctvSrError(Exception):
    """Base class of every error raised on purpose by cctv-sr."""


class SourceError(CctvSrError, OSError):
    """A video file or stream cannot be opened or read."""


class ConfigError(CctvSrError, ValueError):
    """A setting, option or config file is invalid."""


class ModelError(CctvSrError, RuntimeError):
    """Model weights are missing, corrupt or do not match their manifest."""


class BackendUnavailableError(CctvSrError, ImportError):
    """A backend's optional dependency is not installed (the message names the pip extra)."""


class OutputError(CctvSrError, OSError):
    """The output directory cannot be written."""

    @classmethod
    def cannot_write(cls, path: object, exc: OSError) -> OutputError:
        """The one-line error for a failed write of ``path`` (``No space left on device``,
        not a traceback)."""
        return cls(f"{path}: cannot write: {exc.strerror or exc}")


class PipelineError(CctvSrError, RuntimeError):
    """A pipeline stage failed; the original exception is chained as ``__cause__``."""


class ContractError(CctvSrError, ValueError):
    """An array or record broke its documented contract (shape, dtype, length, range).

    This is a bug in the component that made the value (a backend returning a wrong array, a
    stage passing a wrong record), not a setting the user can fix; the CLI says so.
    """
