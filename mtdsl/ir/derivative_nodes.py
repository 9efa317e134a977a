"""The derivative IR: what `mtdsl/ir/passes/autodiff.py` gives and its readers consume.

A gradient of a kernel is a `GradientKernel`, a sum of `Term`s (the meaning of a term is in
autodiff's docstring). Their expressions are those of `nodes.py` plus three expression nodes
and one domain that only a gradient has:

- `UnitVector(d)`: the vector `e_d` (the derivative of a vector with respect to its axis `d`);
- `GradRows(T, wrt)`: a binder's domain, the rows of the gradient blocks of a computed tensor `T`;
- `GradLabel(T, wrt, row, what)`: an integer label of such a row (key, sample entry, target);
- `GradValue(T, wrt, row, ...)`: the gradient values of `T` at a row.

They live with the IR, not with the pass, because several stages read them without making
them: the term lowering (`passes/terms.py`, which turns them into the roles of `roles.py`), the
product passes (`passes/products.py`), the reference evaluator (`runtime/evaluate/`,
`runtime/gradients/`) and the walkers of `walk.py`. None of them reaches a backend: the
verifier (`verify.py`) refuses them in a module, and the planner refuses them in a kernel.
Frozen, slotted dataclasses with a text form, as the nodes of `nodes.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from . import nodes as ir

# ---- expressions and a domain of a gradient's terms --------------------------------------------


@dataclass(frozen=True, slots=True)
class UnitVector:
    """The vector-valued unit vector `e_direction`."""

    direction: ir.Expr

    def __str__(self):
        return f"e[{self.direction}]"


@dataclass(frozen=True, slots=True)
class GradRows:
    """Domain: the rows of the gradient blocks of `tensor` with respect to `wrt`, all blocks in order."""

    tensor: str
    wrt: str

    def __str__(self):
        return f"rows(d{self.tensor}/d{self.wrt})"


@dataclass(frozen=True, slots=True)
class GradLabel:
    """An integer of gradient row `row` of `tensor`: `what` is "key" (the key `label`),
    "sample" (the value of the `slot`-th sample entry of the parent sample: a batch atom
    index for atoms entries) or "target" (the moved atom, or the system)."""

    tensor: str
    wrt: str
    row: ir.Expr
    what: str
    label: str = ""
    slot: int = 0

    def __str__(self):
        detail = {"key": self.label, "sample": str(self.slot), "target": ""}[self.what]
        return f"d{self.tensor}/d{self.wrt}.{self.what}{'[' + detail + ']' if detail else ''}({self.row})"


@dataclass(frozen=True, slots=True)
class GradValue:
    """The gradient values of `tensor` at row `row`, directions, components and properties."""

    tensor: str
    wrt: str
    row: ir.Expr
    directions: tuple[ir.Expr, ...]
    components: tuple[ir.Slot, ...]
    properties: tuple[ir.Slot, ...]

    def __str__(self):
        slots = ", ".join(map(str, self.directions + self.components + self.properties))
        return f"d{self.tensor}/d{self.wrt}[{self.row}; {slots}]"


#: the expression nodes only a gradient's terms hold
DERIVATIVE_EXPRESSIONS = (UnitVector, GradLabel, GradValue)
#: every node of the derivative IR that may stand inside a term (expressions and the domain)
DERIVATIVE_NODES = DERIVATIVE_EXPRESSIONS + (GradRows,)

#: an expression of a gradient's terms: the IR's, or a derivative node
Expr = Union[ir.Expr, UnitVector, GradLabel, GradValue]


# ---- a gradient: a sum of terms ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    """`sum(binders where where) [target == t] * coefficient`, with `aliases` substituted."""

    binders: tuple[ir.Binder, ...]
    aliases: tuple[tuple[str, Expr], ...]
    where: Optional[Expr]
    target: Expr
    coefficient: Expr

    def __str__(self):
        parts = [f"{b}" for b in self.binders] + [f"{n} := {e}" for n, e in self.aliases]
        where = f" where {self.where}" if self.where is not None else ""
        return f"  + sum({', '.join(parts)}{where}) at[{self.target}] {self.coefficient}"


@dataclass(frozen=True, slots=True)
class GradientKernel:
    """The gradient of kernel `kernel` with respect to `wrt`: the sum of `terms`."""

    kernel: str
    wrt: str
    directions: tuple[str, ...]
    terms: tuple[Term, ...]

    def __str__(self):
        return "\n".join([f"gradient d{self.kernel}/d{self.wrt} directions {self.directions}"]
                         + [str(t) for t in self.terms])
