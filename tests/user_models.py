"""Small user-supplied models for the capture and CLI tests (named as `tests.user_models:NAME`)."""

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
