"""Example inputs for torchvision models outside the zoo (`--inputs tests.vision_inputs:NAME`)."""

import torch


def raft_pair():
    """Two frames for RAFT, and a keyword argument: 3 refinement steps instead of 12."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.rand(2, 1, 3, 128, 128, generator=generator) * 2 - 1
    return (frames[0], frames[1]), {"num_flow_updates": 3}


def image_list() -> tuple:
    """A detector's input as users pass it: a list with one 3x160x160 image in [0, 1)."""
    generator = torch.Generator().manual_seed(0)
    return ([torch.rand(3, 160, 160, generator=generator)],)


def image_list_320() -> tuple:
    """One 3x320x320 image in [0, 1), the size the 320 detectors resize to."""
    generator = torch.Generator().manual_seed(0)
    return ([torch.rand(3, 320, 320, generator=generator)],)
