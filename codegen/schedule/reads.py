"""The kernel lowering's reads of run-time data (a mixin of `schedule/kernel.py: KernelLowering`).

Systems and pairs fields, gradient rows and row maps, dense gradient buffers,
parameters, and block accesses: split into block, sample, component and
property lookups placed by what each reads (`runtime/native/block_lookup.py` builds
their tables), or read from an earlier kernel's dense buffer when
`schedule/grid.py` names the point (direct grid access). An index that is not
proven in range is checked (`check`: error bit 2); a lookup that finds nothing
reads through `read` (error bit 1): the runtime then runs the kernel with the
interpreter, which raises the precise error or decides.
"""

from __future__ import annotations

from typing import Optional

from mtdsl.ir import nodes as ir
from mtdsl.ir.roles import DenseValues, GradientRows, GradientValues, PresenceTable, RowMap

from . import plan as planning
from .plan import Unsupported
from . import abi, nest
from .exprs import Value, VarInfo, array, both, call, compare, iadd, iconst, imul, isub, ref
from .grid import proven_coordinate, solve_grid_access
from .nest import BOOL, I32, INT, REAL, VEC


class ReadLowering:
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
        if kind == "atoms" and isinstance(expr, ir.Data) and expr.source in self.pairs and expr.field in ("first", "second"):
            return self.pairs[expr.source].systems == source and self._in_range(expr.index[0], "pairs", expr.source)
        return False

    def checked(self, expr, kind: str, source: str, count) -> Value:
        value = self.index(expr)
        if self._in_range(expr, kind, source):
            return value
        return Value(call("check", value.expr, count), value.level, value.body)

    def _render_Data(self, expr: ir.Data) -> Value:
        if expr.source in self.systems:
            fields = {"type": ("types", I32, INT), "system": ("system", INT, INT), "positions": ("positions", REAL, VEC)}
            if expr.field not in fields:
                raise Unsupported(f"{expr.source}.{expr.field}")
            kind, count = "atoms", self.n_atoms(expr.source)
        elif expr.source in self.pairs:
            fields = {"first": ("first", INT, INT), "second": ("second", INT, INT),
                      "vector": ("vectors", REAL, VEC), "distance": ("distances", REAL, REAL),
                      "cell_shift": ("cell_shifts", REAL, VEC)}  # read by gradients w.r.t. the cell
            if expr.field not in fields:
                raise Unsupported(f"{expr.source}.{expr.field}")
            kind, count = "pairs", self.scalar(abi.PairCount(expr.source), f"pairs in {expr.source}")
        elif isinstance(expr.source, GradientRows):
            return self.rows_data(expr)
        elif isinstance(expr.source, RowMap):
            return self.row_map(expr)
        elif isinstance(expr.source, PresenceTable):  # codegen/schedule/presence.py
            return self.row_map(expr, abi.Presence(expr.source), self.scalar(abi.PresenceCount(expr.source), "presence table size"))
        elif isinstance(expr.source, GradientValues):
            return self.dense_gradient(expr)
        else:
            raise Unsupported(f"unknown data source {expr.source}")
        name, element, vtype = fields[expr.field]
        argument = abi.SystemsField(expr.source, name) if kind == "atoms" else abi.PairsField(expr.source, name)
        data = self.array(argument, element, f"{expr.source}.{expr.field}")
        if not expr.index or len(expr.index) > 2 or (len(expr.index) == 2 and vtype != VEC):
            raise Unsupported(f"{expr.source}.{expr.field} with {len(expr.index)} indices")
        index = self.checked(expr.index[0], kind, expr.source, count)
        if vtype == VEC:
            if len(expr.index) == 2:
                component = self.index(expr.index[1])
                c = Value(call("check", component.expr, iconst(3)), component.level, component.body)
                value = Value(nest.Load(data, iadd(imul(iconst(3), index.expr), c.expr), REAL), *self.join(index, c))
            else:
                value = Value(nest.Load(data, index.expr, VEC), *index.place)
        elif element == I32:
            value = Value(nest.Cast(nest.Load(data, index.expr, I32), INT), *index.place)
        else:
            value = Value(nest.Load(data, index.expr, vtype), *index.place)
        return self.hoist(value, "d")

    def rows_data(self, expr: ir.Data) -> Value:
        """An integer label of a gradient row (`mtdsl/ir/passes/terms.py`): one int64 array per field."""
        if len(expr.index) != 1:
            raise Unsupported(f"{expr.source}.{expr.field} with {len(expr.index)} indices")
        data = self.array(abi.GradientRowField(expr.source, expr.field), INT, f"gradient rows: {expr.field}")
        count = self.scalar(abi.PairCount(expr.source), "gradient rows")
        index = self.checked(expr.index[0], "pairs", expr.source, count)
        return self.hoist(Value(nest.Load(data, index.expr, INT), *index.place), "d")

    def dense_gradient(self, expr: ir.Data) -> Value:
        """A gradient value from the buffer its scatter kernels wrote (`mtdsl/ir/passes/terms.py`): the row,
        then positions along the axes of its field's sizes (`DenseValues`); each position is checked."""
        if not isinstance(expr.field, DenseValues):
            raise Unsupported(f"a dense gradient read by {expr.field!r}, not by DenseValues")
        sizes = expr.field.sizes
        if len(expr.index) != len(sizes) + 1:
            raise Unsupported("a dense gradient read with the wrong number of positions")
        data = self.array(abi.DenseGradient(expr.source), REAL, f"{expr.source} as written")
        rows = self.scalar(abi.PairCount(expr.source.rows), "gradient rows")
        row = self.checked(expr.index[0], "pairs", expr.source.rows, rows)
        parts, flat = [row], row.expr
        for index, size in zip(expr.index[1:], sizes):
            value = self.index(index)
            found = planning.bounds(index, self.domains)
            code = value.expr
            if found is None or found[0] < 0 or found[1] >= size:
                code = call("check", code, iconst(size))
            parts.append(value)
            flat = iadd(imul(flat, iconst(size)), code)
        return self.hoist(Value(nest.Load(data, flat, REAL), *self.join(*parts)), "g")

    def row_map(self, expr: ir.Data, argument: Optional[abi.ArrayArgument] = None, bound=None) -> Value:
        """The gradient row of a scatter kernel's point (`mtdsl/ir/passes/terms.py`): a dense map over the
        positions of the variables the row depends on (-1 where the term has no point). With
        `bound`, a presence table read within its size, 0 past it (a run that passes none)."""
        data = self.array(argument or abi.RowMapArray(expr.source, expr.field), INT, "gradient row of each point")
        flat, parts = None, []
        for index in expr.index:
            if not isinstance(index, ir.Var) or index.name not in self.env:
                raise Unsupported("a row map indexed by something else than a bound variable")
            info = self.env[index.name]
            size = self.domain_size(self.domains[index.name])
            parts.append(Value(info.code, info.level))
            flat = info.position if flat is None else iadd(imul(flat, size), info.position)
        flat = flat if flat is not None else iconst(0)
        code = nest.Load(data, flat, INT)
        if bound is not None:
            code = nest.Select(compare("lt", flat, bound), code, iconst(0), INT)
        return self.hoist(Value(code, *self.join(*parts)) if parts else Value(code, 0), "row")

    def _render_ParamRef(self, expr: ir.ParamRef) -> Value:
        declaration = next((p for p in self.module.params if p.name == expr.name), None)
        if declaration is None or len(declaration.domains) != len(expr.index):
            raise Unsupported(f"parameter {expr.name}")
        data = self.array(abi.ParamValues(expr.name), REAL, f"param {expr.name}")
        offset: Optional[Value] = None
        for k, (index_expr, domain) in enumerate(zip(expr.index, declaration.domains)):
            index = self.index(index_expr)
            size = self.scalar(abi.ParamDim(expr.name, k), f"size {k} of param {expr.name}")
            if isinstance(domain, ir.RangeDomain):
                position = isub(index.expr, iconst(domain.start))
            elif isinstance(domain, ir.SpeciesDomain):
                table = self.array(abi.SpeciesRank(domain), INT, f"rank of each atomic number in {domain}")
                count = self.scalar(abi.SpeciesRankSize(domain), "size of that table")
                position = call("at", array(table), iconst(0), iconst(0), call("dense", iconst(0), index.expr, iconst(0), count))
            elif isinstance(domain, ir.IrrepDomain):
                position = iadd(index.expr, iconst(domain.max_degree))
            elif isinstance(domain, ir.XyzDomain):
                position = index.expr
            else:
                raise Unsupported(f"parameter indexed by {domain}")
            # the runtime checks parameter shapes against their domains: an index variable of the
            # declared domain itself needs no bounds check
            proven = isinstance(index_expr, ir.Var) and self.domains.get(index_expr.name) == domain
            part = self.hoist(Value(position if proven else call("check", position, size), *index.place), "q")
            if offset is None:
                offset = part
            else:
                offset = self.hoist(Value(iadd(imul(offset.expr, size), part.expr), *self.join(offset, part)), "q")
        if offset is None:
            offset = Value(iconst(0), 0)
        return self.hoist(Value(nest.Load(data, offset.expr, REAL), *offset.place), "w")

    def _render_BlockRef(self, expr: ir.BlockRef) -> Value:
        direct = self.direct_access(expr)
        if direct is not None:
            return direct
        key = self.context.block_ref_key(expr)
        note = f"{expr.tensor}"

        def meta(field_name, k=0):
            return self.scalar(abi.BlockScalar(key, field_name, k), f"{note}: {field_name} {k}")

        def table(field_name):
            return self.array(abi.BlockTable(key, field_name), INT, f"{note}: {field_name}")

        def dense(values: list, group: str) -> Value:
            acc = Value(iconst(0), 0)
            for k, v in enumerate(values):
                place = max(acc.place, v.place)
                code = call("dense", acc.expr, v.expr, meta(group + "_min", k), meta(group + "_size", k))
                acc = self.hoist(Value(code, *place), "k")
            return acc

        keys = [self.index(e) for _, e in expr.keys]
        key_index = dense(keys, "key")
        block = self.hoist(Value(call("at", array(table("key_table")), iconst(0), iconst(0), key_index.expr),
                                 *key_index.place), "blk")

        def lookup(values, group, field_name):
            index = dense(values, group)
            place = max(index.place, block.place)
            code = call("at", array(table(field_name)), block.expr, meta(group + "_stride"), index.expr)
            return self.hoist(Value(code, *place), "r")

        samples = [self.index(s.expr) for s in expr.samples]
        row = lookup(samples, "sample", "sample_table")
        components = []
        for k, slot in enumerate(expr.components):
            value = self.index(slot.expr)
            components.append(lookup([value], f"component{k}", f"component{k}_table"))
        column = self.column_table(expr, block, table, meta)
        if column is None:
            properties = [self.index(s.expr) for s in expr.properties]
            column = lookup(properties, "property", "property_table")

        shape = table("shape")
        width = len(expr.components) + 2
        parts = [row] + components + [column]
        missing = [compare("lt", p.expr, iconst(0)) for p in [block] + parts]
        missing_any = missing[0]
        for condition in missing[1:]:
            missing_any = nest.Binary("or", missing_any, condition, BOOL)

        def extent(k):
            return nest.Load(shape, iadd(imul(block.expr, iconst(width)), iconst(k)), INT)

        offset_code = row.expr
        for k, c in enumerate(components):
            offset_code = iadd(imul(offset_code, extent(k + 1)), c.expr)
        offset_code = iadd(imul(offset_code, extent(width - 1)), column.expr)
        base = table("base")
        place = self.join(block, *parts)
        code = nest.Select(missing_any, iconst(-1), iadd(nest.Load(base, block.expr, INT), offset_code), INT)
        offset = self.hoist(Value(code, *place), "off")
        flat = self.array(abi.BlockTable(key, "values"), REAL, f"values of {note}")
        return self.hoist(Value(call("read", array(flat), offset.expr), *offset.place), "x")

    def column_table(self, expr: ir.BlockRef, block: Value, table, meta) -> Optional[Value]:
        """The property column of a block access whose one property is a small range loop variable
        bound inside the block's level: looked up for every value of it once where the block is
        known (`C[q]`), not again for every element (the convolution's `h[j, l2, m2, q]`)."""
        if len(expr.properties) != 1 or not isinstance(expr.properties[0].expr, ir.Var):
            return None
        info = self.env.get(expr.properties[0].expr.name)
        domain = info.domain if info is not None else None
        if (not isinstance(domain, ir.RangeDomain) or info.level <= block.level
                or not 0 < domain.stop - domain.start <= planning.TABULATE_LIMIT):
            return None
        trip, start = domain.stop - domain.start, iconst(domain.start)
        level = block.level if not block.body else None
        if level is None:
            return None
        column = ref("mt_c")
        fill = call("at", array(table("property_table")), block.expr, meta("property_stride"),
                    call("dense", iconst(0), iadd(column, start), meta("property_min"), meta("property_size")))
        key = (id(self.stack[level]), False, ("column", fill))
        if key not in self.memo:
            name = self.fresh("c")
            self.statement((level, False), nest.Alloc(name, trip, INT, False, f"property columns of {expr.tensor}"))
            self.statement((level, False), nest.Loop("mt_c", iconst(0), iconst(trip), (nest.Store(name, column, fill),)))
            self.memo[key] = name
        return Value(nest.Load(self.memo[key], info.position, INT), info.level)

    def direct_access(self, expr: ir.BlockRef) -> Optional[Value]:
        """A block access to a tensor computed natively earlier in the module, read from its dense
        buffer (no TensorMap, no lookup tables) when `schedule.grid.solve_grid_access` names its point."""
        source = self.context.grids.get(expr.tensor)
        access = solve_grid_access(expr, source) if source is not None else None
        if access is None:
            return None
        indices, solved, checks = access.indices, access.solved, access.checks

        # values and positions of the solved coordinates, in the accessing kernel's scope
        try:
            values = {name: self.index(value_expr) for name, value_expr in solved.items()}
        except Unsupported:
            return None
        saved_env, saved_domains = dict(self.env), dict(self.domains)
        try:
            for name, value in values.items():
                self.env[name] = VarInfo(value.expr, value.expr, value.level, indices[name])
            self.domains = access.scope_domains(saved_domains)
            conditions, offset_terms = [], []
            grid = self.array(abi.Grid(expr.tensor), REAL, f"dense values of {expr.tensor}")
            for k, binder in enumerate(source.indices):
                size = self.scalar(abi.GridSize(expr.tensor, k), f"size {k} of {expr.tensor}")
                proven = proven_coordinate(binder.domain, solved[binder.name], solved, saved_env, saved_domains)
                if proven is not None:  # a loop variable ranging inside this domain: in the grid by construction
                    loop = saved_env[proven]
                    offset_terms.append((Value(loop.position, loop.level), size))
                    continue
                position, condition = self.grid_position(binder.domain, values[binder.name])
                conditions.append(condition)
                offset_terms.append((position, size))
            for entry_expr, access_expr in checks:
                mine, theirs = self.index(entry_expr), self.index(access_expr)
                if mine.expr != theirs.expr:
                    conditions.append(self.hoist(Value(compare("eq", mine.expr, theirs.expr), *self.join(mine, theirs)), "ok"))
        finally:
            self.env, self.domains = saved_env, saved_domains
        # offset = ((p0 * n1 + p1) * n2 + p2) ..., hoisted term by term
        offset = None
        for position, size in offset_terms:
            if offset is None:
                offset = position
            else:
                offset = self.hoist(Value(iadd(imul(offset.expr, size), position.expr), *self.join(offset, position)), "g")
        # the conditions, and-ed innermost last
        ok = self.fold(conditions, "and", BOOL, "ok") if conditions else Value(nest.Const(True, BOOL), 0)
        place = self.join(offset, ok)
        read = nest.Load(grid, offset.expr, REAL)
        if not conditions:  # every coordinate is a loop variable of the tensor's own grid
            return self.hoist(Value(read, *offset.place), "x")
        return self.hoist(Value(nest.Select(ok.expr, read, call("read", array(grid), iconst(-1)), REAL), *place), "x")

    def grid_position(self, domain, value: Value) -> tuple:
        """(position in the buffer, in-domain condition) of a coordinate of another kernel's grid."""
        v = value.expr
        if isinstance(domain, ir.RangeDomain):
            start, stop = iconst(domain.start), iconst(domain.stop)
            position = isub(v, start)
            condition = both(compare("ge", v, start), compare("lt", v, stop))
            places = [value]
        elif isinstance(domain, ir.SpeciesDomain):
            table = self.array(abi.SpeciesRank(domain), INT, f"rank of each atomic number in {domain}")
            size = self.scalar(abi.SpeciesRankSize(domain), "size of that table")
            code = call("at", array(table), iconst(0), iconst(0), call("dense", iconst(0), v, iconst(0), size))
            rank = self.hoist(Value(code, *value.place), "rk")
            return rank, self.hoist(Value(compare("ge", rank.expr, iconst(0)), *rank.place), "ok")
        elif isinstance(domain, ir.IrrepDomain):
            degree = self.index(domain.degree)
            position = iadd(v, iconst(domain.max_degree))
            condition = compare("le", call("iabs", v), call("imin", degree.expr, iconst(domain.max_degree)))
            places = [value, degree]
        elif isinstance(domain, ir.XyzDomain):
            position, places = v, [value]
            condition = both(compare("ge", v, iconst(0)), compare("le", v, iconst(2)))
        else:
            count = self.domain_size(domain)
            position, places = v, [value]
            condition = both(compare("ge", v, iconst(0)), compare("lt", v, count))
        place = self.join(*places)
        return (self.hoist(Value(position, *value.place), "gp"), self.hoist(Value(condition, *place), "ok"))
