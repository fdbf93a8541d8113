"""One family of domain errors: the CLI turns any of them into one red line and exit code 1."""


class TargetingError(Exception):
    """Base class of every error a user can fix (bad file, bad option, missing model)."""


class InputFileError(TargetingError):
    """A file cannot be used at all: unreadable, empty, wrong encoding beyond repair."""


class SchemaError(TargetingError):
    """A file-level schema problem (missing required column, wrong column type for the whole column)."""


class ConfigError(TargetingError):
    """An option or configuration value is invalid."""


class LeakageError(TargetingError):
    """A feature would use information from after a row's as-of time."""


class ModelNotFoundError(TargetingError):
    """A model URI does not resolve to a registered or logged model."""


class ModelArtifactError(TargetingError):
    """A logged model's files are damaged: they do not match the checksums recorded when it was saved, or
    cannot be parsed."""
