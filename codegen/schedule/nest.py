"""The loop-nest IR: what a backend prints, typed and small, with a text form.

In the spirit of tensora's imperative IR and tinygrad's UOps: frozen slotted
dataclasses that a printer turns into a target's code without looking at
`mtdsl.ir` or the plan. A kernel's whole body is made of these nodes; every
decision (placement by loop level, common subexpressions, tables, skips,
checked reads) is taken before, by the lowering (docs/codegen.md, "The
middle"). A printer is a table from node to text (or to instructions).

Types (`.type` of every expression): `real` (the module's float type), `int`
(int64), `bool`, `vec` (three reals); the storage-only types `i32` (an int32
array element, read through `Cast`), `f64` (a double whatever `real` is: the
spline derivative tables) and `array` (a `Ref` naming an array, an argument of
an intrinsic).

Expressions
- `Const(value, type)`: a literal.
- `Ref(name, type)`: a kernel parameter, a `Let` / `Local` name, a loop variable,
  or (type `array`) an array.
- `Lane(vector, lane)`: component 0, 1, 2 of a vector.
- `Load(array, index, type, in_bounds)`: `array[index]`; `index` an int or an
  int expression; type `vec`: the three reals at `3 index` (`mt_vec_at`);
  `in_bounds`: a read of a local array that constant bounds keep inside it
  (`schedule/bounds.py`), which needs no mask where it is computed on the side
  of a `Select` not chosen.
- `Unary(op, operand, type)`: `neg`, `not`.
- `Binary(op, left, right, type)`: `add sub mul div` (real, int or vec operands
  as `type` says; a vec with a real broadcasts), `mod pow` (int: floor-mod,
  integer power; real: floor-mod, `pow`), `eq ne lt le gt ge` (bool), `and or`.
  Operands already have the operation's type (the lowering casts).
- `Select(condition, if_true, if_false, type)`: evaluates the chosen side only
  where the target can (C++ `?:`).
- `Cast(operand, type)`: int/bool -> real, bool -> int, i32 -> int, int -> bool
  (`!= 0`).
- `Intrinsic(name, args, type)`: a call of one of the fixed `INTRINSICS`
  (math functions and the runtime helpers of the module template); those with
  an error bit set it in the kernel's error flags (`err`) instead of failing.

Statements
- `Let(name, value, note)`: an immutable name for a value (common subexpressions,
  hoisted values).
- `Local(name, value, note)`: a mutable scalar (a sum's accumulator), `Update(name,
  value)` adds into it.
- `Alloc(name, size, type, zero, note)`: a local array (a table, a local
  accumulator; zero-filled when `zero`); `View(name, array, offset)`: a name for
  `array + offset` (a row of a table).
- `Store(array, index, value, accumulate)`: `array[index] = value` (`+=`).
- `Fill(function, args, output, template)`: a helper routine or runtime
  function filling the local array `output` (the `sph` routines, the radial
  splines); `template`: its compile-time integer parameters.
- `Guard(condition, why, exit)`: go on only where `condition` holds, else
  `continue` the innermost loop (`exit="return"`: leave the kernel).
- `If(condition, body)`: the body only where `condition` holds.
- `Loop(var, start, stop, body, kind, parallel, simd, note)`: `for var in
  [start, stop)`; `kind` "domain" (a range, atoms, pairs...), "segment" (a CSR
  segment: start and stop read from offsets), "equal" (an equality binding:
  `var = start`, the body once; `stop` is None); `parallel`: the OpenMP
  schedule of the parallel driver ("" for none), whose iterations or-reduce the
  error flags; `simd`: the innermost loop is safe to vectorize (each iteration
  writes its own entry, no error flag, no exit).

Top level
- `Param(name, group, type, argument, note)`: a run-time argument of a kernel;
  `group` "output" (a buffer written), "array" (read) or "scalar" (an int64);
  `argument`: what the runtime binds to it, a `schedule/abi.py` argument.
- `Kernel(name, symbol, schedule, params, body, driver)`: one native function;
  its arguments are `params` in order within each group (outputs and arrays in
  one array list, scalars in another); returns the error flags.
- `Routine(name, params, output, size, body)`: a straight-line helper filling an
  array (`schedule/sph.py`).

`text(node)` is the form `mtdsl compile --emit nest` shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

REAL, INT, BOOL, VEC = "real", "int", "bool", "vec"
I32, F64, ARRAY = "i32", "f64", "array"


@dataclass(frozen=True, slots=True)
class Primitive:
    """An intrinsic: its argument types, its result type, and the error bit it may set (0: none)."""

    args: tuple
    result: str
    error: int = 0


_R1 = Primitive((REAL,), REAL)
#: the fixed table of primitive intrinsics a printer must know (the module template defines the helpers)
INTRINSICS = {
    # math of reals
    "sqrt": _R1, "exp": _R1, "log": _R1, "sin": _R1, "cos": _R1, "tanh": _R1, "log1p": _R1,
    "erf": _R1, "erfc": _R1, "acos": _R1, "asin": _R1, "floor": _R1, "round": _R1,
    "atan2": Primitive((REAL, REAL), REAL), "pow": Primitive((REAL, REAL), REAL), "abs": _R1,
    "fmod": Primitive((REAL, REAL), REAL),
    # integers
    "iabs": Primitive((INT,), INT), "imod": Primitive((INT, INT), INT), "ipow": Primitive((INT, INT), INT),
    "imin": Primitive((INT, INT), INT), "imax": Primitive((INT, INT), INT),
    # vectors
    "cross": Primitive((VEC, VEC), VEC), "dot": Primitive((VEC, VEC), REAL), "norm": Primitive((VEC,), REAL),
    "component": Primitive((VEC, INT), REAL),  # lane c of a vector, c an int expression
    # radial functions (closed forms of the template)
    "cosine_cutoff": Primitive((REAL, REAL, REAL), REAL), "d_cosine_cutoff": Primitive((REAL, REAL, REAL), REAL),
    "d_gto": Primitive((REAL, REAL, REAL), REAL),
    # lookups and checked reads (runtime/native/block_lookup.py builds their tables)
    "check": Primitive((INT, INT), INT, 2),  # i in [0, n), else error bit 2 and 0
    "read": Primitive((ARRAY, INT), REAL, 1),  # flat[off] for off >= 0, else error bit 1 and 0
    "dense": Primitive((INT, INT, INT, INT), INT),  # acc * n + (v - lo), -1 when acc < 0 or v outside
    "at": Primitive((ARRAY, INT, INT, INT), INT),  # table[blk * stride + idx], -1 when blk or idx < 0
    "seg": Primitive((ARRAY, INT, INT, INT), INT),  # offsets[a + end] of a CSR segment, 0 for a outside [0, n)
}

#: the routines a `Fill` may call besides the module's own `Routine`s: name -> the error bit they set
FILL_FUNCTIONS = {"spline": 4, "spline_derivative": 4}


# ---- expressions -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Const:
    value: Union[float, int, bool]
    type: str = REAL


@dataclass(frozen=True, slots=True)
class Ref:
    """A parameter, a name bound by `Let` / `Local` / a loop, or (type `array`) an array."""

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
    """`array[index]` (`index`: an int or an int expression); type `vec`: the vector at `3 index`.
    `in_bounds`: the read stays inside its local array wherever it stands (`schedule/bounds.py`)."""

    array: str
    index: Union[int, "Expr"]
    type: str = REAL
    in_bounds: bool = False


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # neg not
    operand: "Expr"
    type: str = REAL


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # add sub mul div mod pow eq ne lt le gt ge and or
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
class Cast:
    """`operand` as `type` (int/bool -> real, bool -> int, i32 -> int, int -> bool as `!= 0`)."""

    operand: "Expr"
    type: str


@dataclass(frozen=True, slots=True)
class Intrinsic:
    """A call of `INTRINSICS[name]`."""

    name: str
    args: tuple
    type: str = REAL


Expr = Union[Const, Ref, Lane, Load, Unary, Binary, Select, Cast, Intrinsic]


# ---- statements --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Let:
    name: str
    value: Expr
    note: str = ""


@dataclass(frozen=True, slots=True)
class Local:
    """A mutable scalar initialised to `value` (a sum's accumulator)."""

    name: str
    value: Expr
    note: str = ""


@dataclass(frozen=True, slots=True)
class Update:
    """`name += value` on a `Local`."""

    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class Alloc:
    """A local array of `size` values of `type` (all zero when `zero`)."""

    name: str
    size: int
    type: str = REAL
    zero: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class View:
    """`name` = the array `array` from `offset` on (a row of a table)."""

    name: str
    array: str
    offset: Expr


@dataclass(frozen=True, slots=True)
class Store:
    """`array[index] = value`, or `+=` when `accumulate` (`index`: an int or an int expression)."""

    array: str
    index: Union[int, Expr]
    value: Expr
    accumulate: bool = False


@dataclass(frozen=True, slots=True)
class Fill:
    """`function<template...>(args..., output)`: a `Routine` of the module or a `FILL_FUNCTIONS` entry
    filling the local array `output`."""

    function: str
    args: tuple
    output: str
    template: tuple = ()


@dataclass(frozen=True, slots=True)
class Guard:
    """Go on only where `condition` holds: else `continue` the innermost loop (`exit="return"`: leave the
    kernel, its error flags as they are). `why`: a where conjunct, a zero coefficient..."""

    condition: Expr
    why: str = ""
    exit: str = "continue"


@dataclass(frozen=True, slots=True)
class If:
    condition: Expr
    body: tuple


@dataclass(frozen=True, slots=True)
class Loop:
    """`for var in [start, stop)`, `body` in order. `kind`: "domain", "segment" (a CSR segment) or
    "equal" (`var = start` once; `stop` None). `parallel`: the parallel driver's OpenMP schedule
    ("" for a serial loop); `simd`: safe to vectorize. `note`: the loop IR it comes from."""

    var: str
    start: Expr
    stop: Optional[Expr]
    body: tuple
    kind: str = "domain"
    parallel: str = ""
    simd: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class Param:
    """A run-time argument: `group` "output", "array" or "scalar"; `type` its element type."""

    name: str
    group: str
    type: str
    argument: object  # a `schedule/abi.py` argument
    note: str = ""


@dataclass(frozen=True, slots=True)
class Kernel:
    """A native function: `params` (outputs and arrays numbered in order in one list, scalars in
    another), `body`; `driver`: the variable of the parallel driver ("" when serial)."""

    name: str
    symbol: str
    schedule: str
    params: tuple
    body: tuple
    driver: str = ""


@dataclass(frozen=True, slots=True)
class Routine:
    """A helper routine: `params` ((name, type) pairs) in, the array `output` of `size` values filled."""

    name: str
    params: tuple
    output: str
    size: int
    body: tuple


Stmt = Union[Let, Local, Update, Alloc, View, Store, Fill, Guard, If, Loop]


# ---- building ----------------------------------------------------------------------------------------


def add(a, b):
    return Binary("add", a, b, a.type if a.type == b.type else REAL)


def sub(a, b):
    return Binary("sub", a, b, a.type if a.type == b.type else REAL)


def mul(a, b):
    return Binary("mul", a, b, a.type if a.type == b.type else REAL)


def div(a, b):
    return Binary("div", a, b)


def real(value: float) -> Const:
    return Const(float(value))


def integer(value: int) -> Const:
    return Const(int(value), INT)


def total(terms: list, empty=None):
    """`terms[0] + terms[1] + ...`, left to right (`empty` when there are none)."""
    result = None
    for term in terms:
        result = term if result is None else add(result, term)
    return result if result is not None else empty


def children(node) -> tuple:
    """The sub-expressions of an expression."""
    if isinstance(node, (Lane,)):
        return (node.vector,)
    if isinstance(node, Load):
        return (node.index,) if not isinstance(node.index, int) else ()
    if isinstance(node, (Unary, Cast)):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Select):
        return (node.condition, node.if_true, node.if_false)
    if isinstance(node, Intrinsic):
        return node.args
    return ()


def sets_error(expr) -> bool:
    """Whether evaluating `expr` may set an error flag (a checked read or index)."""
    if isinstance(expr, Intrinsic) and INTRINSICS[expr.name].error:
        return True
    return any(sets_error(child) for child in children(expr))


# ---- text form ---------------------------------------------------------------------------------------

_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%", "pow": "**", "eq": "==", "ne": "!=",
            "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "and": "and", "or": "or"}


def expr_text(expr) -> str:
    if isinstance(expr, int):
        return str(expr)
    if isinstance(expr, Const):
        return repr(expr.value)
    if isinstance(expr, Ref):
        return expr.name
    if isinstance(expr, Lane):
        return f"{expr_text(expr.vector)}.{'xyz'[expr.lane]}"
    if isinstance(expr, Load):
        return f"{expr.array}[{expr_text(expr.index)}]" + (".xyz" if expr.type == VEC else "")
    if isinstance(expr, Unary):
        return f"(-{expr_text(expr.operand)})" if expr.op == "neg" else f"(not {expr_text(expr.operand)})"
    if isinstance(expr, Binary):
        return f"({expr_text(expr.left)} {_SYMBOLS[expr.op]} {expr_text(expr.right)})"
    if isinstance(expr, Select):
        return f"({expr_text(expr.condition)} ? {expr_text(expr.if_true)} : {expr_text(expr.if_false)})"
    if isinstance(expr, Cast):
        return f"{expr.type}({expr_text(expr.operand)})"
    if isinstance(expr, Intrinsic):
        return f"{expr.name}({', '.join(expr_text(a) for a in expr.args)})"
    raise TypeError(f"not a nest expression: {expr!r}")


def _block(body: tuple, indent: str) -> list:
    return [text(statement, indent + "    ") for statement in body] or [indent + "    pass"]


def text(node, indent: str = "") -> str:
    """The text form of a kernel, routine, statement or expression."""
    if isinstance(node, Kernel):
        params = ", ".join(f"{p.name}: {p.group} {p.type}" for p in node.params)
        lines = [f"{indent}kernel {node.name} ({node.schedule}): {node.symbol}({params})"]
        lines += [f"{indent}    arg {p.name} = {p.argument}" + (f"  # {p.note}" if p.note else "") for p in node.params]
        lines += _block(node.body, indent)
        return "\n".join(lines)
    if isinstance(node, Routine):
        params = ", ".join(f"{name}: {type_}" for name, type_ in node.params)
        lines = [f"{indent}routine {node.name}({params}) -> {node.output}[{node.size}]:"]
        lines += [text(statement, indent + "    ") for statement in node.body]
        return "\n".join(lines)
    if isinstance(node, Let):
        return f"{indent}let {node.name}: {node.value.type} = {expr_text(node.value)}" + (f"  # {node.note}" if node.note else "")
    if isinstance(node, Local):
        return f"{indent}var {node.name}: {node.value.type} = {expr_text(node.value)}" + (f"  # {node.note}" if node.note else "")
    if isinstance(node, Update):
        return f"{indent}{node.name} += {expr_text(node.value)}"
    if isinstance(node, Alloc):
        zero = " = 0" if node.zero else ""
        return f"{indent}alloc {node.name}: {node.type}[{node.size}]{zero}" + (f"  # {node.note}" if node.note else "")
    if isinstance(node, View):
        return f"{indent}view {node.name} = {node.array} + {expr_text(node.offset)}"
    if isinstance(node, Store):
        return f"{indent}{node.array}[{expr_text(node.index)}] {'+=' if node.accumulate else '='} {expr_text(node.value)}"
    if isinstance(node, Fill):
        template = f"<{', '.join(str(t) for t in node.template)}>" if node.template else ""
        return f"{indent}fill {node.output} = {node.function}{template}({', '.join(expr_text(a) for a in node.args)})"
    if isinstance(node, Guard):
        exit = "" if node.exit == "continue" else f" else {node.exit}"
        return f"{indent}guard {expr_text(node.condition)}{exit}" + (f"  # {node.why}" if node.why else "")
    if isinstance(node, If):
        return "\n".join([f"{indent}if {expr_text(node.condition)}:"] + _block(node.body, indent))
    if isinstance(node, Loop):
        mark = f"parallel({node.parallel}) " if node.parallel else ("simd " if node.simd else "")
        if node.kind == "equal":
            head = f"{indent}{mark}with {node.var} = {expr_text(node.start)}:"
        else:
            head = f"{indent}{mark}for {node.var} in [{expr_text(node.start)}, {expr_text(node.stop)}):"
        head += f"  # {node.note}" if node.note else ""
        return "\n".join([head] + _block(node.body, indent))
    return indent + expr_text(node)
