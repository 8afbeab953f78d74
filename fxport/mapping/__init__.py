"""The aten -> TT-NN mapping table. Importing this package registers every rule family."""

from fxport.mapping import (  # noqa: F401  (each module registers its rules)
    activation,
    attention,
    conv_pool,
    creation,
    data_movement,
    eltwise,
    embedding,
    fused,
    matmul,
    normalization,
    reduction,
)
from fxport.mapping.registry import FAMILIES, REGISTRY, Registry, Rule, rule

__all__ = ["FAMILIES", "REGISTRY", "Registry", "Rule", "rule"]
