"""Exceptions raised by Strata, with the Rust message.

Every class derives from :class:`StrataError`, and also from the built-in a caller would catch
without knowing Strata (a bad spec is a ``ValueError``, a lake failure an ``OSError``).
"""

from __future__ import annotations


class StrataError(Exception):
    """Base class of every Strata error."""


class SpecError(StrataError, ValueError):
    """The pipeline spec is invalid: fix the YAML (the message names the step and field)."""


class ConfigError(StrataError, ValueError):
    """A command's flags or configuration are invalid."""


class DataError(StrataError, RuntimeError):
    """A batch could not be processed (its schema does not fit the pipeline, …)."""


class CheckpointError(StrataError, ValueError):
    """A checkpoint cannot be restored: foreign, of another version, or corrupt."""


class AuditError(StrataError, RuntimeError):
    """A blocking audit of a gold model failed; the model was not published."""


class LakeError(StrataError, OSError):
    """Reading or writing the lake failed (catalog, object store, a query)."""


class CommandError(StrataError, RuntimeError):
    """A command failed at run time (I/O, data, a server)."""


class StateError(StrataError, RuntimeError):
    """The API was used out of order (e.g. ``finish`` before any batch)."""


__all__ = [
    "AuditError",
    "CheckpointError",
    "CommandError",
    "ConfigError",
    "DataError",
    "LakeError",
    "SpecError",
    "StateError",
    "StrataError",
]
