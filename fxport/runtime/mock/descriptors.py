"""Mock cluster descriptors shipped as data (one YAML file per supported board)."""

from pathlib import Path

from fxport.settings import ARCHS

_HERE = Path(__file__).resolve().parent
MOCK_ARCHES = ARCHS  # a descriptor file each


def descriptor_path(arch: str) -> Path:
    """The cluster-descriptor YAML for `arch`, for TT_METAL_MOCK_CLUSTER_DESC_PATH."""
    if arch not in MOCK_ARCHES:
        known = ", ".join(MOCK_ARCHES)
        raise ValueError(f"no mock cluster descriptor for {arch!r}; known: {known}")
    return _HERE / f"{arch}.yaml"
