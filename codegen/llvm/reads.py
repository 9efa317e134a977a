"""The reads of the kernel walk (`KernelBuilder`'s data access): system and pair fields,
gradient rows and dense gradients, parameters, block accesses through their lookup tables, and
the direct read of an earlier kernel's dense grid (`schedule/grid.py`)."""

from __future__ import annotations

from typing import Optional

import llvmlite.ir as ll

from mtdsl.ir import nodes as ir
from mtdsl.ir.roles import GradientRows, GradientValues, PresenceTable, RowMap

from .. import plan as planning
from ..plan import BOOL, INT, REAL, VEC, Unsupported
from ..schedule.grid import proven_coordinate, solve_grid_access
from .emit import I64, Value, VarInfo, _key, i64


class Reads:
    """Mixed into `KernelBuilder` (`kernel.py`): the `_render_` methods of what a kernel reads."""

    def _in_range(self, expr, kind: str, source: str) -> bool:
        """Whether `expr` is provably an atom (kind "atoms") of systems `source` / a pair of pairs `source`."""
        if isinstance(expr, ir.Var) and expr.name in self.domains:
            domain = self.domains[expr.name]
            if kind == "atoms":
                return isinstance(domain, ir.AtomsDomain) and domain.systems == source
            if kind == "systems":
                return isinstance(domain, ir.SystemsDomain) and domain.systems == source
            return (isinstance(domain, ir.PairsDomain) and domain.pairs == source) or (
                isinstance(domain, ir.PairsFrom) and domain.pairs == source)
        if (kind == "atoms" and isinstance(expr, ir.Data) and expr.source in self.pairs
                and expr.field in ("first", "second")):
            return self.pairs[expr.source].systems == source and self._in_range(expr.index[0], "pairs", expr.source)
        return False

    def checked(self, expr, kind: str, source: str, count) -> Value:
        value = self.index(expr)
        if self._in_range(expr, kind, source):
            return value
        return self.check(value, count)

    def _render_Data(self, expr: ir.Data) -> Value:
        if expr.source in self.systems:
            fields = {"type": ("types", "i32", INT), "system": ("system", "i64", INT),
                      "positions": ("positions", "real", VEC)}
            if expr.field not in fields:
                raise Unsupported(f"{expr.source}.{expr.field}")
            kind, count = "atoms", self.n_atoms(expr.source)
        elif expr.source in self.pairs:
            fields = {"first": ("first", "i64", INT), "second": ("second", "i64", INT),
                      "vector": ("vectors", "real", VEC), "distance": ("distances", "real", REAL),
                      "cell_shift": ("cell_shifts", "real", VEC)}  # read by gradients w.r.t. the cell
            if expr.field not in fields:
                raise Unsupported(f"{expr.source}.{expr.field}")
            kind, count = "pairs", self.scalar(("n_pairs", expr.source))
        elif isinstance(expr.source, GradientRows):
            return self.rows_data(expr)
        elif isinstance(expr.source, RowMap):
            return self.row_map(expr)
        elif isinstance(expr.source, PresenceTable):  # codegen/schedule/presence.py
            return self.row_map(expr, ("present", expr.source), self.scalar(("n_present", expr.source)))
        elif isinstance(expr.source, GradientValues):
            return self.dense_gradient(expr)
        else:
            raise Unsupported(f"unknown data source {expr.source}")
        name, element, vtype = fields[expr.field]
        group = "systems" if kind == "atoms" else "pairs"
        array = self.array((group, expr.source, name), element)
        if not expr.index or len(expr.index) > 2 or (len(expr.index) == 2 and vtype != VEC):
            raise Unsupported(f"{expr.source}.{expr.field} with {len(expr.index)} indices")
        index = self.checked(expr.index[0], kind, expr.source, count)
        if vtype == VEC:
            if len(expr.index) == 2:
                c = self.check(self.index(expr.index[1]), i64(3))
                place = self.join(index, c)
                flat = self.emit(place, "vec-index", lambda b, i, c: b.add(b.mul(i, i64(3)), c), index.v, c.v)
                return Value(self.load(place, array, flat), REAL, *place)
            base = self.emit(index.place, "x3", lambda b, i: b.mul(i, i64(3)), index.v)
            parts = tuple(self.load(index.place, array, self.emit(index.place, "add", lambda b, x, y: b.add(x, y),
                                                                  base, i64(c))) for c in range(3))
            return Value(parts, VEC, *index.place)
        value = self.load(index.place, array, index.v)
        if element == "i32":
            value = self.emit(index.place, "sext", lambda b, x: b.sext(x, I64), value)
        return Value(value, vtype, *index.place)

    def dense_gradient(self, expr: ir.Data) -> Value:
        """A gradient value from the buffer its scatter kernels wrote (as the C++ backend)."""
        sizes = [int(x) for x in expr.field.split(":", 1)[1].split(",") if x]
        if len(expr.index) != len(sizes) + 1:
            raise Unsupported("a dense gradient read with the wrong number of positions")
        array = self.array(("dense", expr.source), "real")
        rows_source = expr.source.rows
        row = self.checked(expr.index[0], "pairs", rows_source, self.scalar(("n_pairs", rows_source)))
        values = [row]
        for index, size in zip(expr.index[1:], sizes):
            value = self.index(index)
            found = planning.bounds(index, self.domains)
            if found is None or found[0] < 0 or found[1] >= size:
                value = self.check(value, i64(size))
            values.append(value)
        place = self.join(*values)

        def make(b, *operands):
            flat = operands[0]
            for operand, size in zip(operands[1:], sizes):
                flat = b.add(b.mul(flat, i64(size)), operand)
            return flat
        flat = self.emit(place, ("dense-flat", tuple(sizes)), make, *(v.v for v in values))
        return Value(self.load(place, array, flat), REAL, *place)

    def row_map(self, expr: ir.Data, descriptor: Optional[tuple] = None, bound=None) -> Value:
        """The gradient row of a scatter kernel's point (`mtdsl/ir/passes/terms.py`), as the C++ backend
        (with `bound`: a presence table read within its size, 0 past it)."""
        array = self.array(descriptor or ("out", expr.source, expr.field), "i64")
        positions, sizes, levels = [], [], []
        for index in expr.index:
            if not isinstance(index, ir.Var) or index.name not in self.env:
                raise Unsupported("a row map indexed by something else than a bound variable")
            info = self.env[index.name]
            positions.append(info.position)
            sizes.append(self.domain_size(self.domains[index.name]))
            levels.append(Value(info.value, INT, info.level))
        place = self.join(*levels) if levels else (0, False)

        def make(b, *operands):
            n = len(operands) // 2
            flat = i64(0)
            for k in range(n):
                flat = b.add(b.mul(flat, operands[n + k]), operands[k])
            return flat
        flat = self.emit(place, "row-flat", make, *positions, *sizes) if positions else i64(0)
        if bound is None:
            return Value(self.load(place, array, flat), INT, *place)

        def bounded(b, p, k, n):
            inside = b.icmp_signed("<", k, n)
            return b.select(inside, b.load(b.gep(p, [b.select(inside, k, i64(0))])), i64(0))
        return Value(self.emit(place, "bounded-load", bounded, array, flat, bound), INT, *place)

    def rows_data(self, expr: ir.Data) -> Value:
        """An integer label of a gradient row (`mtdsl/ir/passes/terms.py`): one int64 array per field."""
        if len(expr.index) != 1:
            raise Unsupported(f"{expr.source}.{expr.field} with {len(expr.index)} indices")
        array = self.array(("rows", expr.source, expr.field), "i64")
        count = self.scalar(("n_pairs", expr.source))
        index = self.checked(expr.index[0], "pairs", expr.source, count)
        return Value(self.load(index.place, array, index.v), INT, *index.place)

    def _render_ParamRef(self, expr: ir.ParamRef) -> Value:
        declaration = next((p for p in self.module.params if p.name == expr.name), None)
        if declaration is None or len(declaration.domains) != len(expr.index):
            raise Unsupported(f"parameter {expr.name}")
        array = self.array(("param", expr.name), "real")
        offset: Optional[Value] = None
        for k, (index_expr, domain) in enumerate(zip(expr.index, declaration.domains)):
            index = self.index(index_expr)
            size = self.scalar(("param_dim", expr.name, k))
            place = index.place
            if isinstance(domain, ir.RangeDomain):
                position = self.emit(place, "sub", lambda b, x, y: b.sub(x, y), index.v, i64(domain.start))
            elif isinstance(domain, ir.SpeciesDomain):
                table = self.array(("species_rank", domain), "i64")
                count = self.scalar(("n_species_rank", domain))
                position = self.emit(place, "rank", lambda b, t, n, x: self.species_rank(b, t, n, x),
                                     table, count, index.v)
            elif isinstance(domain, ir.IrrepDomain):
                position = self.emit(place, "add", lambda b, x, y: b.add(x, y), index.v, i64(domain.max_degree))
            elif isinstance(domain, ir.XyzDomain):
                position = index.v
            else:
                raise Unsupported(f"parameter indexed by {domain}")
            # the runtime checks parameter shapes against their domains: an index variable of the
            # declared domain itself needs no bounds check
            proven = isinstance(index_expr, ir.Var) and self.domains.get(index_expr.name) == domain
            part = Value(position, INT, *place) if proven else self.check(Value(position, INT, *place), size)
            if offset is None:
                offset = part
            else:
                place = self.join(offset, part)
                offset = Value(self.emit(place, "madd", lambda b, o, n, p: b.add(b.mul(o, n), p),
                                         offset.v, size, part.v), INT, *place)
        if offset is None:
            offset = Value(i64(0), INT, 0)
        return Value(self.load(offset.place, array, offset.v), REAL, *offset.place)

    def _render_BlockRef(self, expr: ir.BlockRef) -> Value:
        direct = self.direct_access(expr)
        if direct is not None:
            return direct
        ref = self.renderer.tables.block_ref_key(expr)

        def meta(field_name, k=0):
            return self.scalar(("block", ref, field_name, k))

        def table(field_name):
            return self.array(("block", ref, field_name), "i64")

        def dense(values: list, group: str) -> Value:
            acc = Value(i64(0), INT, 0)
            for k, v in enumerate(values):
                place = max(acc.place, v.place)
                acc = Value(self.dense(place, acc.v, v.v, meta(group + "_min", k), meta(group + "_size", k)),
                            INT, *place)
            return acc

        keys = [self.index(e) for _, e in expr.keys]
        key_index = dense(keys, "key")
        block = Value(self.at_table(key_index.place, table("key_table"), i64(0), i64(0), key_index.v), INT,
                      *key_index.place)

        def lookup(values, group, field_name):
            index = dense(values, group)
            place = max(index.place, block.place)
            value = self.at_table(place, table(field_name), block.v, meta(group + "_stride"), index.v)
            return Value(value, INT, *place)

        row = lookup([self.index(s.expr) for s in expr.samples], "sample", "sample_table")
        components = []
        for k, slot in enumerate(expr.components):
            components.append(lookup([self.index(slot.expr)], f"component{k}", f"component{k}_table"))
        column = lookup([self.index(s.expr) for s in expr.properties], "property", "property_table")
        shape = table("shape")
        width = len(expr.components) + 2
        base = table("base")
        parts = [block, row] + components + [column]
        place = self.join(*parts)

        def make(b, *values):
            blk, row, *rest = values
            comps, col = rest[:-1], rest[-1]
            missing = b.icmp_signed("<", blk, i64(0))
            for p in values[1:]:
                missing = b.or_(missing, b.icmp_signed("<", p, i64(0)))
            safe_blk = b.select(missing, i64(0), blk)
            offset = row
            for k, c in enumerate(list(comps) + [col]):
                extent = b.load(b.gep(shape, [b.add(b.mul(safe_blk, i64(width)), i64(k + 1))]))
                offset = b.add(b.mul(offset, extent), c)
            start = b.load(b.gep(base, [safe_blk]))
            return b.select(missing, i64(-1), b.add(start, offset))
        offset = self.emit(place, "block-offset", make, *[p.v for p in parts])
        flat = self.array(("block", ref, "values"), "real")
        return Value(self.read(place, flat, offset), REAL, *place)

    def direct_access(self, expr: ir.BlockRef):
        """A block access to a tensor computed natively earlier, read from its dense buffer
        when `schedule.grid.solve_grid_access` names its point."""
        source = self.renderer.grids.get(expr.tensor)
        access = solve_grid_access(expr, source) if source is not None else None
        if access is None:
            return None
        indices, solved, checks = access.indices, access.solved, access.checks
        try:
            values = {name: self.index(value_expr) for name, value_expr in solved.items()}
        except Unsupported:
            return None
        saved_env, saved_domains = dict(self.env), dict(self.domains)
        try:
            for name, value in values.items():
                self.env[name] = VarInfo(value.v, value.v, value.level, indices[name])
            self.domains = access.scope_domains(saved_domains)
            conditions, offset_terms = [], []
            grid = self.array(("grid", expr.tensor), "real")
            for k, binder in enumerate(source.indices):
                proven = proven_coordinate(binder.domain, solved[binder.name], solved, saved_env, saved_domains)
                if proven is not None:  # a loop variable ranging inside the same domain: always a grid point
                    position = Value(saved_env[proven].position, INT, saved_env[proven].level)
                else:
                    position, condition = self.grid_position(binder.domain, values[binder.name])
                    conditions.append(condition)
                size = self.scalar(("grid_size", expr.tensor, k))
                offset_terms.append((position, size))
            for entry_expr, access_expr in checks:
                mine, theirs = self.index(entry_expr), self.index(access_expr)
                if mine.v is not theirs.v:
                    place = self.join(mine, theirs)
                    conditions.append(Value(self.emit(place, "ieq", lambda b, x, y: b.icmp_signed("==", x, y),
                                                      mine.v, theirs.v), BOOL, *place))
        finally:
            self.env, self.domains = saved_env, saved_domains
        offset = None
        for position, size in offset_terms:
            if offset is None:
                offset = position
            else:
                place = self.join(offset, position)
                offset = Value(self.emit(place, "madd", lambda b, o, n, p: b.add(b.mul(o, n), p),
                                         offset.v, size, position.v), INT, *place)
        if offset is None:
            offset = Value(i64(0), INT, 0)
        if not conditions:
            return Value(self.load(offset.place, grid, offset.v), REAL, *offset.place)
        ok = self.fold(conditions, "and")
        # error bit 1 where the point is missing, flagged where that is known (often outside the
        # innermost loops, which LLVM then unswitches on `ok`)
        key = (self.stack[ok.level].uid, ok.body, "grid-flag", _key((ok.v,)))
        if key not in self.memo:
            b = self.at(ok.place)
            self.flag(ok.place, b.zext(b.not_(ok.v), I64))
            self.memo[key] = True
        place = self.join(offset, ok)
        real = self.real

        def make(b, grid, offset, ok):
            value = b.load(b.gep(grid, [b.select(ok, offset, i64(0))]))
            return b.select(ok, value, ll.Constant(real, 0.0))
        return Value(self.emit(place, "grid-read", make, grid, offset.v, ok.v), REAL, *place)

    def grid_position(self, domain, value: Value):
        """(position in the buffer, in-domain condition) of a coordinate of another kernel's grid."""
        v, place = value.v, value.place
        if isinstance(domain, ir.RangeDomain):
            def make(b, v):
                shifted = b.sub(v, i64(domain.start))
                return shifted, b.icmp_unsigned("<", shifted, i64(domain.stop - domain.start))
            position, ok = self.emit(place, ("range", domain.start, domain.stop), make, v)
            return Value(position, INT, *place), Value(ok, BOOL, *place)
        if isinstance(domain, ir.SpeciesDomain):
            table = self.array(("species_rank", domain), "i64")
            size = self.scalar(("n_species_rank", domain))
            rank = self.emit(place, "rank", lambda b, t, n, x: self.species_rank(b, t, n, x), table, size, v)
            ok = self.emit(place, "sge0", lambda b, r: b.icmp_signed(">=", r, i64(0)), rank)
            return Value(rank, INT, *place), Value(ok, BOOL, *place)
        if isinstance(domain, ir.IrrepDomain):
            degree = self.index(domain.degree)
            top = domain.max_degree
            joined = self.join(value, degree)
            position = self.emit(place, "add", lambda b, x, y: b.add(x, y), v, i64(top))

            def make(b, v, d):
                limit = b.select(b.icmp_signed("<", d, i64(top)), d, i64(top))
                magnitude = b.select(b.icmp_signed("<", v, i64(0)), b.neg(v), v)
                return b.icmp_signed("<=", magnitude, limit)
            ok = self.emit(joined, "irrep-ok", make, v, degree.v)
            return Value(position, INT, *place), Value(ok, BOOL, *joined)
        if isinstance(domain, ir.XyzDomain):
            count = i64(3)
        else:
            count = self.domain_size(domain)
        ok = self.emit(place, "ult", lambda b, x, n: b.icmp_unsigned("<", x, n), v, count)
        return Value(v, INT, *place), Value(ok, BOOL, *place)

