"""Errors that mean "the user gave us something wrong": reported in one line.

Stages raise ``UserError`` (or a subclass) for bad flags, config files, model
files, data files and paths; the CLI prints the message without a traceback
and exits with ``exit_code``.
"""

from zeroloop import exits


class UserError(Exception):
    """A problem with the user's input, reported without a traceback."""

    exit_code = exits.USER_ERROR


class ConfigError(UserError):
    """A config file or flag value is invalid."""


class ModelFileError(UserError):
    """A model file is missing, truncated or incompatible."""


class DataFileError(UserError):
    """A data file on the shared volume is unreadable or malformed."""


class CorruptFileError(DataFileError):
    """A data file's content is malformed (not a failed read): reading it again cannot help."""
