"""Small user-supplied models for the capture and CLI tests (named as `tests.user_models:NAME`)."""

import dataclasses

import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.head(x.mean(dim=(2, 3)))


def tiny_mlp():
    return nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4))


def not_a_model():
    return 42


NOT_CALLABLE = [1, 2, 3]


class NeedsArgs(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.lin = nn.Linear(width, width)


class DataDependent(nn.Module):
    """Branches on a tensor value: torch.export cannot capture it whole, dynamo splits it."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 8)

    def forward(self, x):
        y = self.a(x)
        if y.sum() > 0:
            y = y * 2
        return self.b(y)


class Broken(nn.Module):
    def forward(self, x):
        raise RuntimeError("this model cannot run")


class TwoInputs(nn.Module):
    """Two positional tensors and an optional keyword mask: what --input (repeated) and --inputs feed."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x, y, mask=None):
        out = self.a(x) + self.b(y)
        return out if mask is None else out * mask.unsqueeze(-1)


def two_inputs_args():
    return torch.randn(2, 4, 8), torch.randn(2, 4, 8)


def two_inputs_kwargs():
    return (torch.randn(2, 4, 8),), {"y": torch.randn(2, 4, 8), "mask": torch.ones(2, 4)}


def not_inputs():
    return "a string"


class Embed(nn.Module):
    """Integer token ids in, a factory argument for the table size."""

    def __init__(self, vocab=100, width=16):
        super().__init__()
        self.table = nn.Embedding(vocab, width)
        self.proj = nn.Linear(width, width)

    def forward(self, ids):
        return self.proj(self.table(ids))


@dataclasses.dataclass
class Parts:
    """An output type nobody registered with pytree."""

    main: torch.Tensor
    extras: list


class NestedOutputs(nn.Module):
    """A dict holding a tuple and a dataclass with a list: every leaf gets its own PCC by path."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 4)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return {"pair": (h, self.b(h)), "parts": Parts(h.sigmoid(), [h * 2, self.b(x)])}


class Independent(nn.Module):
    """One output follows the input; one is the same for every input (a head fed with zeros); one
    is constant. Only the first has a PCC that means anything."""

    def __init__(self):
        super().__init__()
        self.live, self.head = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        return {"live": self.live(x), "fixed": self.head(torch.zeros_like(x)), "constant": torch.ones_like(x) * 3}


class TopLevelMath(nn.Module):
    """Two inputs and arithmetic in the model's own forward, with an op no rule maps (lgamma)
    among it: host nodes whose module is the model itself."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x, y):
        h = self.a(x) * 2 + y
        return self.b(torch.lgamma(h.abs() + 1)) - x.mean()


class HostIsland(nn.Module):
    """Two linears around an op TT-NN has no kernel for (cumprod): one host island whose input
    comes back from the device and whose output goes to it again (cost model tests)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(64, 64), nn.Linear(64, 64)

    def forward(self, x):
        return self.b(torch.cumprod(torch.tanh(self.a(x)) * 0.1 + 1.0, dim=-1))


class ConvCat(nn.Module):
    """YOLO's SPPF join in small: a conv's output beside max pools of it, joined along channels,
    then a linear head (the join of block-float conv outputs with row-major pool outputs)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(5, stride=1, padding=2)
        self.head = nn.Linear(48 * 8 * 8, 10)

    def forward(self, x):
        y = self.conv(x)
        p = self.pool(y)
        return self.head(torch.cat([y, p, self.pool(p)], dim=1).flatten(1))
