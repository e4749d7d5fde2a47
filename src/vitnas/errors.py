"""Exceptions a user can act on.

The library raises these with a message that names the problem; the CLI turns any
``VitnasError`` into one line on stderr and exit code 2 instead of a traceback.
"""


class VitnasError(Exception):
    """Base class for every error vitnas reports to a user."""


class ArchitectureError(VitnasError, ValueError):
    """An architecture is malformed or outside its search space."""


class DatasetError(VitnasError):
    """A dataset is missing, truncated or corrupt (the message names the file)."""


class ConfigError(VitnasError, ValueError):
    """An option, name or setting is unknown or out of range."""
