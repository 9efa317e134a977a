"""The loop-nest IR: what a backend prints, typed and small, with a text form.

In the spirit of tensora's imperative IR and tinygrad's UOps: frozen slotted
dataclasses that a renderer can print without looking at `mtdsl.ir` or the
plan. Expressions carry their type (`real`, `int`, `bool`, `vec`);
statements are straight-line code with local arrays and selects.

Today the special functions are lowered to it once (`schedule/sph.py`: the
spherical harmonics and their gradients as straight-line programs) and
printed by both backends (`codegen/cpp.py: CppPrinter`, `codegen/llvm.py:
NestBuilder`); the kernels' loops still come from each renderer's own walk of
the plan (docs/codegen.md, "The middle"), and `Loop` is where they go next.

`text(node)` is the form `mtdsl compile --emit nest` shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

REAL, INT, BOOL, VEC = "real", "int", "bool", "vec"


# ---- expressions -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Const:
    value: Union[float, int, bool]
    type: str = REAL


@dataclass(frozen=True, slots=True)
class Ref:
    """A parameter of the routine or a name bound by `Let`."""

    name: str
    type: str = REAL


@dataclass(frozen=True, slots=True)
class Lane:
    """Component `lane` (0, 1, 2) of a vector."""

    vector: "Expr"
    lane: int
    type: str = REAL


@dataclass(frozen=True, slots=True)
class Load:
    array: str
    index: int
    type: str = REAL


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # neg
    operand: "Expr"
    type: str = REAL


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # add sub mul div eq
    left: "Expr"
    right: "Expr"
    type: str = REAL


@dataclass(frozen=True, slots=True)
class Select:
    condition: "Expr"
    if_true: "Expr"
    if_false: "Expr"
    type: str = REAL


@dataclass(frozen=True, slots=True)
class Intrinsic:
    name: str  # sqrt
    args: tuple
    type: str = REAL


Expr = Union[Const, Ref, Lane, Load, Unary, Binary, Select, Intrinsic, "Source"]


# ---- statements --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Let:
    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class Alloc:
    """A local array of `size` values of `type`."""

    name: str
    size: int
    type: str = REAL


@dataclass(frozen=True, slots=True)
class Store:
    array: str
    index: int
    value: Expr


@dataclass(frozen=True, slots=True)
class Routine:
    """A helper routine: `params` ((name, type) pairs) in, the array `output` of `size` values filled."""

    name: str
    params: tuple
    output: str
    size: int
    body: tuple


@dataclass(frozen=True, slots=True)
class Source:
    """An expression of the loop IR not yet lowered into the nest (shown by its IR text)."""

    text: str
    type: str = REAL


@dataclass(frozen=True, slots=True)
class Guard:
    """`continue` the enclosing loop unless `condition` (a `where` conjunct, a zero coefficient...)."""

    condition: Expr
    why: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    """A local table of `value` for every value of the small index `over` (and each row of the irrep
    index `row`), filled where it stands and read inside (docs/codegen.md, "Tabulation")."""

    name: str
    over: str
    row: str
    value: Expr


@dataclass(frozen=True, slots=True)
class Write:
    """`target[indices] = value`, or `+=` when `accumulate`."""

    target: str
    indices: tuple
    value: Expr
    accumulate: bool = False


@dataclass(frozen=True, slots=True)
class Loop:
    """`for var in over` (`kind`: a domain, a CSR segment, an equality binding); `parallel`: its
    iterations run on threads (the driver); `body`: the statements inside, in order."""

    var: str
    over: str
    kind: str
    body: tuple
    parallel: bool = False


@dataclass(frozen=True, slots=True)
class Kernel:
    name: str
    schedule: str
    body: tuple


Stmt = Union[Let, Alloc, Store, Guard, Table, Write, Loop]


# ---- building ----------------------------------------------------------------------------------------


def add(a, b):
    return Binary("add", a, b)


def sub(a, b):
    return Binary("sub", a, b)


def mul(a, b):
    return Binary("mul", a, b)


def div(a, b):
    return Binary("div", a, b)


def real(value: float) -> Const:
    return Const(float(value))


def total(terms: list, empty=None):
    """`terms[0] + terms[1] + ...`, left to right (`empty` when there are none)."""
    result = None
    for term in terms:
        result = term if result is None else add(result, term)
    return result if result is not None else empty


# ---- text form ---------------------------------------------------------------------------------------

_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "eq": "=="}


def expr_text(expr) -> str:
    if isinstance(expr, Const):
        return repr(expr.value)
    if isinstance(expr, Ref):
        return expr.name
    if isinstance(expr, Lane):
        return f"{expr_text(expr.vector)}.{'xyz'[expr.lane]}"
    if isinstance(expr, Load):
        return f"{expr.array}[{expr.index}]"
    if isinstance(expr, Unary):
        return f"(-{expr_text(expr.operand)})"
    if isinstance(expr, Binary):
        return f"({expr_text(expr.left)} {_SYMBOLS[expr.op]} {expr_text(expr.right)})"
    if isinstance(expr, Select):
        return f"({expr_text(expr.condition)} ? {expr_text(expr.if_true)} : {expr_text(expr.if_false)})"
    if isinstance(expr, Intrinsic):
        return f"{expr.name}({', '.join(expr_text(a) for a in expr.args)})"
    if isinstance(expr, Source):
        return f"{{{expr.text}}}"
    raise TypeError(f"not a nest expression: {expr!r}")


def text(node, indent: str = "") -> str:
    """The text form of a routine, statement or expression."""
    if isinstance(node, Routine):
        params = ", ".join(f"{name}: {type_}" for name, type_ in node.params)
        lines = [f"{indent}routine {node.name}({params}) -> {node.output}[{node.size}]:"]
        lines += [text(statement, indent + "    ") for statement in node.body]
        return "\n".join(lines)
    if isinstance(node, Let):
        return f"{indent}let {node.name}: {node.value.type} = {expr_text(node.value)}"
    if isinstance(node, Alloc):
        return f"{indent}alloc {node.name}: {node.type}[{node.size}]"
    if isinstance(node, Store):
        return f"{indent}{node.array}[{node.index}] = {expr_text(node.value)}"
    if isinstance(node, Guard):
        return f"{indent}guard {expr_text(node.condition)}" + (f"  # {node.why}" if node.why else "")
    if isinstance(node, Table):
        rows = f", rows {node.row}" if node.row else ""
        return f"{indent}table {node.name}[{node.over}{rows}] = {expr_text(node.value)}"
    if isinstance(node, Write):
        return f"{indent}{node.target}[{', '.join(node.indices)}] {'+=' if node.accumulate else '='} {expr_text(node.value)}"
    if isinstance(node, Loop):
        mark = "parallel " if node.parallel else ""
        lines = [f"{indent}{mark}for {node.var} in {node.over}:" + (f"  # {node.kind}" if node.kind != "domain" else "")]
        lines += [text(statement, indent + "    ") for statement in node.body] or [indent + "    pass"]
        return "\n".join(lines)
    if isinstance(node, Kernel):
        lines = [f"{indent}kernel {node.name} ({node.schedule}):"]
        lines += [text(statement, indent + "    ") for statement in node.body]
        return "\n".join(lines)
    return indent + expr_text(node)
