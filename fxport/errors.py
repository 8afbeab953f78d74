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


class InvalidSetting(FxportError, ValueError):
    """A run setting given a value it does not take (from Python: the CLI's choices catch it first)."""


class CaptureError(FxportError):
    """A model could not be captured at all (nothing usable was traced)."""


def no_ops_captured(model: str) -> CaptureError:
    """`trace` and `run` of a model whose outputs no tensor op computes (an Identity, a forward
    returning None): nothing was judged, so there is no verdict to report."""
    return CaptureError(
        f"{model}: captured 0 aten nodes: its outputs are computed by no tensor op "
        "(does forward return tensors computed from its input?)"
    )


def model_code_exit(model: str, exc: BaseException) -> str:
    """The one line for a model whose code raised SystemExit or another BaseException (not an
    Exception): it must not end fxport, nor pass for an fxport exit code."""
    detail = f"({exc.code!r})" if isinstance(exc, SystemExit) else f": {' '.join(str(exc).split())[:160]}"
    return (
        f"{model}: model code raised {type(exc).__name__}{detail}; fxport stopped this model "
        "(a model must raise an exception, not exit)"
    )


class EnvironmentFault(FxportError):
    """The environment is broken (a damaged cache, a toolchain that does not work, a device that
    stops responding, not enough host memory): never a verdict on the model. The message says
    how to fix it."""

    exit_code = EXIT_ENVIRONMENT
