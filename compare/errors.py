"""Exception classes a user can trigger; the CLI turns them into one line and exit code 2."""


class CaitError(Exception):
    """Base class of the errors that the `cait` CLI reports without a traceback."""


class ConfigError(CaitError, ValueError):
    """An input file or command-line value is malformed, out of range or inconsistent."""


class InputFileError(ConfigError):
    """A data file named by the input (CSV profile, SED table, dataset) cannot be used."""


class RunInterrupted(CaitError):
    """A run stopped on SIGINT/SIGTERM after writing what it had (status "interrupted").

    The CLI prints the message and exits with ``exit_code`` (128 + the signal number)."""

    def __init__(self, message, exit_code=130):
        super().__init__(message)
        self.exit_code = int(exit_code)
