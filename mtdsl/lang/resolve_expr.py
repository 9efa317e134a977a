"""Name resolution of expressions and domains: the expression half of the `Resolver`.

`ExpressionResolver` is a base class of `resolve.py`'s `Resolver` (which resolves the
statements and owns the scopes, definitions and reporter these methods read through `self`):
literals, names, operators, calls of built-ins, subscripts, block accesses, sums, and the
domains of indices, each to its typed node of `program.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from . import ast
from . import program as P
from .ast import Span
from .builtins import BUILTINS, CONSTANTS, DOMAIN_CONSTRUCTORS
from .diagnostics import did_you_mean
from .evaluate import evaluate
from .resolve_rules import (
    _UNKNOWN_DIM,
    _Ctx,
    _hyper_names,
    _hyper_type,
    _pair_field_type,
    _system_field_type,
    arith_type,
    dims_fit,
    dispatch,
    join_type,
    max_dimension,
)


class ExpressionResolver:
    """The expression methods of `Resolver` (resolve.py): see the module docstring."""

    # ---- domains
    def domain(self, node: ast.Node, ctx: _Ctx, name: Optional[str]) -> Union[P.Dim, P.PairsFrom, None]:
        """A dimension (or `P.from(i)`) from a domain expression; None after an error."""
        if isinstance(node, ast.Name):
            definition = self.scope.get(node.name)
            if definition is None:
                if node.name == "xyz":
                    return P.XyzDim()
                self.undefined(node.name, node.span, "dimension", extra=("xyz",))
                return None
            if definition.kind == "dim":
                return definition.value
            if definition.kind == "pairs":
                pairs = definition.value
                return P.PairsDim(pairs.name, pairs.systems)
            self.error("E201", node.span, f"`{node.name}` is a {definition.kind}, not a dimension")
            return None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            return self._pairs_from(node, ctx)
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            self.error("E201", node.span, "expected a domain: range(N), species(S), atoms(S), systems(S), "
                       "irrep(l), xyz, a pairs set or a dim")
            return None
        constructor = node.func.name
        if constructor not in DOMAIN_CONSTRUCTORS:
            self.error("E101", node.func.span, f"unknown domain `{constructor}`",
                       did_you_mean(constructor, DOMAIN_CONSTRUCTORS))
            return None
        if node.kwargs:
            self.error("E201", node.kwargs[0].span, f"`{constructor}` takes no keyword arguments")
            return None
        if constructor == "range":
            if len(node.args) not in (1, 2):
                self.error("E203", node.span, f"range takes 1 or 2 arguments, found {len(node.args)}")
                return None
            bounds = []
            for arg in node.args:
                resolved = self.expr(arg, ctx)
                if isinstance(resolved, P.Invalid):
                    return None  # already reported
                value = evaluate(resolved)
                if isinstance(value, bool) or not isinstance(value, int):
                    self.error("E201", arg.span, "range bounds must be compile-time integers (literals or hypers)")
                    return None
                bounds.append(value)
            start, stop = (0, bounds[0]) if len(bounds) == 1 else (bounds[0], bounds[1])
            label = name or ast.deparse(node)
            if not self._dimension_fits(stop - start, f"`{label}`", node):
                return None
            return P.RangeDim(label, start, stop, P.fresh_uid())
        if constructor == "irrep":
            if len(node.args) != 1:
                self.error("E203", node.span, f"irrep takes 1 argument, found {len(node.args)}")
                return None
            degree = self.expr(node.args[0], ctx)
            if degree.type.kind not in ("int", "unknown"):
                self.error("E201", node.args[0].span, f"the degree of irrep must be an integer, found {degree.type}")
                return None
            constant = evaluate(degree)
            if isinstance(constant, int) and constant < 0:
                self.error("E201", node.args[0].span, "the degree of irrep must not be negative")
                return None
            if isinstance(constant, int) and not self._dimension_fits(2 * constant + 1, ast.deparse(node), node):
                return None
            return P.IrrepDim(degree)
        if len(node.args) != 1:
            self.error("E203", node.span, f"{constructor} takes 1 argument, found {len(node.args)}")
            return None
        systems = self._systems_name(node.args[0])
        if systems is None:
            return None
        return {"species": P.SpeciesDim, "atoms": P.AtomsDim, "systems": P.SystemsDim}[constructor](systems)

    def _dimension_fits(self, size: int, what: str, node: ast.Call) -> bool:
        """Whether a dimension of `size` entries is within `max_dimension()`; else E106 at
        the line of the hyper that sets its size (the first one, named with its value and
        its `--set`), or at the domain when only literals do."""
        limit = max_dimension()
        if size <= limit:
            return True
        hypers = [self.hypers[n] for n in _hyper_names(node) if n in self.hypers]
        if hypers:
            hyper = hypers[0]
            origin = f" (set by --set {hyper.name}={hyper.value})" if hyper.overridden else ""
            self.error("E106", hyper.span,
                       f"hyper `{hyper.name}` = {hyper.value}{origin} makes the dimension {what} "
                       f"{size:,} entries, more than the limit of {limit:,}",
                       hint="a smaller value, or raise the limit with MTDSL_MAX_DIMENSION")
        else:
            self.error("E106", node.span, f"the dimension {what} has {size:,} entries, more than the limit "
                       f"of {limit:,}", hint="a smaller size, or raise the limit with MTDSL_MAX_DIMENSION")
        return False

    def _pairs_from(self, node: ast.Call, ctx: _Ctx) -> Optional[P.PairsFrom]:
        func = node.func
        if not (isinstance(func.value, ast.Name) and func.attr.name == "from"):
            self.error("E201", node.span, "expected a domain such as `P.from(i)`")
            return None
        pairs = self._pairs_name(func.value)
        if pairs is None:
            return None
        if len(node.args) != 1 or node.kwargs:
            self.error("E203", node.span, f"`{pairs.name}.from` takes one atom index")
            return None
        if not ctx.allow_pairs_from:
            self.error("E201", node.span, f"`{pairs.name}.from(...)` is only a domain of a sum binder",
                       hint=f"write `sum(p in {pairs.name}.from(i)) ...`")
            return None
        atom = self.expr(node.args[0], ctx)
        return P.PairsFrom(pairs.name, atom)

    def _pairs_name(self, node: ast.Name) -> Optional[P.Pairs]:
        definition = self.scope.get(node.name)
        if definition is None:
            self.undefined(node.name, node.span)
            return None
        if definition.kind != "pairs":
            self.error("E201", node.span, f"`{node.name}` is a {definition.kind}, not a pairs set")
            return None
        return definition.value

    # ---- expressions
    def expr(self, node: ast.Node, ctx: _Ctx) -> P.Expr:
        handler = dispatch(self, "_expr_", type(node))
        if handler is None:
            self.error("E201", node.span, "not an expression")
            return P.Invalid(node.span)
        return handler(node, ctx)

    def _expr_IntLit(self, node: ast.IntLit, ctx: _Ctx) -> P.Expr:
        return P.Const(node.value, P.INT, span=node.span)

    def _expr_FloatLit(self, node: ast.FloatLit, ctx: _Ctx) -> P.Expr:
        return P.Const(node.value, P.FLOAT, span=node.span)

    def _expr_BoolLit(self, node: ast.BoolLit, ctx: _Ctx) -> P.Expr:
        return P.Const(node.value, P.BOOL, span=node.span)

    def _expr_StrLit(self, node: ast.StrLit, ctx: _Ctx) -> P.Expr:
        return P.Const(node.value, P.STRING, span=node.span)

    def _expr_ListLit(self, node: ast.ListLit, ctx: _Ctx) -> P.Expr:
        self.error("E201", node.span, "list literals are only allowed as the value of a hyper")
        return P.Invalid(node.span)

    def _expr_Name(self, node: ast.Name, ctx: _Ctx) -> P.Expr:
        local = ctx.local.get(node.name)
        if local is not None:
            return P.IndexRef(local, node.span)
        definition = self.scope.get(node.name)
        if definition is None and node.name in CONSTANTS:  # `pi`, unless the program defines it
            return P.Const(CONSTANTS[node.name], P.FLOAT, None, node.span)
        if definition is None:
            self.undefined(node.name, node.span, extra=tuple(ctx.local))
            return P.Invalid(node.span)
        kind = definition.kind
        if kind == "hyper":
            hyper = definition.value
            return P.Const(hyper.value, _hyper_type(hyper), hyper.name, node.span)
        if kind == "index":
            return P.IndexRef(definition.value, node.span)
        if kind == "param":
            param = definition.value
            if param.indices:
                self.error("E203", node.span, f"param `{node.name}` takes {len(param.indices)} indices, found 0")
                return P.Invalid(node.span)
            return P.ParamRef(param, (), node.span)
        if kind == "let":
            let = definition.value
            if let.indices:
                self.error("E203", node.span, f"let `{node.name}` takes {len(let.indices)} indices, found 0")
                return P.Invalid(node.span)
            return P.LetRef(let, (), let.body.type, node.span)
        if kind in ("tensor", "tensormap"):
            self.error("E203", node.span, f"`{node.name}` is a {kind}; read it with "
                       f"`{node.name}{{key = value, ...}}[sample, ..., property]`")
            return P.Invalid(node.span)
        self.error("E201", node.span, f"`{node.name}` is a {kind}, not a value")
        return P.Invalid(node.span)

    def _expr_Attribute(self, node: ast.Attribute, ctx: _Ctx) -> P.Expr:
        self.error("E203", node.span, f"`{ast.deparse(node)}` needs an index, e.g. `{ast.deparse(node)}[i]`")
        return P.Invalid(node.span)

    def _expr_Neg(self, node: ast.Neg, ctx: _Ctx) -> P.Expr:
        operand = self.expr(node.operand, ctx)
        kind = operand.type.kind
        type_ = P.Type(kind) if kind in ("int", "float", "vector") else P.UNKNOWN
        return P.Unary("-", operand, type_, node.span)

    def _expr_Not(self, node: ast.Not, ctx: _Ctx) -> P.Expr:
        return P.Unary("not", self.expr(node.operand, ctx), P.BOOL, node.span)

    def _expr_BinOp(self, node: ast.BinOp, ctx: _Ctx) -> P.Expr:
        left = self.expr(node.left, ctx)
        right = self.expr(node.right, ctx)
        type_ = arith_type(node.op, left.type, right.type) or P.UNKNOWN
        return P.Binary(node.op, left, right, type_, node.span, node.op_span)

    def _expr_Compare(self, node: ast.Compare, ctx: _Ctx) -> P.Expr:
        left = self.expr(node.left, ctx)
        right = self.expr(node.right, ctx)
        return P.Binary(node.op, left, right, P.BOOL, node.span, node.op_span)

    def _expr_Logical(self, node: ast.Logical, ctx: _Ctx) -> P.Expr:
        left = self.expr(node.left, ctx)
        right = self.expr(node.right, ctx)
        return P.Binary(node.op, left, right, P.BOOL, node.span)

    def _expr_Ternary(self, node: ast.Ternary, ctx: _Ctx) -> P.Expr:
        cond = self.expr(node.cond, ctx)
        then = self.expr(node.then, ctx)
        otherwise = self.expr(node.otherwise, ctx)
        return P.Ternary(cond, then, otherwise, join_type(then.type, otherwise.type), node.span)

    def _expr_Call(self, node: ast.Call, ctx: _Ctx) -> P.Expr:
        func = node.func
        if isinstance(func, ast.Attribute):
            self._pairs_from(node, ctx.child())  # reports the misuse (a domain used as a value)
            return P.Invalid(node.span)
        if not isinstance(func, ast.Name):
            self.error("E201", func.span, "only built-in functions can be called")
            return P.Invalid(node.span)
        builtin = BUILTINS.get(func.name)
        if builtin is None:
            if func.name in DOMAIN_CONSTRUCTORS:
                self.error("E201", node.span, f"`{func.name}(...)` is a domain, not a value",
                           hint="use it in `dim`, `index` or a sum binder `x in ...`")
            elif func.name in self.scope:
                kind = self.scope[func.name].kind
                hint = f"index it: `{func.name}[...]`" if kind in ("param", "let") else None
                self.error("E201", func.span, f"`{func.name}` is a {kind}, not a function", hint)
            else:
                self.error("E101", func.span, f"undefined function `{func.name}`",
                           did_you_mean(func.name, BUILTINS))
            for arg in node.args:
                self.expr(arg, ctx)
            return P.Invalid(node.span)
        params = builtin.params
        values: dict[str, P.Expr] = {}
        if len(node.args) > len(params):
            self.error("E203", node.span,
                       f"`{builtin.name}` takes {len(params)} arguments, found {len(node.args) + len(node.kwargs)}",
                       hint=f"{builtin.doc}")
        for param, arg in zip(params, node.args):
            values[param.name] = self.expr(arg, ctx)
        names = [param.name for param in params]
        for kw in node.kwargs:
            if kw.name.name not in names:
                self.error("E101", kw.name.span, f"`{builtin.name}` has no argument `{kw.name.name}`",
                           did_you_mean(kw.name.name, names) or builtin.doc)
                self.expr(kw.value, ctx)
                continue
            if kw.name.name in values:
                self.error("E102", kw.name.span, f"argument `{kw.name.name}` of `{builtin.name}` given twice")
                continue
            values[kw.name.name] = self.expr(kw.value, ctx)
        args = []
        for param in params:
            if param.name in values:
                args.append(values[param.name])
            elif param.default is not None:
                args.append(param.default)
            else:
                self.error("E203", node.span, f"`{builtin.name}` needs argument `{param.name}`",
                           hint=builtin.doc)
                args.append(P.Invalid(node.span))
        return P.Call(builtin.name, tuple(args), builtin.result, node.span)

    def _expr_Subscript(self, node: ast.Subscript, ctx: _Ctx) -> P.Expr:
        indices = tuple(self.expr(index, ctx) for index in node.indices)
        value = node.value
        if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name):
            return self._data(node, value, indices)
        if not isinstance(value, ast.Name):
            self.error("E201", value.span, "only params, lets, tensors and built-in data can be indexed")
            return P.Invalid(node.span)
        local = ctx.local.get(value.name)
        definition = self.scope.get(value.name)
        if local is not None or definition is None:
            if definition is None and local is None:
                self.undefined(value.name, value.span, extra=tuple(ctx.local))
            else:
                self.error("E201", value.span, f"`{value.name}` is an index and cannot be indexed")
            return P.Invalid(node.span)
        if definition.kind == "param":
            return P.ParamRef(definition.value, indices, node.span)
        if definition.kind == "let":
            let = definition.value
            return P.LetRef(let, indices, let.body.type, node.span)
        if definition.kind in ("tensor", "tensormap"):
            return P.BlockRef(definition.value, (), indices, node.span)
        if definition.kind == "hyper" and definition.value.type.startswith("list"):
            hyper = definition.value
            if len(indices) != 1:
                self.error("E203", node.span, f"list hyper `{hyper.name}` takes 1 index, found {len(indices)}")
                return P.Invalid(node.span)
            element = hyper.type[5:-1] if hyper.type.startswith("list[") else "unknown"
            element_type = P.Type(element) if element in ("int", "float", "bool") else (
                P.STRING if element == "string" else P.UNKNOWN)
            return P.HyperItem(hyper.name, tuple(hyper.value), indices[0], element_type, node.span)
        if definition.kind == "hyper" and definition.value.type.startswith("table"):
            hyper = definition.value
            if len(indices) != 1:
                self.error("E203", node.span, f"table hyper `{hyper.name}` takes 1 index, found {len(indices)}")
                return P.Invalid(node.span)
            element_type = P.INT if hyper.type == "table[int]" else P.FLOAT
            keys = tuple(sorted(hyper.value))
            return P.HyperItem(hyper.name, tuple(hyper.value[k] for k in keys), indices[0], element_type, node.span,
                               keys)
        self.error("E201", value.span, f"`{value.name}` is a {definition.kind} and cannot be indexed")
        return P.Invalid(node.span)

    def _data(self, node: ast.Subscript, attribute: ast.Attribute, indices: tuple) -> P.Expr:
        owner = attribute.value.name
        field_name = attribute.attr.name
        definition = self.scope.get(owner)
        if definition is None:
            self.undefined(owner, attribute.value.span)
            return P.Invalid(node.span)
        if definition.kind == "systems":
            if field_name not in P.SYSTEM_FIELDS:
                self.error("E101", attribute.attr.span, f"systems have no field `{field_name}`",
                           did_you_mean(field_name, P.SYSTEM_FIELDS)
                           or "fields are " + ", ".join(P.SYSTEM_FIELDS))
                return P.Invalid(node.span)
            type_ = _system_field_type(owner, field_name, len(indices))
            return P.SystemData(owner, field_name, indices, type_, node.span)
        if definition.kind == "pairs":
            if field_name not in P.PAIR_FIELDS:
                self.error("E101", attribute.attr.span, f"pairs have no field `{field_name}`",
                           did_you_mean(field_name, P.PAIR_FIELDS) or "fields are " + ", ".join(P.PAIR_FIELDS))
                return P.Invalid(node.span)
            pairs = definition.value
            type_ = _pair_field_type(pairs.systems, field_name, len(indices))
            return P.PairData(owner, field_name, indices, type_, node.span)
        self.error("E201", attribute.value.span, f"`{owner}` is a {definition.kind}; only systems and pairs "
                   "have fields")
        return P.Invalid(node.span)

    def _expr_BlockAccess(self, node: ast.BlockAccess, ctx: _Ctx) -> P.Expr:
        keys = []
        seen: dict[str, Span] = {}
        for key in node.keys:
            if key.label.name in seen:
                self.error("E102", key.label.span, f"key `{key.label.name}` given twice")
                continue
            seen[key.label.name] = key.label.span
            keys.append((key.label.name, self.expr(key.value, ctx)))
        indices = tuple(self.expr(index, ctx) for index in node.indices)
        value = node.value
        if not isinstance(value, ast.Name):
            self.error("E201", value.span, "only tensors and tensormap inputs have blocks")
            return P.Invalid(node.span)
        definition = self.scope.get(value.name)
        if definition is None:
            self.undefined(value.name, value.span, "tensor")
            return P.Invalid(node.span)
        if definition.kind not in ("tensor", "tensormap"):
            self.error("E201", value.span, f"`{value.name}` is a {definition.kind}; only tensors and "
                       "tensormap inputs have blocks")
            return P.Invalid(node.span)
        return P.BlockRef(definition.value, tuple(keys), indices, node.span, key_spans=tuple(seen.values()))

    def _expr_Sum(self, node: ast.Sum, ctx: _Ctx) -> P.Expr:
        # 1. which names the binders bind (declared indices, or names local to the sum)
        accepted: list[tuple[ast.Binder, Optional[P.Index]]] = []
        names_here: set[str] = set()
        for binder in node.binders:
            name = binder.name.name
            if name in names_here:
                self.error("E102", binder.name.span, f"index `{name}` bound twice in this sum")
                continue
            names_here.add(name)
            if name in ctx.bound or name in ctx.local:
                where = ctx.bound.get(name) or "an enclosing sum"
                self.error("E102", binder.name.span, f"index `{name}` is already bound by {where}",
                           hint="use another index of the same dimension (declare it with `index`)")
                continue
            definition = self.scope.get(name)
            declared = definition.value if definition is not None and definition.kind == "index" else None
            if definition is not None and declared is None:
                self.error("E102", binder.name.span,
                           f"`{name}` is already defined (as a {definition.kind}) at {definition.span}")
                continue
            if declared is None and binder.domain is None:
                self.undefined(name, binder.name.span, "index", extra=tuple(ctx.local))
                continue
            accepted.append((binder, declared))
        # 2. placeholders, so that a binder's domain may refer to a sibling (`m in irrep(l)`)
        placeholders = {
            binder.name.name: P.Index(binder.name.name, _UNKNOWN_DIM, origin=declared, span=binder.name.span)
            for binder, declared in accepted
        }
        scope_ctx = ctx.child()
        scope_ctx.local.update(placeholders)
        scope_ctx.allow_pairs_from = True
        # a declared dim such as irrep(l) refers to the declared `l`: re-point it to
        # whatever binds the name `l` here (a sibling binder or an enclosing sum)
        rebind = {}
        for name, index in scope_ctx.local.items():
            declared = self.indices.get(name)
            if declared is not None and declared is not index:
                rebind[declared] = P.IndexRef(index, index.span)
        # 3. the dimension and domain of each binder
        resolved: list[tuple[ast.Binder, Optional[P.Index], P.Dim, Optional[P.PairsFrom]]] = []
        for binder, declared in accepted:
            name = binder.name.name
            pairs_from = None
            if binder.domain is None:
                dim = P.substitute_dim(declared.dim, rebind)
            else:
                domain = self.domain(binder.domain, scope_ctx, name=None)
                if domain is None:
                    dim = _UNKNOWN_DIM
                elif isinstance(domain, P.PairsFrom):
                    pairs = self.pairs.get(domain.pairs)
                    dim = P.PairsDim(domain.pairs, pairs.systems if pairs else "?")
                    pairs_from = domain
                else:
                    dim = domain
                if declared is not None and domain is not None:
                    expected = P.substitute_dim(declared.dim, rebind)
                    if not dims_fit(expected, dim):
                        self.error("E201", binder.domain.span,
                                   f"index `{name}` is of `{expected}`, but ranges here over `{dim}`")
            resolved.append((binder, declared, dim, pairs_from))
        # 4. the final indices; dims that mention a placeholder are re-pointed to the final index
        final: dict[str, P.Index] = {}
        for binder, declared, dim, _ in resolved:
            final[binder.name.name] = P.Index(binder.name.name, dim, origin=declared, span=binder.name.span)
        for _ in range(2):
            repoint = {placeholders[name]: P.IndexRef(index, index.span) for name, index in final.items()}
            for name, index in list(final.items()):
                if isinstance(index.dim, P.IrrepDim):
                    final[name] = P.Index(name, P.substitute_dim(index.dim, repoint), index.uid, index.origin,
                                          index.span)
        repoint = {placeholders[name]: P.IndexRef(index, index.span) for name, index in final.items()}
        binders = []
        for binder, declared, dim, pairs_from in resolved:
            index = final[binder.name.name]
            if pairs_from is not None:
                domain_value: P.Domain = P.PairsFrom(pairs_from.pairs, P.substitute(pairs_from.atom, repoint))
            else:
                domain_value = P.DimDomain(index.dim)
            binders.append(P.SumBinder(index, domain_value, binder.span))
        body_ctx = ctx.child()
        for name, index in final.items():
            body_ctx.local[name] = index
            body_ctx.bound[name] = "an enclosing sum"
        where = self.expr(node.where, body_ctx) if node.where is not None else None
        body = self.expr(node.body, body_ctx)
        kind = body.type.kind
        type_ = P.Type(kind) if kind in ("int", "float", "vector") else P.UNKNOWN
        return P.Sum(tuple(binders), where, body, type_, node.span)

    # ---- finish
    def finish(self, main_file: str) -> P.Program:
        for name in self.overrides:
            if name not in self.used_overrides:
                self.error("E103", Span(main_file, 1, 1, 1, 2), f"override of unknown hyper `{name}`",
                           did_you_mean(name, self.hypers)
                           or ("hypers are " + ", ".join(sorted(self.hypers)) if self.hypers else "no hypers"))
        name = self.model_name or Path(main_file).stem
        return P.Program(
            name=name, path=main_file, files=tuple(self.files),
            convention=self.convention[0] if self.convention else "metatensor",
            hypers=self.hypers, systems=self.systems, tensormaps=self.tensormaps, pairs=self.pairs,
            dims=self.dims, indices=self.indices, params=self.params, lets=self.lets,
            tensors=self.tensors, outputs=self.outputs,
        )
