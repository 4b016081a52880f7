"""Exceptions of the KMC engine (``kmc`` must not import ``compare``; ``compare`` maps these)."""


class KMCError(Exception):
    """Base class of all errors raised by the KMC engine."""


class KMCConfigError(KMCError, ValueError):
    """Invalid or incompatible engine parameters (names the key, the value and what is legal)."""


class KMCStateError(KMCError):
    """A state bundle (e.g. a checkpoint) does not fit the parameters it is resumed with."""
