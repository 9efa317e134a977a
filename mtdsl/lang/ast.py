"""The surface syntax tree of a `.mt` file.

Every node is a frozen, slotted dataclass with a source :class:`Span`.  Spans
are excluded from equality, so two parses of the same program that differ only
in layout compare equal.  :func:`deparse` (also every node's ``str``) prints a
node back as canonical source; ``parse(deparse(module)) == module`` for every
module the parser accepts (tests/lang/test_roundtrip.py checks it).

The tree is purely syntactic: names are strings, nothing is resolved.  Name
resolution (:mod:`mtdsl.lang.resolve`) turns a module into a typed
:class:`mtdsl.lang.program.Program`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Optional, Union


@dataclass(frozen=True, slots=True)
class Span:
    """A source range: 1-based line and column of the first character, and of
    the character after the last one (``end_col`` is exclusive)."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NO_SPAN = Span("<unknown>", 1, 1, 1, 1)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


class Node:
    """Base class of every syntax node."""

    __slots__ = ()

    def deparse(self) -> str:
        return deparse(self)

    def __str__(self) -> str:
        return deparse(self)


# ---- expressions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ident(Node):
    """A name at a definition or binding site (statement names, index names, labels)."""

    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class IntLit(Node):
    value: int
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class FloatLit(Node):
    value: float
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class BoolLit(Node):
    """`true` or `false` (not reserved words: the parser reads these two names as literals)."""

    value: bool
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class StrLit(Node):
    value: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ListLit(Node):
    """A list literal; only allowed as the value of a `hyper`."""

    items: tuple["Expr", ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TableLit(Node):
    """A table literal `{1: 0.31, 6: 0.76}` (integer keys, e.g. atomic numbers, to numbers); only
    allowed as the value of a `hyper`."""

    keys: tuple["Expr", ...]
    values: tuple["Expr", ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Name(Node):
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Attribute(Node):
    """`value.attr`, e.g. `S.positions` or `P.from`."""

    value: "Expr"
    attr: Ident
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class KeywordArg(Node):
    name: Ident
    value: "Expr"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Call(Node):
    """`func(args..., name = value, ...)`; keyword arguments come after positional ones."""

    func: "Expr"
    args: tuple["Expr", ...]
    kwargs: tuple[KeywordArg, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Subscript(Node):
    """`value[i, n]`: indexing of a `let`, a `param` or built-in data."""

    value: "Expr"
    indices: tuple["Expr", ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class KeyBinding(Node):
    label: Ident
    value: "Expr"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class BlockAccess(Node):
    """`T{label = value, ...}[sample..., component..., property...]`."""

    value: "Expr"
    keys: tuple[KeyBinding, ...]
    indices: tuple["Expr", ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Neg(Node):
    operand: "Expr"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class BinOp(Node):
    """Arithmetic: op is one of `+ - * / % ^`; ``op_span`` locates the operator."""

    op: str
    left: "Expr"
    right: "Expr"
    span: Span = _span()
    op_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Compare(Node):
    """op is one of `== != < <= > >=`; comparisons do not chain."""

    op: str
    left: "Expr"
    right: "Expr"
    span: Span = _span()
    op_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Logical(Node):
    """op is `and` or `or`."""

    op: str
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: "Expr"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Ternary(Node):
    """`cond ? then : otherwise`."""

    cond: "Expr"
    then: "Expr"
    otherwise: "Expr"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Binder(Node):
    """`name` or `name in domain` inside `sum(...)`."""

    name: Ident
    domain: Optional["Expr"]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Sum(Node):
    """`sum(binder, ... where cond) body`; the body reaches as far right as it can."""

    binders: tuple[Binder, ...]
    where: Optional["Expr"]
    body: "Expr"
    span: Span = _span()


Expr = Union[
    IntLit, FloatLit, BoolLit, StrLit, ListLit, TableLit, Name, Attribute, Call, Subscript,
    BlockAccess, Neg, BinOp, Compare, Logical, Not, Ternary, Sum,
]


# ---- statements ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry(Node):
    """A signature entry: `label = value`, or a bare index (``value`` is None)."""

    label: Ident
    value: Optional[Expr]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Signature(Node):
    """The four TensorMap axes; a section is None when absent, ``()`` when written `()`."""

    keys: Optional[tuple[Entry, ...]] = None
    samples: Optional[tuple[Entry, ...]] = None
    components: Optional[tuple[Entry, ...]] = None
    properties: Optional[tuple[Entry, ...]] = None
    span: Span = _span()

    def sections(self) -> Iterator[tuple[str, Optional[tuple[Entry, ...]]]]:
        yield "keys", self.keys
        yield "samples", self.samples
        yield "components", self.components
        yield "properties", self.properties


@dataclass(frozen=True, slots=True)
class ModelStmt(Node):
    name: Ident
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class UseStmt(Node):
    path: StrLit
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class HyperStmt(Node):
    name: Ident
    value: Expr  # a literal: number, negated number, string, bool or list of those
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class InputStmt(Node):
    """`input NAME : systems` or `input NAME : tensormap SIGNATURE` (kind is the word written)."""

    name: Ident
    kind: Ident
    signature: Signature
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class PairsStmt(Node):
    """`pairs NAME = neighbors(S, cutoff = ..., full = ...)`; the call is checked by resolution."""

    name: Ident
    source: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class DimStmt(Node):
    name: Ident
    domain: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class IndexStmt(Node):
    names: tuple[Ident, ...]
    domain: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ParamStmt(Node):
    """`param NAME[i, ...] ~ INIT`; ``indices`` is None when written without brackets."""

    name: Ident
    indices: Optional[tuple[Ident, ...]]
    init: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class LetStmt(Node):
    name: Ident
    indices: Optional[tuple[Ident, ...]]
    body: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TensorStmt(Node):
    name: Ident
    signature: Signature
    where: Optional[Expr]
    body: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class OutputItem(Node):
    """One output; ``gradients`` is None without a `with gradients(...)` clause."""

    name: Ident
    gradients: Optional[tuple[Ident, ...]]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class OutputStmt(Node):
    items: tuple[OutputItem, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ConventionStmt(Node):
    name: Ident
    value: StrLit
    span: Span = _span()


Statement = Union[
    ModelStmt, UseStmt, HyperStmt, InputStmt, PairsStmt, DimStmt, IndexStmt,
    ParamStmt, LetStmt, TensorStmt, OutputStmt, ConventionStmt,
]


@dataclass(frozen=True, slots=True)
class Module(Node):
    """One `.mt` file: its statements in source order."""

    file: str
    statements: tuple[Statement, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    #: names that statements with syntax errors would have defined: later
    #: references to them are not reported again as undefined
    broken: tuple[Ident, ...] = field(default=(), compare=False, repr=False)
    #: the `#` comments of the file, kept for the formatter (not part of equality)
    comments: tuple["Comment", ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Comment(Node):
    """A `# ...` comment; ``text`` includes the `#`."""

    text: str
    span: Span = _span()


# ---- traversal ------------------------------------------------------------------------

_FIELDS: dict[type, tuple[str, ...]] = {}


def _child_fields(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple(
            name for name in cls.__dataclass_fields__ if name not in ("span", "op_span")
        )
        _FIELDS[cls] = names
    return names


def children(node: Node) -> Iterator[Node]:
    """The direct child nodes of ``node``, in field order."""
    for name in _child_fields(type(node)):
        value = getattr(node, name)
        if isinstance(value, Node):
            yield value
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, Node):
                    yield item


def walk(node: Node) -> Iterator[tuple[Node, Optional[Node]]]:
    """Every node below ``node`` (included) with its parent, iteratively (no recursion limit)."""
    stack: list[tuple[Node, Optional[Node]]] = [(node, None)]
    while stack:
        current, parent = stack.pop()
        yield current, parent
        stack.extend((child, current) for child in reversed(list(children(current))))


# ---- the canonical printer -----------------------------------------------------------------

# binding strength of each expression form: a child weaker than its position
# requires is parenthesized
_PREC_EXPR = 0  # ternary, sum
_PREC_OR = 1
_PREC_AND = 2
_PREC_NOT = 3
_PREC_COMPARE = 4
_PREC_ADD = 5
_PREC_MUL = 6
_PREC_NEG = 7
_PREC_POW = 8
_PREC_POSTFIX = 9

_BINOP_PREC = {"+": _PREC_ADD, "-": _PREC_ADD, "*": _PREC_MUL, "/": _PREC_MUL, "%": _PREC_MUL, "^": _PREC_POW}


def _prec(node: Node) -> int:
    if isinstance(node, (Ternary, Sum)):
        return _PREC_EXPR
    if isinstance(node, Logical):
        return _PREC_OR if node.op == "or" else _PREC_AND
    if isinstance(node, Not):
        return _PREC_NOT
    if isinstance(node, Compare):
        return _PREC_COMPARE
    if isinstance(node, BinOp):
        return _BINOP_PREC[node.op]
    if isinstance(node, Neg):
        return _PREC_NEG
    return _PREC_POSTFIX


def format_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def format_float(value: float) -> str:
    if math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    if math.isnan(value):  # cannot come from the parser; printed as something that re-parses
        return "0.0"
    return repr(value)


def _expr(node: Node, min_prec: int, tail: bool) -> str:
    """Print ``node`` at a position that needs at least ``min_prec``; ``tail`` says
    that nothing follows it up to the end of the enclosing bracket or statement,
    so a `sum` may stand there without parentheses."""
    if _prec(node) < min_prec or (isinstance(node, Sum) and not tail):
        return "(" + _expr(node, _PREC_EXPR, True) + ")"
    if isinstance(node, IntLit):
        return str(node.value)
    if isinstance(node, FloatLit):
        return format_float(node.value)
    if isinstance(node, BoolLit):
        return "true" if node.value else "false"
    if isinstance(node, StrLit):
        return format_string(node.value)
    if isinstance(node, ListLit):
        return "[" + ", ".join(_expr(item, _PREC_EXPR, True) for item in node.items) + "]"
    if isinstance(node, TableLit):
        return "{" + ", ".join(f"{_expr(k, _PREC_EXPR, True)}: {_expr(v, _PREC_EXPR, True)}"
                               for k, v in zip(node.keys, node.values)) + "}"
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Attribute):
        return f"{_expr(node.value, _PREC_POSTFIX, False)}.{node.attr.name}"
    if isinstance(node, Call):
        parts = [_expr(arg, _PREC_EXPR, True) for arg in node.args]
        parts += [f"{kw.name.name} = {_expr(kw.value, _PREC_EXPR, True)}" for kw in node.kwargs]
        return f"{_expr(node.func, _PREC_POSTFIX, False)}({', '.join(parts)})"
    if isinstance(node, Subscript):
        inner = ", ".join(_expr(index, _PREC_EXPR, True) for index in node.indices)
        return f"{_expr(node.value, _PREC_POSTFIX, False)}[{inner}]"
    if isinstance(node, BlockAccess):
        keys = ", ".join(f"{key.label.name} = {_expr(key.value, _PREC_EXPR, True)}" for key in node.keys)
        inner = ", ".join(_expr(index, _PREC_EXPR, True) for index in node.indices)
        return f"{_expr(node.value, _PREC_POSTFIX, False)}{{{keys}}}[{inner}]"
    if isinstance(node, Neg):
        return "-" + _expr(node.operand, _PREC_NEG, tail)
    if isinstance(node, BinOp):
        prec = _BINOP_PREC[node.op]
        if node.op == "^":
            left = _expr(node.left, _PREC_POSTFIX, False)
            right = _expr(node.right, _PREC_NEG, tail)
        else:
            left = _expr(node.left, prec, False)
            right = _operand_or_sum(node.right, prec + 1, tail)
        return f"{left} {node.op} {right}"
    if isinstance(node, Compare):
        left = _expr(node.left, _PREC_ADD, False)
        right = _operand_or_sum(node.right, _PREC_ADD, tail)
        return f"{left} {node.op} {right}"
    if isinstance(node, Logical):
        prec = _prec(node)
        return f"{_expr(node.left, prec, False)} {node.op} {_expr(node.right, prec + 1, tail)}"
    if isinstance(node, Not):
        return "not " + _expr(node.operand, _PREC_NOT, tail)
    if isinstance(node, Ternary):
        cond = _expr(node.cond, _PREC_OR, False)
        return f"{cond} ? {_expr(node.then, _PREC_EXPR, True)} : {_expr(node.otherwise, _PREC_EXPR, tail)}"
    if isinstance(node, Sum):
        binders = ", ".join(_binder(binder) for binder in node.binders)
        where = f" where {_expr(node.where, _PREC_EXPR, True)}" if node.where is not None else ""
        return f"sum({binders}{where}) {_expr(node.body, _PREC_EXPR, True)}"
    raise TypeError(f"not an expression node: {type(node).__name__}")


def _operand_or_sum(node: Node, min_prec: int, tail: bool) -> str:
    """The right operand of a binary operator, where the grammar also accepts a bare `sum`."""
    if isinstance(node, Sum):
        return _expr(node, _PREC_EXPR, tail)
    return _expr(node, min_prec, tail)


def _binder(binder: Binder) -> str:
    if binder.domain is None:
        return binder.name.name
    return f"{binder.name.name} in {_expr(binder.domain, _PREC_POSTFIX, False)}"


def _entries(entries: tuple[Entry, ...]) -> str:
    parts = []
    for entry in entries:
        if entry.value is None:
            parts.append(entry.label.name)
        else:
            parts.append(f"{entry.label.name} = {_expr(entry.value, _PREC_EXPR, True)}")
    return "(" + ", ".join(parts) + ")"


def _signature_lines(signature: Signature) -> list[str]:
    lines = []
    for section, entries in signature.sections():
        if entries is not None:
            lines.append(f"    {section:<10} {_entries(entries)}")
    return lines


def _names(names: Optional[tuple[Ident, ...]]) -> str:
    if names is None:
        return ""
    return "[" + ", ".join(name.name for name in names) + "]"


def deparse_expr(node: Node) -> str:
    return _expr(node, _PREC_EXPR, True)


#: the formatter breaks expressions longer than this (sum bodies, then chains of `+ -` or `* / %`)
WIDTH = 100


def _layout(node: Node, indent: int) -> str:
    """``node`` printed where a whole expression stands (a statement's value, a
    sum body) starting at column ``indent``: on one line when it fits,
    otherwise a `sum` body goes on the next line, indented by 4, and a chain of
    operators puts each operator at the start of a line, its operand aligned
    with the first one.  Only whitespace differs from :func:`deparse_expr`."""
    flat = _expr(node, _PREC_EXPR, True)
    if indent + len(flat) <= WIDTH:
        return flat
    if isinstance(node, Sum):
        binders = ", ".join(_binder(binder) for binder in node.binders)
        where = f" where {_expr(node.where, _PREC_EXPR, True)}" if node.where is not None else ""
        return f"sum({binders}{where})\n" + " " * (indent + 4) + _layout(node.body, indent + 4)
    if isinstance(node, BinOp) and node.op != "^" and indent >= 2:
        prec = _BINOP_PREC[node.op]
        rights = []
        current: Node = node
        while isinstance(current, BinOp) and current.op != "^" and _BINOP_PREC[current.op] == prec:
            rights.append((current.op, current.right))
            current = current.left
        rights.reverse()
        lines = [_expr(current, prec, False)]
        for position, (op, operand) in enumerate(rights):
            last = position == len(rights) - 1
            if last and isinstance(operand, Sum):
                text = _layout(operand, indent)
            else:
                text = _operand_or_sum(operand, prec + 1, last)
            lines.append(" " * (indent - 2) + f"{op} {text}")
        return "\n".join(lines)
    return flat


def deparse_statement(node: Node) -> str:
    if isinstance(node, ModelStmt):
        return f"model {node.name.name}"
    if isinstance(node, UseStmt):
        return f"use {format_string(node.path.value)}"
    if isinstance(node, HyperStmt):
        return f"hyper {node.name.name} = {deparse_expr(node.value)}"
    if isinstance(node, InputStmt):
        return "\n".join([f"input {node.name.name} : {node.kind.name}"] + _signature_lines(node.signature))
    if isinstance(node, PairsStmt):
        return f"pairs {node.name.name} = {deparse_expr(node.source)}"
    if isinstance(node, DimStmt):
        return f"dim {node.name.name} = {deparse_expr(node.domain)}"
    if isinstance(node, IndexStmt):
        return f"index {', '.join(name.name for name in node.names)} : {deparse_expr(node.domain)}"
    if isinstance(node, ParamStmt):
        return f"param {node.name.name}{_names(node.indices)} ~ {deparse_expr(node.init)}"
    if isinstance(node, LetStmt):
        head = f"let {node.name.name}{_names(node.indices)} = "
        return head + _layout(node.body, len(head) + 2 if len(head) < 40 else 8)
    if isinstance(node, TensorStmt):
        lines = [f"tensor {node.name.name}"] + _signature_lines(node.signature)
        if node.where is not None:
            lines.append(f"    where {deparse_expr(node.where)}")
        lines.append(f"  = {_layout(node.body, 4)}")
        return "\n".join(lines)
    if isinstance(node, OutputStmt):
        items = []
        for item in node.items:
            text = item.name.name
            if item.gradients is not None:
                text += f" with gradients({', '.join(g.name for g in item.gradients)})"
            items.append(text)
        return "output " + ", ".join(items)
    if isinstance(node, ConventionStmt):
        return f"convention {node.name.name} = {format_string(node.value.value)}"
    raise TypeError(f"not a statement node: {type(node).__name__}")


def deparse_module(module: Module) -> str:
    """Canonical source: one statement per line, a blank line between groups of
    statements of different kinds and around every multi-line statement.
    Comments are kept: those between statements stay before the next one, a
    comment at the end of a one-line statement stays at its end, and other
    comments inside a statement move before it."""
    comments = sorted(module.comments, key=lambda c: (c.span.line, c.span.col))
    position = 0
    out: list[str] = []
    previous: Optional[Node] = None
    previous_text = ""
    for statement in module.statements:
        text = deparse_statement(statement)
        before: list[str] = []
        while position < len(comments) and comments[position].span.line < statement.span.line:
            before.append(comments[position].text)
            position += 1
        inside: list[str] = []
        while position < len(comments) and comments[position].span.line <= statement.span.end_line:
            inside.append(comments[position].text)
            position += 1
        if len(inside) == 1 and "\n" not in text and comments[position - 1].span.line == statement.span.end_line:
            text = f"{text}  {inside[0]}"
        else:
            before += inside
        if previous is not None:
            multi = "\n" in text or "\n" in previous_text
            if multi or before or type(previous) is not type(statement):
                out.append("")
        out.extend(before)
        out.append(text)
        previous, previous_text = statement, text
    rest = [comment.text for comment in comments[position:]]
    if rest:
        if out:
            out.append("")
        out.extend(rest)
    return "\n".join(out) + ("\n" if out else "")


_STATEMENTS = (
    ModelStmt, UseStmt, HyperStmt, InputStmt, PairsStmt, DimStmt, IndexStmt,
    ParamStmt, LetStmt, TensorStmt, OutputStmt, ConventionStmt,
)


def deparse(node: Node) -> str:
    """Canonical source text of a module, a statement or an expression."""
    if isinstance(node, Module):
        return deparse_module(node)
    if isinstance(node, _STATEMENTS):
        return deparse_statement(node)
    if isinstance(node, Ident):
        return node.name
    if isinstance(node, Entry):
        return _entries((node,))[1:-1]
    if isinstance(node, Binder):
        return _binder(node)
    if isinstance(node, KeywordArg):
        return f"{node.name.name} = {deparse_expr(node.value)}"
    if isinstance(node, KeyBinding):
        return f"{node.label.name} = {deparse_expr(node.value)}"
    if isinstance(node, OutputItem):
        return deparse_statement(OutputStmt((node,)))[len("output "):]
    if isinstance(node, Signature):
        return "\n".join(_signature_lines(node))
    return deparse_expr(node)
