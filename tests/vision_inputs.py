"""Example inputs for torchvision models outside the zoo (`--inputs tests.vision_inputs:NAME`)."""

import torch


def raft_pair():
    """Two frames for RAFT, and a keyword argument: 3 refinement steps instead of 12."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.rand(2, 1, 3, 128, 128, generator=generator) * 2 - 1
    return (frames[0], frames[1]), {"num_flow_updates": 3}
