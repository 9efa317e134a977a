"""The checks of a model's input TensorMaps against their declarations (`input h : tensormap(...)`).

Shared by `Model.__call__` (runtime/model.py) and the torch module (runtime/torch/module.py), so
that neither imports the other for them.
"""

from __future__ import annotations

from mtdsl.errors import MtdslError, RunError
from mtdsl.ir import nodes as ir
from mtdsl.tensor import TensorMap


def check_tensormap_inputs(module: ir.Module, tensormaps: dict, error=MtdslError) -> None:
    """`tensormaps` must be exactly the module's tensormap inputs, each labelled as declared
    (a wrong set of names raises `error`)."""
    declared = {t.name: t for t in module.tensormaps}
    for name in tensormaps:
        if name not in declared:
            raise error(f"unknown input {name!r}: the model's tensormap inputs are {sorted(declared) or 'none'}")
    for name, declaration in declared.items():
        if name not in tensormaps:
            raise error(f"the model needs the tensormap input {name!r} ({name}=TensorMap)")
        check_tensormap_input(declaration, tensormaps[name])


def check_tensormap_input(declaration: ir.TensorMapInput, tensor) -> None:
    """The input's labels must be those its declaration names."""
    where = f"input {declaration.name}"
    if not isinstance(tensor, TensorMap):
        raise RunError(f"{where} must be an mtdsl.TensorMap, got {type(tensor).__name__}")
    if tuple(tensor.keys.names) != declaration.keys:
        raise RunError(f"{where}: keys are {tensor.keys.names}, the model declares {list(declaration.keys)}")
    for index, block in enumerate(tensor.blocks()):
        key = ", ".join(f"{n}={int(v)}" for n, v in zip(tensor.keys.names, tensor.keys.array[index]))
        for axis, found, expected in (
            ("samples", block.samples.names, declaration.samples),
            ("components", [c.names[0] for c in block.components], declaration.components),
            ("properties", block.properties.names, declaration.properties),
        ):
            if tuple(found) != tuple(expected):
                raise RunError(
                    f"{where}, block ({key}): {axis} are labelled {list(found)}, "
                    f"the model declares {list(expected)}"
                )
