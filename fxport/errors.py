"""Errors that reach the user as one clear line (the CLI prints them without a traceback), and the
exit code each one ends a command with (docs/exit-codes.md)."""

EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug in fxport: the only case that suggests --debug for a traceback
EXIT_USER = 2  # bad input: a model, a shape, an option, a document, an output directory
EXIT_ENVIRONMENT = 3  # the machine or its setup cannot run fxport (toolchain, cache, device, memory)
EXIT_INCOMPLETE = 4  # `fxport sweep`: every entry ran, but some produced no result
EXIT_INACCURATE = 5  # `fxport run`/`sweep` with values: an end-to-end PCC below the threshold
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT); what was computed is kept


class FxportError(Exception):
    """A problem with the user's input, explained in one line."""

    exit_code = EXIT_USER


class CaptureError(FxportError):
    """A model could not be captured at all (nothing usable was traced)."""


class EnvironmentFault(FxportError):
    """The environment is broken (a damaged cache, a toolchain that does not work, a device that
    stops responding, not enough host memory): never a verdict on the model. The message says
    how to fix it."""

    exit_code = EXIT_ENVIRONMENT
