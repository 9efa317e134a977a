"""The roles the derivative passes give to what they add to the IR, as types.

The derivative passes (`mtdsl/ir/passes/`: autodiff, terms, products; and `codegen/schedule/fuse.py`,
`runtime/gradients/native_products.py`) add kernels, run-time ranges, data sources and tensors that no
program declares: the rows of a computed tensor's gradient, its values as scatter kernels wrote
them, its blocks as a TensorMap, the row maps of scatter and product kernels, cotangents and
tangents, term, scatter, product and fused kernels. Each is a value of one class below, put
where the IR holds a name: `Data.source`, `PairsDomain.pairs` (a run-time range of rows),
`BlockRef.tensor`, `TensorKernel.name`, `FusedKernel.name`; and `Data.field` where it reads a
label of gradient rows (`RowField`) or a gradient's written values (`DenseValues`). A consumer asks the type
(`isinstance(expr.source, GradientRows)`) and reads the typed fields (`.tensor`, `.wrt`): no
name is ever parsed or tested by prefix.

Each role is a `str` subclass: the value is also its printed name (`·rows·ps·positions`; `·` is
not a character of the language's names, so it never meets a program's), so that everything
that only needs a name (dictionaries, generated code, error messages, the kernel cache's keys)
works unchanged, and a role compares equal to its name. This module is the one place that
spells the names; `tests/ir/test_roles.py` fails on a reserved prefix anywhere else. A role
survives copying, pickling and the kernel cache (`codegen/serialize.py` stores its class and
fields); building a new string from it (`name + "x"`, an f-string) gives a plain name, with no
role.
"""

from __future__ import annotations

SEPARATOR = "·"


class RoleName(str):
    """A name with a role: its class is the role, `fields` its parts (strings and integers)."""

    FIELDS: tuple[str, ...] = ()
    DEFAULTS: tuple = ()  # the values of the last fields when they are not given

    def __new__(cls, *fields):
        required = len(cls.FIELDS) - len(cls.DEFAULTS)
        if not required <= len(fields) <= len(cls.FIELDS):
            raise TypeError(f"{cls.__name__} takes the fields {cls.FIELDS}, not {fields!r}")
        # plain strings and integers: a field that is itself a role (a fused kernel of product
        # kernels) keeps only its name, so that every role is stored as data by the kernel cache
        given = fields + cls.DEFAULTS[len(fields) - required:]
        fields = tuple(str.__str__(f) if isinstance(f, str) else int(f) for f in given)
        self = super().__new__(cls, cls.spell(*fields))
        self.fields = fields
        return self

    @staticmethod
    def spell(*fields) -> str:
        raise NotImplementedError

    def __getattr__(self, name):
        fields = type(self).FIELDS
        if name in fields:
            return self.fields[fields.index(name)]
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def __reduce__(self):  # pickled and copied by its fields, not its text
        return (type(self), self.fields)


def _spell(role: str, *parts) -> str:
    return SEPARATOR + role + SEPARATOR + SEPARATOR.join(str(p) for p in parts)


def _derivative(kernel, wrt, k) -> str:
    return f"d{kernel}/d{wrt}#{k}"


# ---- run-time ranges and data sources --------------------------------------------------


class GradientRows(RoleName):
    """The rows of `tensor`'s gradient w.r.t. `wrt`: a run-time range (`PairsDomain(rows)`, as
    many points as rows) and the data source of their labels (`Data(rows, "block", ...)`)."""

    FIELDS = ("tensor", "wrt")
    spell = staticmethod(lambda tensor, wrt: _spell("rows", tensor, wrt))


#: what a `RowField` reads of a gradient row: its block, its position in the block, its target
#: (atom or system), a key of its block (`name`: the key's label) or a sample entry (`name`: the slot)
ROW_FIELD_KINDS = ("block", "local", "target", "key", "sample")


def _row_field(kind, name=""):
    if kind not in ROW_FIELD_KINDS or (name != "") != (kind in ("key", "sample")):
        raise TypeError(f"RowField({kind!r}, {name!r}): a kind of {ROW_FIELD_KINDS}, named for key and sample only")
    return f"{kind}:{name}" if name != "" else kind


class RowField(RoleName):
    """The label of gradient rows a `Data(GradientRows(T, wrt), field, (row,))` reads (mtdsl/ir/passes/terms.py):
    `kind` one of `ROW_FIELD_KINDS`, `name` the key's label (`key`) or the sample entry's slot (`sample`).
    Spelled `block`, `local`, `target`, `key:<label>`, `sample:<slot>`; read by its fields, never parsed."""

    FIELDS = ("kind", "name")
    DEFAULTS = ("",)
    spell = staticmethod(_row_field)


class DenseValues(RoleName):
    """What a `Data(GradientValues(T, wrt), field, (row, *positions))` reads (mtdsl/ir/passes/terms.py):
    the value at a row, then at positions along axes of `sizes` (3 for each direction, then
    each column's size). Spelled `value:3,8`; read by `.sizes`, never parsed."""

    def __new__(cls, *sizes):
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in sizes):
            raise TypeError(f"DenseValues takes the sizes of its axes (integers), not {sizes!r}")
        self = str.__new__(cls, "value:" + ",".join(str(int(s)) for s in sizes))
        self.fields = tuple(int(s) for s in sizes)
        return self

    @property
    def sizes(self) -> tuple:
        return self.fields


class GradientValues(RoleName):
    """`tensor`'s gradient w.r.t. `wrt` as its scatter kernels wrote it (a data source, read at
    a row then the gradient's positions)."""

    FIELDS = ("tensor", "wrt")
    spell = staticmethod(lambda tensor, wrt: _spell("dense", tensor, wrt))

    @property
    def rows(self) -> GradientRows:
        return GradientRows(self.tensor, self.wrt)


class GradientBlocks(RoleName):
    """`tensor`'s gradient blocks w.r.t. `wrt` as a TensorMap built at run time (a `BlockRef.tensor`)."""

    FIELDS = ("tensor", "wrt")
    spell = staticmethod(lambda tensor, wrt: _spell("grad", tensor, wrt))


class RowMap(RoleName):
    """The row of each point of a scatter kernel (`product` ""), of a VJP or JVP product kernel
    (`product` "vjp" / "jvp"): a run-time range (the rows written) and a data source (the map)."""

    FIELDS = ("kernel", "wrt", "k", "product")
    DEFAULTS = ("",)
    spell = staticmethod(lambda kernel, wrt, k, product="": (
        _spell("out", product, kernel, wrt, k) if product else _spell("out", kernel, wrt, k)))


# ---- stand-in tensors ------------------------------------------------------------------------


class Cotangent(RoleName):
    """The cotangent of `kernel`'s tensor: a stand-in kernel on its grid, read by VJP kernels."""

    FIELDS = ("kernel",)
    spell = staticmethod(lambda kernel: _spell("cot", kernel))


class Tangent(RoleName):
    """A tangent of the positions or the cell (`wrt`): a stand-in kernel, read by JVP kernels."""

    FIELDS = ("wrt",)
    spell = staticmethod(lambda wrt: _spell("tan", wrt))


class TensorTangent(RoleName):
    """The tangent of the computed tensor `kernel`: a stand-in kernel on its grid, read by JVP kernels."""

    FIELDS = ("kernel",)
    spell = staticmethod(lambda kernel: _spell("dot", kernel))


# ---- derived kernels ---------------------------------------------------------------------------


class DerivedKernel(RoleName):
    """A kernel the derivative passes add (a term, scatter or product kernel of `kernel`)."""

    FIELDS = ("kernel", "wrt", "k")


class TermKernel(DerivedKernel):
    """Term `k` of `kernel`'s gradient w.r.t. `wrt` over the term's own points (mtdsl/ir/passes/terms.py)."""

    spell = staticmethod(lambda kernel, wrt, k: SEPARATOR + _derivative(kernel, wrt, k))


class ScatterKernel(DerivedKernel):
    """Term `k` of `kernel`'s gradient w.r.t. `wrt` added straight into the gradient's rows."""

    spell = staticmethod(lambda kernel, wrt, k: _spell("scatter", _derivative(kernel, wrt, k)))


class VjpKernel(DerivedKernel):
    """Term `k` contracted with a cotangent (`wrt` the positions / cell, or a tensor read)."""

    spell = staticmethod(lambda kernel, wrt, k: _spell("vjp", _derivative(kernel, wrt, k)))


class JvpKernel(DerivedKernel):
    """Term `k` contracted with a tangent (`wrt` the positions / cell, or a tensor read)."""

    spell = staticmethod(lambda kernel, wrt, k: _spell("jvp", _derivative(kernel, wrt, k)))


class FusedName(RoleName):
    """A fused kernel (`ir.FusedKernel`): `kernel`'s values and gradient terms in one pass."""

    FIELDS = ("kernel", "wrt", "group")
    DEFAULTS = ("", "")
    spell = staticmethod(lambda kernel, wrt="", group="": _spell("fused", *(p for p in (kernel, wrt, group) if p)))


class PresenceTable(RoleName):
    """Which points of `kernel` are structurally present: a data source over the kernel indices
    its keys and samples depend on (codegen/schedule/presence.py), -1 at an absent point."""

    FIELDS = ("kernel",)
    spell = staticmethod(lambda kernel: _spell("present", kernel))


class BinderMask(RoleName):
    """The interpreter's alias of the mask of the binder `binder` (runtime/evaluate/evaluator.py)."""

    FIELDS = ("binder",)
    spell = staticmethod(lambda binder: _spell("mask", binder))


#: every role, by class name (codegen/serialize.py rebuilds them from the cache by this table)
ROLES = {cls.__name__: cls for cls in (
    GradientRows, RowField, DenseValues, GradientValues, GradientBlocks, RowMap, Cotangent, Tangent, TensorTangent,
    TermKernel, ScatterKernel, VjpKernel, JvpKernel, FusedName, PresenceTable, BinderMask)}

#: the reserved prefixes the names above start with (only tests/ir/test_roles.py reads them)
PREFIXES = tuple(_spell(role) for role in ("rows", "dense", "grad", "out", "cot", "tan", "dot",
                                           "scatter", "vjp", "jvp", "fused", "present", "mask"))
