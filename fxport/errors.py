"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""


class FxportError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class CaptureError(FxportError):
    """A model could not be captured at all (nothing usable was traced)."""
