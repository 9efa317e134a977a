"""The kernel ABI: what each run-time argument of a rendered kernel is, as data.

A lowered kernel (`schedule/kernel.py`) takes its outputs, then arrays, then integer
scalars; each is described by one of the frozen dataclasses below, which the lowering
produces, `RenderedKernel.arrays` / `.scalars` hold (and the kernel cache stores:
`codegen/serialize.py`), and the runtime binds by type (`runtime/native/compiled.py:
Arguments`, `runtime/export/tape.py`). Their `str` is the text form of comments and
`mtdsl compile --emit nest`.

Equal arguments are one argument: a kernel reading `P.vectors` twice takes it once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


class Argument:
    """A kernel argument; `subject` names what it reads (a systems or pairs name, a tensor, a role,
    a block access key), for invalidating bound values when that changes."""

    __slots__ = ()

    @property
    def subject(self):
        return getattr(self, fields(self)[0].name)


class ArrayArgument(Argument):
    __slots__ = ()


class ScalarArgument(Argument):
    __slots__ = ()


# ---- arrays ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputBuffer(ArrayArgument):
    """The buffer a kernel writes (a fused kernel: one per `member`), passed by its caller."""

    member: object = None  # the position among a fused kernel's members, None for a kernel's own

    def __str__(self):
        return "output buffer" + ("" if self.member is None else f" {self.member}")



@dataclass(frozen=True, slots=True)
class SystemsField(ArrayArgument):
    """A structure array of a systems input: `types` (int32), `positions` (real), `atom_offsets`..."""

    systems: str
    field: str

    def __str__(self):
        return f"{self.systems}.{self.field}"


@dataclass(frozen=True, slots=True)
class PairsField(ArrayArgument):
    """A structure array of a pairs input: `first`, `second`, `offsets` (int), `vectors`... (real)."""

    pairs: str
    field: str

    def __str__(self):
        return f"{self.pairs}.{self.field}"


@dataclass(frozen=True, slots=True)
class SpeciesValues(ArrayArgument):
    """The atomic numbers of a species domain, in order."""

    domain: object  # ir.SpeciesDomain

    def __str__(self):
        return f"values of {self.domain}"


@dataclass(frozen=True, slots=True)
class SpeciesRank(ArrayArgument):
    """The position of each atomic number in a species domain (-1 where absent)."""

    domain: object

    def __str__(self):
        return f"rank in {self.domain}"


@dataclass(frozen=True, slots=True)
class ParamValues(ArrayArgument):
    """A parameter's values, flat."""

    name: str

    def __str__(self):
        return f"param {self.name}"


@dataclass(frozen=True, slots=True)
class ConstTable(ArrayArgument):
    """A compile-time table of `RenderedModule.constants` (splines, Clebsch-Gordan), in the module's
    dtype or, `f64`, in float64 whatever the dtype."""

    name: str
    f64: bool = False

    def __str__(self):
        return f"table {self.name}" + (" (f64)" if self.f64 else "")


@dataclass(frozen=True, slots=True)
class BlockTable(ArrayArgument):
    """An array of a block access's lookup (`runtime/native/block_lookup.py`): `values`, `key_table`,
    `base`, `shape`, `<group>_table`..."""

    key: tuple  # codegen/schedule/module.py: block_ref_key, the tensor (or GradientBlocks) first
    field: str

    def __str__(self):
        return f"{self.key[0]} block lookup: {self.field}"


@dataclass(frozen=True, slots=True)
class Presence(ArrayArgument):
    """The presence table of a guarded kernel (`schedule/presence.py`; empty: every point)."""

    source: object  # roles.PresenceTable

    def __str__(self):
        return f"presence of {self.source}"


@dataclass(frozen=True, slots=True)
class RowMapArray(ArrayArgument):
    """A scatter kernel's gradient row of each point (`ir/passes/terms.py`)."""

    source: object  # roles.RowMap
    field: str

    def __str__(self):
        return f"{self.source}.{self.field}"


@dataclass(frozen=True, slots=True)
class GradientRowField(ArrayArgument):
    """An integer label of each row of a computed gradient (`block`, `local`, `target`, `key:k`, `sample:s`)."""

    source: object  # roles.GradientRows
    field: object  # roles.RowField

    def __str__(self):
        return f"{self.source}.{self.field}"


@dataclass(frozen=True, slots=True)
class DenseGradient(ArrayArgument):
    """A gradient's values as its scatter kernels wrote them."""

    source: object  # roles.GradientValues

    def __str__(self):
        return f"{self.source} as written"


@dataclass(frozen=True, slots=True)
class Grid(ArrayArgument):
    """An earlier kernel's dense buffer (`schedule/grid.py`)."""

    tensor: object

    def __str__(self):
        return f"grid of {self.tensor}"


# ---- scalars --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AtomCount(ScalarArgument):
    systems: str

    def __str__(self):
        return f"atoms in {self.systems}"


@dataclass(frozen=True, slots=True)
class SystemCount(ScalarArgument):
    systems: str

    def __str__(self):
        return f"systems in {self.systems}"


@dataclass(frozen=True, slots=True)
class PairCount(ScalarArgument):
    """The entries of a pairs input, of a gradient's rows or of a scatter kernel's rows."""

    source: object  # a pairs name, roles.GradientRows or roles.RowMap

    def __str__(self):
        return f"pairs in {self.source}"


@dataclass(frozen=True, slots=True)
class SpeciesCount(ScalarArgument):
    domain: object

    def __str__(self):
        return f"number of {self.domain}"


@dataclass(frozen=True, slots=True)
class SpeciesRankSize(ScalarArgument):
    domain: object

    def __str__(self):
        return f"size of rank table of {self.domain}"


@dataclass(frozen=True, slots=True)
class PresenceCount(ScalarArgument):
    source: object

    def __str__(self):
        return f"size of presence of {self.source}"


@dataclass(frozen=True, slots=True)
class ParamDim(ScalarArgument):
    name: str
    axis: int

    def __str__(self):
        return f"size {self.axis} of param {self.name}"


@dataclass(frozen=True, slots=True)
class BlockScalar(ScalarArgument):
    """An integer of a block access's lookup (`key_min`, `sample_size`...; `k` its slot)."""

    key: tuple
    field: str
    k: int

    def __str__(self):
        return f"{self.key[0]} block lookup: {self.field} {self.k}"


@dataclass(frozen=True, slots=True)
class GridSize(ScalarArgument):
    tensor: object
    axis: int

    def __str__(self):
        return f"size {self.axis} of {self.tensor}"


@dataclass(frozen=True, slots=True)
class DriverRange(ScalarArgument):
    """A scatter kernel's driver positions `[lo, hi)`: `end` 0 is lo, 1 is hi."""

    end: int

    def __str__(self):
        return "first driver position" if self.end == 0 else "driver position past the last"


FIRST, PAST = DriverRange(0), DriverRange(1)
