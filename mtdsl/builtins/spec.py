"""What a built-in says about itself (`Builtin`), and the small IR builders its forms are written with.

A built-in is one `Builtin` value in its own module of this package; every consumer (the checker,
lowering, the derivative passes, the IR verifier, the reference evaluator, the native backends)
reads these fields instead of keeping a table of names. See docs/builtins.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from mtdsl.ir import nodes as ir

#: argument kinds the checker knows (mtdsl/lang/builtins.py): a scalar, an integer (a degree `l`,
#: an order `n`), a Cartesian 3-vector, or an index of a component dimension (the `m` of `sph`)
KINDS = ("number", "int", "vector", "component")


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter; `option`: a compile-time constant, lowered into `ir.Call.options`."""

    name: str
    kind: str = "number"
    option: bool = False


@dataclass(frozen=True, slots=True)
class Builtin:
    """A built-in function of the language.

    - signature: `params` (in order; each may be given by keyword), `result` ("number" or
      "vector"); `nonlinear`: equivariant only for invariant arguments (the equivariance checker);
      `public`: callable from programs (False: only produced by other built-ins' expansions);
    - `definition`: the IR it *is* (min, max, clamp, relu: selects), substituted at lowering, so
      no later stage ever sees the name; the fields below are then unused;
    - `elementwise`: a scalar function of scalar arguments, applied pointwise, with
      `numpy` / `torch` forms (values in, values out; torch imported inside the form) and its
      derivative: `partials(*args)` -> one IR expression per argument, or `piecewise_constant`
      (derivative 0 almost everywhere: floor, round); `integer_valued`: its value is an integer;
    - the native form: `expansion(*args)` -> an IR expression of other built-ins that the native
      backends print instead (mtdsl/ir/passes/native_forms.py), else a *primitive*: the printers
      keep the fixed table of its C++ function and LLVM intrinsic or libm call
      (codegen/schedule/nest.py `INTRINSICS`, codegen/cpp/printer.py `FUNCTIONS`, codegen/llvm/primitives.py
      `LLVM_INTRINSICS` / `LIBM_FUNCTIONS`);
      a built-in that is neither elementwise nor defined (`sph`, `cg`, `gto`, ...) is *special*: its
      tables and derivative built-ins (`d_sph`, ...) are code of the backends and the passes;
    - `bilinear`: linear in each argument (dot, cross); `cost`: the planner's weight of one call.
    """

    name: str
    params: tuple[Param, ...]
    doc: str
    result: str = "number"
    nonlinear: bool = True
    public: bool = True
    definition: Optional[Callable[..., ir.Expr]] = None
    elementwise: bool = False
    numpy: Optional[Callable] = None
    torch: Optional[Callable] = None
    partials: Optional[Callable[..., tuple]] = None
    piecewise_constant: bool = False
    integer_valued: bool = False
    expansion: Optional[Callable[..., ir.Expr]] = None
    bilinear: bool = False
    cost: float = 8.0
    #: the exact value of constant arguments at compile time (Python numbers), where the front
    #: end folds a call (a degree written `abs(l1 - l2)`)
    fold: Optional[Callable] = None

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if p.option)

    @property
    def primitive(self) -> bool:
        """Printed as one call of the printers' fixed table of primitives."""
        return self.elementwise and self.definition is None and self.expansion is None

    def call(self, *args: ir.Expr) -> ir.Call:
        """This built-in applied to IR arguments."""
        return ir.Call(self.name, tuple(args))


def unary(name: str, doc: str = "", **fields) -> Builtin:
    """An elementwise function of one number `x`."""
    return Builtin(name, (Param("x"),), doc or f"{name}(x)", elementwise=True, **fields)


# ---- IR builders (the derivative passes' simplifications, so derivatives read as before) ----

ZERO, ONE = ir.Const(0.0), ir.Const(1.0)


def mul(a, b):
    if is_one(a):
        return b
    if is_one(b):
        return a
    return ir.Binary("mul", a, b)


def is_one(e) -> bool:
    """A literal 1 (not `True`): the factor `mul` drops."""
    return isinstance(e, ir.Const) and not isinstance(e.value, bool) and e.value == 1


def neg(a):
    if isinstance(a, ir.Unary) and a.op == "neg":
        return a.operand
    return ir.Unary("neg", a)


def binary(op: str, a, b) -> ir.Binary:
    return ir.Binary(op, a, b)


def select(op: str, a, b, yes, no) -> ir.Select:
    """`a op b ? yes : no`."""
    return ir.Select(ir.Binary(op, a, b), yes, no)
