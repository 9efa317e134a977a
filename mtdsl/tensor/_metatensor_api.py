"""The parts of metatensor-core's class API that are conveniences over functions elsewhere:
`save`/`load` methods over `mtdsl.io.mts`, and the arithmetic operators of `TensorMap` over
`mtdsl.ops`.

The data model sits below both (they import it), so it does not import them: each registers
its functions here when it is imported (`register`, at the end of `mtdsl/io/mts.py` and of
`mtdsl/ops/__init__.py`), and `import mtdsl` (which any `import mtdsl.tensor` runs first)
imports both. A convenience called with neither loaded says so.
"""

from __future__ import annotations

#: name -> the function a convenience calls, registered by the layer that defines it
_REGISTERED: dict = {}


def register(**functions) -> None:
    """Make `functions` (`save=...`, `add=...`) the ones the conveniences call."""
    _REGISTERED.update(functions)


def _function(name: str):
    try:
        return _REGISTERED[name]
    except KeyError:
        raise RuntimeError(f"`{name}` is not registered: import mtdsl (mtdsl.io.mts and mtdsl.ops "
                           "register the functions behind the data model's conveniences)") from None


class Serializable:
    """`obj.save(file)`, `obj.save_buffer()`, `Class.load(file)`, `Class.load_buffer(buffer)`."""

    __slots__ = ()

    def save(self, file, use_numpy: bool = False, compress: bool = False) -> None:
        """Save to a path or a binary file object (`mtdsl.save`)."""
        save = _function("save")
        save(file, self, use_numpy=use_numpy, compress=compress)

    def save_buffer(self, use_numpy: bool = False, compress: bool = False) -> memoryview:
        """The bytes of `save`, as a memoryview (as metatensor returns them)."""
        save_buffer = _function("save_buffer")
        return memoryview(save_buffer(self, use_numpy=use_numpy, compress=compress))

    @classmethod
    def load(cls, file, use_numpy: bool = False, mmap: bool = False, verify: bool = True):
        """Load an object of this class from a path or a binary file object."""
        load = _function("load")
        load_as = _function("load_as")
        return load_as(load(file, mmap=mmap, verify=verify), cls, file)

    @classmethod
    def load_buffer(cls, buffer, use_numpy: bool = False, verify: bool = True):
        """Load an object of this class from bytes (what `save_buffer` gives)."""
        load_as = _function("load_as")
        load_buffer = _function("load_buffer")
        return load_as(load_buffer(buffer, verify=verify), cls, None)


class MetatensorOperators:
    """`a + b`, `a - b`, `a * b`, `a / b`, `a ** b`, `a @ b`, `-a`, `a == b` on TensorMaps,
    through `mtdsl.ops` (`add`, `subtract`, `multiply`, `divide`, `pow`, `dot`, `equal`)."""

    __slots__ = ()

    def __add__(self, other):
        add = _function("add")
        return add(self, other)

    def __sub__(self, other):
        subtract = _function("subtract")
        return subtract(self, other)

    def __mul__(self, other):
        multiply = _function("multiply")
        return multiply(self, other)

    def __truediv__(self, other):
        divide = _function("divide")
        return divide(self, other)

    def __pow__(self, other):
        pow = _function("pow")
        return pow(self, other)

    def __matmul__(self, other):
        dot = _function("dot")
        return dot(self, other)

    def __neg__(self):
        multiply = _function("multiply")
        return multiply(self, -1)

    def __pos__(self):
        return self

    def __eq__(self, other):
        if not isinstance(other, type(self)):
            return NotImplemented
        equal = _function("equal")
        return equal(self, other)

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    # equal maps stay distinct objects (caches and sets key them by identity), as before
    __hash__ = object.__hash__
