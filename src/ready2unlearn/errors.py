"""User-facing error types.

Every error a user can cause (bad config, missing data file, invalid deletion request) is an
:class:`R2UError`. The CLI prints these as one line and exits with status 2; anything else is a bug and
keeps its traceback.
"""


class R2UError(Exception):
    """Base class for errors caused by user input, reported without a traceback."""


class ConfigError(R2UError, ValueError):
    """A configuration value, preset or override is invalid."""


class DataError(R2UError):
    """A dataset file is missing, corrupt, or the dataset is used in a way it does not support."""


class RequestError(R2UError, ValueError):
    """A deletion request cannot be served as stated (unknown class, empty forget set, bad ids...)."""
