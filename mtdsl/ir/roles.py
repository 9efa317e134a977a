"""The roles a name of the IR plays besides naming a program's own tensor: one table, one reader.

The derivative passes (`codegen/terms.py`, `codegen/fuse.py`, `runtime/native_products.py`)
add kernels, domains and data sources that no program declares: the rows of a computed
tensor's gradient, its values as scatter kernels wrote them, the row maps of scatter kernels,
cotangents and tangents, fused kernels. Until they become node and domain types of the IR
(issue #15, "gradient roles as IR types"), they travel as reserved names `·role·...` (`·` is
not a character of the language's names, so they never meet a program's). This module is the
one place that spells the roles: a consumer asks `role_of(name) is Role.ROWS`, and never tests
a prefix of its own.
"""

from __future__ import annotations

import enum
from typing import Optional

SEPARATOR = "·"


class Role(enum.Enum):
    ROWS = "rows"  # the rows of a computed tensor's gradient: a domain, and the data of their labels
    GRAD = "grad"  # a computed tensor's gradient, read by a block reference
    DENSE = "dense"  # a gradient's values as its scatter kernels wrote them (a data source)
    OUT = "out"  # the row map of a scatter or product kernel: a domain, and a data source
    SCATTER = "scatter"  # a scatter kernel: one gradient term written straight into the rows
    VJP = "vjp"  # a term contracted with a cotangent
    JVP = "jvp"  # a term contracted with a tangent
    COTANGENT = "cot"  # the stand-in tensor of a cotangent
    TANGENT = "tan"  # the stand-in tensor of a tangent of the positions or the cell
    TENSOR_TANGENT = "dot"  # the stand-in kernel of a computed tensor's tangent
    FUSED = "fused"  # a fused kernel: values and gradient terms in one pass
    PRESENT = "present"  # a kernel's presence table: which of its points are structurally present
    MASK = "mask"  # the interpreter's alias of a binder's mask (runtime/evaluate/evaluator.py)

    @property
    def prefix(self) -> str:
        """`·rows·`: what every name of this role starts with."""
        return f"{SEPARATOR}{self.value}{SEPARATOR}"


_BY_VALUE = {role.value: role for role in Role}


def role_of(name: str) -> Optional[Role]:
    """The role of a reserved name (`·out·energy·positions·0` -> `Role.OUT`), None for any other."""
    if not name.startswith(SEPARATOR):
        return None
    value, separator, _ = name[len(SEPARATOR):].partition(SEPARATOR)
    return _BY_VALUE.get(value) if separator else None
