"""Op families as users group them in coverage reports (data: patterns over aten op names).

These are the reporting categories of the seed reports, not the mapping table's modules: an op
no rule maps still belongs to a family. First match wins.
"""

from __future__ import annotations

import re

# Each pattern must match the whole op name (aten.<name>.<overload>), leading underscores ignored.
FAMILY_PATTERNS: tuple[tuple[str, str], ...] = (
    ("attention", r"scaled_dot_product\w*|softmax|log_softmax|\w*attention\w*"),
    ("linear/matmul", r"linear|addmm|baddbmm|mm|bmm|matmul|dot"),
    ("convolution/pooling", r"conv\w*|convolution|\w*pool\w*|upsample\w*"),
    ("normalization", r"\w*norm\w*"),
    ("activation", r"(leaky_)?relu6?|gelu|silu|sigmoid|tanh|hardswish|hardsigmoid|hardtanh|mish|"
                   r"softplus|elu|log_sigmoid\w*"),
    ("embedding", r"embedding\w*"),
    ("concatenation", r"cat|concat|stack|split\w*|unbind|chunk"),
    ("reduction", r"sum|mean|amax|amin|max|min|argmax|argmin|var\w*|std\w*|prod|any|all|cumsum"),
    ("elementwise", r"r?add|r?sub|mul|r?div|pow|exp|exp2|expm1|log|log2|log1p|sqrt|rsqrt|neg|abs|"
                    r"where|clamp\w*|eq|ne|lt|le|gt|ge|sin|cos|erf|floor|ceil|round|sign|"
                    r"reciprocal|fmod|remainder|maximum|minimum|logical_\w+|bitwise_\w+|"
                    r"masked_fill|isnan|isinf|square|lerp|trunc"),
    ("data movement", r"view|unsafe_view|reshape|permute|transpose|t|expand|slice|select|squeeze|"
                      r"unsqueeze|clone|copy|alias|contiguous|flatten|unflatten|repeat|index\w*|"
                      r"gather|scatter|slice_scatter|select_scatter|roll|flip|pad|constant_pad_nd|"
                      r"to_copy|to|lift_fresh_copy"),
    ("utilities", r".*"),  # creation ops (full, arange, zeros, ...) and anything else
)

_COMPILED = tuple((family, re.compile(pattern)) for family, pattern in FAMILY_PATTERNS)


def op_family(target: str) -> str:
    """'aten.linear.default' -> 'linear/matmul'."""
    name = (target.split(".")[1] if target.count(".") >= 2 else target).lstrip("_")
    return next(family for family, rx in _COMPILED if rx.fullmatch(name))


def module_group(module: str) -> str:
    """The top-level submodule an op belongs to (PI0: siglip, projector, gemma, expert, prefix,
    suffix, denoise); "<top>" for ops of the root module's own forward."""
    return module.split(".")[0] if module else "<top>"
