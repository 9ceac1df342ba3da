"""The domain's one exception hierarchy. The API maps each class to one HTTP status."""

from __future__ import annotations


class MovieRecError(Exception):
    """Base of every error the domain raises on purpose."""


class NotFoundError(MovieRecError):
    """An entity the caller named does not exist (404)."""


class InvalidInputError(MovieRecError):
    """The caller's input is wrong (400). `field` names the offending field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConflictError(MovieRecError):
    """The request conflicts with the current state (409)."""


class IndexUnavailableError(MovieRecError):
    """The vector index is not built or cannot be reached (503)."""


class ModelUnavailableError(MovieRecError):
    """Model weights cannot be found locally and cannot be downloaded."""


class DiskSpaceError(MovieRecError):
    """Too little free disk for what an ingest is about to write (507); nothing was written."""


class DatabaseUnavailableError(MovieRecError):
    """The database of record cannot be reached, does not answer in time, or is read-only (503)."""
