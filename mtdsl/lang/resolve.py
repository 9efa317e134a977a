"""Name resolution: syntax trees -> a resolved, typed :class:`~mtdsl.lang.program.Program`.

Reports E101 (undefined name, with the closest defined one), E102 (name
defined twice), E103 (unknown or ill-typed hyper override), E104 (unreadable
`use`d file) and E105 (a cycle of `use`, with the chain).  The dimension and
equivariance checks run on the result.

Definitions are visible after the statement that makes them (in source order;
a `use` brings in every definition of the used file, transitively, at its
position).  A file used along two paths is loaded once.  Names live in one
namespace; built-in functions and domain constructors are looked up first
when a name is followed by `(`.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from typing import Optional

from . import ast
from . import program as P
from .ast import Span
from .builtins import INITIALIZER_DEFAULTS, INITIALIZERS
from .diagnostics import Reporter, did_you_mean
from .evaluate import evaluate
from .parse import parse_module
from .resolve_expr import ExpressionResolver
from .resolve_rules import (  # noqa: F401 - the typing rules, importable from here as before
    _UNKNOWN_DIM,
    CONVENTIONS,
    DEFAULT_MAX_DIMENSION,
    _Ctx,
    _Definition,
    _hyper_names,
    _hyper_type,
    _pair_field_type,
    _system_field_type,
    _UnknownDim,
    arith_type,
    dims_fit,
    dispatch,
    is_unknown_dim,
    join_type,
    max_dimension,
)


class Resolver(ExpressionResolver):
    """Resolves a main file and everything it uses into one Program."""

    def __init__(self, reporter: Reporter, overrides: Optional[dict] = None):
        self.reporter = reporter
        self.overrides = dict(overrides or {})
        self.used_overrides: set[str] = set()
        self.scope: dict[str, _Definition] = {}
        self.hypers: dict[str, P.Hyper] = {}
        self.systems: dict[str, P.SystemsInput] = {}
        self.tensormaps: dict[str, P.TensorMapInput] = {}
        self.pairs: dict[str, P.Pairs] = {}
        self.dims: dict[str, P.Dim] = {}
        self.indices: dict[str, P.Index] = {}
        self.params: dict[str, P.Param] = {}
        self.lets: dict[str, P.Let] = {}
        self.tensors: dict[str, P.Tensor] = {}
        self.outputs: dict[str, P.Output] = {}
        self.convention: Optional[tuple[str, Span]] = None
        self.model_name: Optional[str] = None
        self.files: list[str] = []
        self.sources: dict[str, str] = {}
        self._loaded: set[str] = set()
        self._stack: list[str] = []
        self.broken: set[str] = set()
        self._undefined_seen: set[tuple[str, int]] = set()
        self._statement_id = 0

    # ---- errors
    def error(self, code: str, span: Span, message: str, hint: Optional[str] = None) -> None:
        self.reporter.error(code, span, message, hint)

    def undefined(self, name: str, span: Span, what: str = "name", extra: tuple = ()) -> None:
        if name in self.broken:
            return  # its definition had a syntax error, already reported
        if (name, self._statement_id) in self._undefined_seen:
            return  # one report per name and statement
        self._undefined_seen.add((name, self._statement_id))
        candidates = list(self.scope) + list(extra)
        self.error("E101", span, f"undefined {what} `{name}`", did_you_mean(name, candidates))

    def define(self, ident: ast.Ident, kind: str, value: object) -> bool:
        previous = self.scope.get(ident.name)
        if previous is not None:
            self.error(
                "E102", ident.span,
                f"`{ident.name}` is already defined (as a {previous.kind}) at {previous.span}",
                hint="choose another name",
            )
            return False
        self.scope[ident.name] = _Definition(kind, value, ident.span)
        return True

    # ---- files
    def load_main(self, path: str) -> None:
        text = self._read(path, None)
        if text is None:
            return
        self._process_file(path, text, main=True)

    def load_source(self, text: str, file: str) -> None:
        self._process_file(file, text, main=True)

    def _read(self, path: str, span: Optional[Span]) -> Optional[str]:
        where = span if span is not None else Span(path, 1, 1, 1, 1)
        try:
            with open(path, "rb") as handle:
                # a device, a pipe or a huge file would be read forever or fill the memory
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    self.error("E104", where, f"cannot read `{path}`: not a regular file")
                    return None
                data = handle.read(MAX_SOURCE_BYTES + 1)
            if len(data) > MAX_SOURCE_BYTES:
                self.error("E104", where, f"cannot read `{path}`: larger than {MAX_SOURCE_BYTES >> 20} MiB")
                return None
            return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads
        except (OSError, UnicodeError, ValueError) as error:  # ValueError: a NUL in the path
            reason = getattr(error, "strerror", None) or str(error)
            self.error("E104", where, f"cannot read `{path}`: {reason}")
            return None

    def _process_file(self, file: str, text: str, main: bool) -> None:
        key = os.path.realpath(file) if not file.startswith("<") else file
        self._loaded.add(key)
        self._stack.append(key)
        self.files.append(file)
        self.sources[file] = text
        module, _ = parse_module(text, file, self.reporter)
        self.broken.update(ident.name for ident in module.broken)
        for position, statement in enumerate(module.statements):
            if isinstance(statement, ast.ModelStmt) and position > 0:
                self.error("E001", statement.span, "`model` must be the first statement of a file",
                           hint="move it to the top (it is optional)")
        for statement in module.statements:
            self._statement(statement, file, main)
        self._stack.pop()

    def _use(self, statement: ast.UseStmt, file: str) -> None:
        impossible = _impossible_path(statement.path.value)
        if impossible:
            self.error("E104", statement.path.span, f"cannot read `{statement.path.value!r}`: {impossible}",
                       hint="a path of printable characters, e.g. `use \"common.mt\"`")
            return
        base = os.path.dirname(file) if not file.startswith("<") else ""
        target = os.path.normpath(os.path.join(base, statement.path.value))
        key = os.path.realpath(target)
        if key in self._stack:
            start = self._stack.index(key)
            chain = [os.path.relpath(p) if os.path.isabs(p) else p for p in self._stack[start:]]
            chain.append(chain[0])
            self.error("E105", statement.path.span, "cycle of `use`: " + " -> ".join(chain),
                       hint="move the shared definitions into a file that both can use")
            return
        if key in self._loaded:
            return
        text = self._read(target, statement.path.span)
        if text is None:
            return
        self._process_file(target, text, main=False)

    # ---- statements
    def _statement(self, node: ast.Node, file: str, main: bool) -> None:
        self._statement_id += 1
        handler = getattr(self, "_stmt_" + type(node).__name__)
        handler(node, file, main)

    def _stmt_ModelStmt(self, node: ast.ModelStmt, file: str, main: bool) -> None:
        if main:
            if self.model_name is not None:
                self.error("E102", node.name.span, "`model` given twice")
            self.model_name = node.name.name

    def _stmt_UseStmt(self, node: ast.UseStmt, file: str, main: bool) -> None:
        self._use(node, file)

    def _stmt_ConventionStmt(self, node: ast.ConventionStmt, file: str, main: bool) -> None:
        if node.name.name != "sph":
            self.error("E101", node.name.span, f"unknown convention `{node.name.name}`",
                       did_you_mean(node.name.name, ["sph"]))
            return
        value = node.value.value
        if value not in CONVENTIONS:
            self.error("E101", node.value.span, f"unknown sph convention \"{value}\"",
                       did_you_mean(value, CONVENTIONS) or 'use "metatensor" or "e3nn"')
            return
        if self.convention is not None and self.convention[0] != value:
            self.error("E102", node.span,
                       f"convention sph already set to \"{self.convention[0]}\" at {self.convention[1]}")
            return
        self.convention = (value, node.span)

    def _stmt_HyperStmt(self, node: ast.HyperStmt, file: str, main: bool) -> None:
        kind, value = self._literal(node.value)
        if kind is None:
            return
        hyper = P.Hyper(node.name.name, kind, value, value, False, node.name.span)
        name = node.name.name
        if name in self.overrides and name not in self.scope:
            self.used_overrides.add(name)
            coerced = coerce_override(kind, self.overrides[name])
            if coerced is _BAD:
                self.error(
                    "E103", node.name.span,
                    f"override of hyper `{name}` has the wrong type: expected {kind}, "
                    f"found {type(self.overrides[name]).__name__} {_shortened(repr(self.overrides[name]))}",
                )
            else:
                hyper = P.Hyper(name, kind, coerced, value, True, node.name.span)
        if self.define(node.name, "hyper", hyper):
            self.hypers[name] = hyper

    def _literal(self, node: ast.Node):
        """(type name, Python value) of a hyper literal."""
        if isinstance(node, ast.BoolLit):
            return "bool", node.value
        if isinstance(node, ast.IntLit):
            return "int", node.value
        if isinstance(node, ast.FloatLit):
            return "float", node.value
        if isinstance(node, ast.StrLit):
            return "string", node.value
        if isinstance(node, ast.Neg) and isinstance(node.operand, (ast.IntLit, ast.FloatLit)):
            kind, value = self._literal(node.operand)
            return kind, -value
        if isinstance(node, ast.ListLit):
            kinds, values = [], []
            for item in node.items:
                if isinstance(item, ast.ListLit):
                    self.error("E201", item.span, "nested lists are not supported in a hyper")
                    return None, None
                kind, value = self._literal(item)
                if kind is None:
                    return None, None
                kinds.append(kind)
                values.append(value)
            kinds_set = set(kinds)
            if not kinds_set:
                return "list", []
            if kinds_set == {"int", "float"}:
                return "list[float]", [float(v) for v in values]
            if len(kinds_set) > 1:
                self.error("E201", node.span, "a list hyper holds values of one type, found "
                           + " and ".join(sorted(kinds_set)))
                return None, None
            return f"list[{kinds[0]}]", values
        if isinstance(node, ast.TableLit):
            return self._table_literal(node)
        self.error("E201", node.span, "a hyper must be a literal")
        return None, None

    def _table_literal(self, node: ast.TableLit):
        """`{1: 0.31, 6: 0.76}`: integer keys (atomic numbers...) to numbers, read as `radius[S.type[i]]`."""
        table, kinds = {}, set()
        for key_node, value_node in zip(node.keys, node.values):
            key_kind, key = self._literal(key_node)
            kind, value = self._literal(value_node)
            if key_kind is None or kind is None:
                return None, None
            if key_kind != "int":
                self.error("E201", key_node.span, f"the keys of a table hyper are integers, found {key_kind}")
                return None, None
            if kind not in ("int", "float"):
                self.error("E201", value_node.span, f"the values of a table hyper are numbers, found {kind}")
                return None, None
            if key in table:
                self.error("E102", key_node.span, f"key {key} given twice in a table hyper")
                return None, None
            table[key] = value
            kinds.add(kind)
        if kinds == {"int"}:
            return "table[int]", table
        return "table[float]", {k: float(v) for k, v in table.items()}

    def _stmt_InputStmt(self, node: ast.InputStmt, file: str, main: bool) -> None:
        kind = node.kind.name
        name = node.name.name
        if kind == "systems":
            for section, entries in node.signature.sections():
                if entries is not None:
                    self.error("E201", node.signature.span, "a systems input has no signature",
                               hint="write `input S : systems`")
                    break
            if self.define(node.name, "systems", None):
                self.systems[name] = P.SystemsInput(name, node.name.span)
            return
        if kind != "tensormap":
            self.error("E101", node.kind.span, f"unknown input type `{kind}`",
                       did_you_mean(kind, ["systems", "tensormap"]) or "expected `systems` or `tensormap`")
            return
        tensormap = self._tensormap_input(node)
        if self.define(node.name, "tensormap", tensormap):
            self.tensormaps[name] = tensormap

    def _labels(self, entries: Optional[tuple[ast.Entry, ...]], seen: dict) -> list[ast.Ident]:
        out = []
        for entry in entries or ():
            if entry.value is not None:
                self.error("E201", entry.span, "entries of a tensormap input are label names",
                           hint=f"write `{entry.label.name}`")
                continue
            if entry.label.name in seen:
                self.error("E102", entry.label.span,
                           f"label `{entry.label.name}` declared twice (first at {seen[entry.label.name]})")
                continue
            seen[entry.label.name] = entry.label.span
            out.append(entry.label)
        return out

    def _tensormap_input(self, node: ast.InputStmt) -> P.TensorMapInput:
        signature = node.signature
        seen: dict = {}
        keys = self._labels(signature.keys, seen)
        key_names = tuple(k.name for k in keys)
        seen = {}
        samples = self._labels(signature.samples, seen)
        sample_slots: list[P.Slot] = []
        systems = list(self.systems)
        position = 0
        while position < len(samples):
            label = samples[position]
            following = samples[position + 1].name if position + 1 < len(samples) else None
            if label.name == "system" and following == "atom" and len(systems) == 1:
                span = Span(label.span.file, label.span.line, label.span.col,
                            samples[position + 1].span.end_line, samples[position + 1].span.end_col)
                sample_slots.append(P.Slot(("system", "atom"), P.AtomsDim(systems[0]), None, span))
                position += 2
                continue
            if label.name == "system" and len(systems) == 1:
                sample_slots.append(P.Slot(("system",), P.SystemsDim(systems[0]), None, label.span))
            else:
                sample_slots.append(P.Slot((label.name,), None, None, label.span))
            position += 1
        component_slots = []
        for label in self._labels(signature.components, seen):
            if label.name == "o3_mu" and "o3_lambda" in key_names:
                dim: P.Dim = P.IrrepDim(P.KeyLabel("o3_lambda"))
            elif label.name == "xyz":
                dim = P.XyzDim()
            else:
                dim = P.OpaqueDim(label.name)
            component_slots.append(P.Slot((label.name,), dim, None, label.span))
        property_slots = [P.Slot((label.name,), None, None, label.span)
                          for label in self._labels(signature.properties, seen)]
        return P.TensorMapInput(node.name.name, key_names, tuple(sample_slots), tuple(component_slots),
                                tuple(property_slots), node.name.span)

    def _stmt_PairsStmt(self, node: ast.PairsStmt, file: str, main: bool) -> None:
        source = node.source
        systems_name: Optional[str] = None
        cutoff: P.Expr = P.Invalid(node.span)
        full = True
        if not (isinstance(source, ast.Call) and isinstance(source.func, ast.Name)
                and source.func.name == "neighbors"):
            self.error("E201", source.span, "expected `neighbors(S, cutoff = ...)`")
        else:
            if len(source.args) != 1:
                self.error("E203", source.span,
                           f"neighbors takes one positional argument (the systems), found {len(source.args)}")
            else:
                systems_name = self._systems_name(source.args[0])
            kwargs = {kw.name.name: kw for kw in source.kwargs}
            for kw in source.kwargs:
                if kw.name.name not in ("cutoff", "full"):
                    self.error("E101", kw.name.span, f"unknown argument `{kw.name.name}` of neighbors",
                               did_you_mean(kw.name.name, ["cutoff", "full"]))
            if "cutoff" not in kwargs:
                self.error("E203", source.span, "neighbors needs `cutoff = ...`")
            else:
                cutoff = self.expr(kwargs["cutoff"].value, _Ctx())
                if cutoff.type.kind not in ("int", "float", "unknown") or cutoff.type.dim is not None:
                    self.error("E201", kwargs["cutoff"].value.span, f"cutoff must be a number, found {cutoff.type}")
            if "full" in kwargs:
                value = evaluate(self.expr(kwargs["full"].value, _Ctx()))
                if not isinstance(value, bool):
                    self.error("E201", kwargs["full"].value.span, "full must be true or false")
                else:
                    full = value
        pairs = P.Pairs(node.name.name, systems_name or "?", cutoff, full, node.name.span)
        if self.define(node.name, "pairs", pairs) and systems_name is not None:
            self.pairs[node.name.name] = pairs

    def _systems_name(self, node: ast.Node) -> Optional[str]:
        if not isinstance(node, ast.Name):
            self.error("E201", node.span, "expected the name of a systems input")
            return None
        definition = self.scope.get(node.name)
        if definition is None:
            self.undefined(node.name, node.span)
            return None
        if definition.kind != "systems":
            self.error("E201", node.span, f"`{node.name}` is a {definition.kind}, not a systems input")
            return None
        return node.name

    def _stmt_DimStmt(self, node: ast.DimStmt, file: str, main: bool) -> None:
        dim = self.domain(node.domain, _Ctx(), name=node.name.name)
        if isinstance(dim, P.PairsFrom):
            self.error("E201", node.domain.span, "`P.from(i)` is only a domain of a sum binder")
            dim = None
        if self.define(node.name, "dim", dim) and dim is not None:
            self.dims[node.name.name] = dim

    def _stmt_IndexStmt(self, node: ast.IndexStmt, file: str, main: bool) -> None:
        dim = self.domain(node.domain, _Ctx(), name=None)
        if isinstance(dim, P.PairsFrom):
            self.error("E201", node.domain.span, "`P.from(i)` is only a domain of a sum binder")
            dim = None
        for ident in node.names:
            index = P.Index(ident.name, dim if dim is not None else _UNKNOWN_DIM, span=ident.span)
            if self.define(ident, "index", index):
                self.indices[ident.name] = index

    def _stmt_ParamStmt(self, node: ast.ParamStmt, file: str, main: bool) -> None:
        indices = self._declared_indices(node.indices)
        init = self._init(node.init)
        spans = tuple(ident.span for ident in node.indices or () if ident.name in {i.name for i in indices})
        param = P.Param(node.name.name, indices, init, node.name.span, spans)
        if self.define(node.name, "param", param):
            self.params[node.name.name] = param

    def _declared_indices(self, idents: Optional[tuple[ast.Ident, ...]]) -> tuple[P.Index, ...]:
        out = []
        seen: set[str] = set()
        for ident in idents or ():
            definition = self.scope.get(ident.name)
            if definition is None:
                self.undefined(ident.name, ident.span, "index")
                continue
            if definition.kind != "index":
                self.error("E201", ident.span, f"`{ident.name}` is a {definition.kind}, not an index")
                continue
            if ident.name in seen:
                self.error("E102", ident.span, f"index `{ident.name}` listed twice")
                continue
            seen.add(ident.name)
            index = definition.value
            out.append(index)
        return tuple(out)

    def _init(self, node: ast.Node) -> P.Init:
        if isinstance(node, ast.Name):
            name, args, span = node.name, (), node.span
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name, args, span = node.func.name, node.args, node.func.span
            if node.kwargs:
                self.error("E201", node.kwargs[0].span, "initializers take positional arguments only")
        else:
            self.error("E201", node.span, "expected an initializer: " + ", ".join(INITIALIZERS))
            return P.Init("zeros")
        if name not in INITIALIZERS:
            self.error("E101", span, f"unknown initializer `{name}`",
                       did_you_mean(name, INITIALIZERS) or "expected one of " + ", ".join(INITIALIZERS))
            return P.Init("zeros")
        low, high = INITIALIZERS[name]
        if not low <= len(args) <= high:
            self.error("E203", node.span, f"`{name}` takes {low if low == high else f'{low} to {high}'} "
                       f"arguments, found {len(args)}")
            return P.Init(name, INITIALIZER_DEFAULTS.get(name, ()))
        values = []
        for arg in args:
            value = evaluate(self.expr(arg, _Ctx()))
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.error("E201", arg.span, "initializer arguments must be compile-time numbers")
                value = 0.0
            values.append(float(value))
        defaults = INITIALIZER_DEFAULTS.get(name, ())
        values += list(defaults[len(values):])
        return P.Init(name, tuple(values))

    def _stmt_LetStmt(self, node: ast.LetStmt, file: str, main: bool) -> None:
        indices = self._declared_indices(node.indices)
        ctx = _Ctx(bound={index.name: f"the parameters of let `{node.name.name}`" for index in indices})
        body = self.expr(node.body, ctx)
        let = P.Let(node.name.name, indices, body, node.name.span)
        if self.define(node.name, "let", let):
            self.lets[node.name.name] = let

    def _stmt_TensorStmt(self, node: ast.TensorStmt, file: str, main: bool) -> None:
        tensor = self._tensor(node)
        if self.define(node.name, "tensor", tensor):
            self.tensors[node.name.name] = tensor

    def _stmt_OutputStmt(self, node: ast.OutputStmt, file: str, main: bool) -> None:
        if not main:
            return
        for item in node.items:
            definition = self.scope.get(item.name.name)
            if definition is None:
                self.undefined(item.name.name, item.name.span, "tensor")
                continue
            if definition.kind != "tensor":
                self.error("E201", item.name.span,
                           f"`{item.name.name}` is a {definition.kind}; only tensors can be outputs")
                continue
            gradients = []
            for gradient in item.gradients or ():
                if gradient.name not in P.GRADIENTS:
                    self.error("E101", gradient.span, f"unknown gradient `{gradient.name}`",
                               did_you_mean(gradient.name, P.GRADIENTS)
                               or "gradients are " + ", ".join(P.GRADIENTS))
                elif gradient.name in gradients:
                    self.error("E102", gradient.span, f"gradient `{gradient.name}` listed twice")
                else:
                    gradients.append(gradient.name)
            if item.name.name in self.outputs:
                self.error("E102", item.name.span, f"`{item.name.name}` is already an output "
                           f"(at {self.outputs[item.name.name].span})")
                continue
            self.outputs[item.name.name] = P.Output(item.name.name, definition.value, tuple(gradients),
                                                    item.name.span)

    # ---- tensors
    def _tensor(self, node: ast.TensorStmt) -> P.Tensor:
        signature = node.signature
        ctx = _Ctx()
        indices: list[P.Index] = []

        def label(name: str, span: Span, section_labels: dict) -> None:
            if name in section_labels:
                self.error("E102", span, f"label `{name}` appears twice (first at {section_labels[name]})")
            section_labels[name] = span

        # the bare indices of every section bind first, so that key expressions can use them
        for _, entries in signature.sections():
            for entry in entries or ():
                target = entry.value if entry.value is not None else ast.Name(entry.label.name, entry.label.span)
                if isinstance(target, ast.Name):
                    definition = self.scope.get(target.name)
                    if definition is not None and definition.kind == "index":
                        index = definition.value
                        if index not in indices:
                            indices.append(index)
        for index in indices:
            ctx.bound[index.name] = f"the signature of `{node.name.name}`"

        keys = []
        key_labels: dict = {}
        for entry in signature.keys or ():
            label(entry.label.name, entry.label.span, key_labels)
            if entry.value is None:
                value = self._bare_index(entry.label)
            else:
                value = self.expr(entry.value, ctx)
            keys.append(P.KeyEntry(entry.label.name, value, entry.span))
        sections = []
        for section in ("samples", "components", "properties"):
            slots = []
            axis_labels: dict = {}  # label names are unique within one axis (one Labels object)
            for entry in getattr(signature, section) or ():
                slot = self._slot(entry, section, ctx)
                for name in slot.labels:
                    # each component is an axis of its own
                    seen = axis_labels if section != "components" else {}
                    label(name, entry.label.span if entry.value is not None or len(slot.labels) == 1
                          else entry.span, seen)
                slots.append(slot)
            sections.append(tuple(slots))
        where = self.expr(node.where, ctx) if node.where is not None else None
        body = self.expr(node.body, ctx)
        return P.Tensor(node.name.name, tuple(keys), sections[0], sections[1], sections[2], where, body,
                        tuple(indices), node.name.span)

    def _bare_index(self, ident: ast.Ident) -> P.Expr:
        definition = self.scope.get(ident.name)
        if definition is None:
            self.undefined(ident.name, ident.span, "index")
            return P.Invalid(ident.span)
        if definition.kind != "index":
            self.error("E201", ident.span, f"a bare entry names an index; `{ident.name}` is a {definition.kind}",
                       hint=f"write `{ident.name} = VALUE`")
            return P.Invalid(ident.span)
        return P.IndexRef(definition.value, ident.span)

    def _slot(self, entry: ast.Entry, section: str, ctx: _Ctx) -> P.Slot:
        if entry.value is None:
            value = self._bare_index(entry.label)
        else:
            value = self.expr(entry.value, ctx)
        if isinstance(value, P.IndexRef):
            dim = value.index.dim
            labels = dim.labels if entry.value is None and dim.labels else (entry.label.name,)
            if entry.value is not None and dim.labels and len(dim.labels) > 1:
                self.error("E201", entry.span,
                           f"an index of `{dim}` fills the columns ({', '.join(dim.labels)}) and cannot be renamed",
                           hint=f"write `{value.index.name}`")
            return P.Slot(tuple(labels), dim, value, entry.span)
        if isinstance(value, P.Invalid):
            return P.Slot((entry.label.name,), None, value, entry.span)
        constant = evaluate(value)
        if section == "properties" and isinstance(constant, int) and not isinstance(constant, bool):
            return P.Slot((entry.label.name,), None, P.Const(constant, P.INT, span=value.span), entry.span)
        what = "an index or an integer constant" if section == "properties" else "an index"
        self.error("E201", entry.value.span if entry.value is not None else entry.span,
                   f"a {section} entry must be {what}")
        return P.Slot((entry.label.name,), None, P.Invalid(entry.span), entry.span)


_BAD = object()

#: the largest `.mt` file read (a program is text written by people)
MAX_SOURCE_BYTES = 16 << 20


def _shortened(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _impossible_path(path: str) -> str:
    """Why `path` cannot name a file (a NUL, a control character, a lone surrogate), or ''."""
    for character in path:
        if character == "\0":
            return "the path contains a NUL character"
        if ord(character) < 32 or ord(character) == 127:
            return f"the path contains the control character {ord(character):#04x}"
        if 0xD800 <= ord(character) <= 0xDFFF:
            return "the path contains a lone surrogate (not valid text)"
    return ""


def coerce_override(kind: str, value: object):
    """``value`` converted to a hyper of type ``kind``, or ``_BAD``.  Strings
    (from the command line) are parsed as literals of that type."""
    if isinstance(value, str) and kind != "string":
        parsed = parse_literal_text(value)
        if parsed is _BAD:
            return _BAD
        value = parsed
    if kind == "bool":
        return value if isinstance(value, bool) else _BAD
    if kind == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else _BAD
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
            return float(value)
        return _BAD
    if kind == "string":
        return value if isinstance(value, str) else _BAD
    if kind.startswith("table"):
        if not isinstance(value, dict) or not value:
            return _BAD
        inner = kind[6:-1]
        out = {}
        for key, item in value.items():
            coerced = coerce_override(inner, item)
            if isinstance(key, bool) or not isinstance(key, int) or coerced is _BAD:
                return _BAD
            out[key] = coerced
        return out
    if kind.startswith("list"):
        if not isinstance(value, (list, tuple)):
            return _BAD
        inner = kind[5:-1] if kind.startswith("list[") else None
        if inner is None:
            return list(value)
        out = []
        for item in value:
            coerced = coerce_override(inner, item)
            if coerced is _BAD:
                return _BAD
            out.append(coerced)
        return out
    return _BAD


def parse_literal_text(text: str):
    """A hyper literal written as text (`4.5`, `6`, `true`, `[1, 6, 8]`, `"x"`), or ``_BAD``."""
    module, diagnostics = parse_module(f"hyper _ = {text}", "<override>", Reporter())
    if diagnostics or not module.statements:
        return _BAD
    resolver = Resolver(Reporter())
    kind, value = resolver._literal(module.statements[0].value)
    if kind is None or resolver.reporter.diagnostics:
        return _BAD
    return value


@dataclass(frozen=True)
class Resolution:
    """What :func:`resolve` returns besides the diagnostics: the program and
    the text of every file read (for rendering diagnostics)."""

    program: P.Program
    sources: dict


def resolve_full(path_or_source, overrides: Optional[dict] = None, *, file: Optional[str] = None,
                 reporter: Optional[Reporter] = None, is_path: Optional[bool] = None
                 ) -> tuple[Optional[Resolution], Reporter]:
    """Resolve a path or source text (``is_path`` says which; by default a
    path-like object, or a one-line string ending in `.mt` or naming a file,
    is a path) into a :class:`Resolution`, with the reporter that holds the
    diagnostics.  ``file`` names source text in diagnostics."""
    reporter = reporter or Reporter()
    resolver = Resolver(reporter, overrides)
    if is_path is None:
        is_path = isinstance(path_or_source, os.PathLike) or (
            isinstance(path_or_source, str) and file is None and _looks_like_path(path_or_source))
    if is_path:
        main = os.fspath(path_or_source)
        resolver.load_main(main)
        if any(d.code == "E104" and d.file == main and d.line == 1 for d in reporter.diagnostics) \
                and not resolver.files:
            return None, reporter
    else:
        main = file or "<string>"
        resolver.load_source(str(path_or_source), main)
    program = resolver.finish(main)
    return Resolution(program, resolver.sources), reporter


def _looks_like_path(text: str) -> bool:
    if "\n" in text:
        return False
    return text.endswith(".mt") or os.path.exists(text)


def resolve(path_or_source, overrides: Optional[dict] = None, *, file: Optional[str] = None):
    """Resolve a file (a path) or source text into a Program.

    Returns ``(program, diagnostics)``; ``program`` is None when the file could
    not be read.  Only name-resolution diagnostics (E001-E105) are included;
    :func:`mtdsl.lang.check.check_program` adds the dimension and equivariance checks.
    """
    resolution, reporter = resolve_full(path_or_source, overrides, file=file)
    return (resolution.program if resolution else None), reporter.sorted()
