"""User models for the fault-injection suite (named as `tests.fault_models:NAME`)."""

import os
from pathlib import Path

import torch
from torch import nn


class Marker(nn.Module):
    """Touches $FXPORT_TEST_MARKER when built: proves whether any work started."""

    def __init__(self):
        super().__init__()
        Path(os.environ["FXPORT_TEST_MARKER"]).touch()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x)


class NoTensorOutput(nn.Module):
    """Returns a constant: there is no tensor op to capture."""

    def forward(self, x):
        return 3


class Huge(nn.Module):
    """A 2^40-element weight: building it with real values needs 4 TiB of host memory."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(2**20, 2**20))

    def forward(self, x):
        return x @ self.weight


class Crasher(nn.Module):
    """Kills its own process with SIGSEGV when traced: a crash in native code, as a worker sees it."""

    def forward(self, x):
        import signal

        os.kill(os.getpid(), signal.SIGSEGV)
        return x


class Sleeper(nn.Module):
    """Never finishes tracing: an entry that hangs."""

    def forward(self, x):
        import time

        time.sleep(3600)
        return x


class ExitsInForward(nn.Module):
    """Calls sys.exit(7) when run: model code that would end its host process."""

    def forward(self, x):
        import sys

        sys.exit(7)


class RaisesBaseException(nn.Module):
    """Raises a BaseException that is not an Exception."""

    class Stop(BaseException):
        pass

    def forward(self, x):
        raise self.Stop("stop everything")


class ReturnsNone(nn.Module):
    def forward(self, x):
        return None


class AllNaN(nn.Module):
    """Its fp32 output is NaN everywhere: a reference that can show nothing."""

    def forward(self, x):
        return x * float("nan")


def nested_inputs():
    """`--inputs` returning a tensor inside lists nested 5,000 deep."""
    value = torch.ones(1, 4)
    for _ in range(5000):
        value = [value]
    return (value,)


class ChangesDirectory(nn.Module):
    """Changes the working directory when built: results must still go to --out as given."""

    def __init__(self):
        super().__init__()
        os.chdir(os.environ["FXPORT_TEST_CHDIR"])
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x)
