"""The parts of metatensor-core's class API that are conveniences over functions elsewhere:
`save`/`load` methods over `mtdsl.io.mts`, and the arithmetic operators of `TensorMap` over
`mtdsl.ops`. Both are imported when called, so the data model does not depend on them."""

from __future__ import annotations


class Serializable:
    """`obj.save(file)`, `obj.save_buffer()`, `Class.load(file)`, `Class.load_buffer(buffer)`."""

    __slots__ = ()

    def save(self, file, use_numpy: bool = False, compress: bool = False) -> None:
        """Save to a path or a binary file object (`mtdsl.save`)."""
        from ..io.mts import save

        save(file, self, use_numpy=use_numpy, compress=compress)

    def save_buffer(self, use_numpy: bool = False, compress: bool = False) -> memoryview:
        """The bytes of `save`, as a memoryview (as metatensor returns them)."""
        from ..io.mts import save_buffer

        return memoryview(save_buffer(self, use_numpy=use_numpy, compress=compress))

    @classmethod
    def load(cls, file, use_numpy: bool = False, mmap: bool = False, verify: bool = True):
        """Load an object of this class from a path or a binary file object."""
        from ..io.mts import load, load_as

        return load_as(load(file, mmap=mmap, verify=verify), cls, file)

    @classmethod
    def load_buffer(cls, buffer, use_numpy: bool = False, verify: bool = True):
        """Load an object of this class from bytes (what `save_buffer` gives)."""
        from ..io.mts import load_as, load_buffer

        return load_as(load_buffer(buffer, verify=verify), cls, None)


class MetatensorOperators:
    """`a + b`, `a - b`, `a * b`, `a / b`, `a ** b`, `a @ b`, `-a`, `a == b` on TensorMaps,
    through `mtdsl.ops` (`add`, `subtract`, `multiply`, `divide`, `pow`, `dot`, `equal`)."""

    __slots__ = ()

    def __add__(self, other):
        from ..ops import add

        return add(self, other)

    def __sub__(self, other):
        from ..ops import subtract

        return subtract(self, other)

    def __mul__(self, other):
        from ..ops import multiply

        return multiply(self, other)

    def __truediv__(self, other):
        from ..ops import divide

        return divide(self, other)

    def __pow__(self, other):
        from ..ops import pow

        return pow(self, other)

    def __matmul__(self, other):
        from ..ops import dot

        return dot(self, other)

    def __neg__(self):
        from ..ops import multiply

        return multiply(self, -1)

    def __pos__(self):
        return self

    def __eq__(self, other):
        if not isinstance(other, type(self)):
            return NotImplemented
        from ..ops import equal

        return equal(self, other)

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    # equal maps stay distinct objects (caches and sets key them by identity), as before
    __hash__ = object.__hash__
