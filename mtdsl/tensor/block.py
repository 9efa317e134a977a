"""`TensorBlock`: one dense block of values with its samples, components and properties.

The values have shape `[samples, *components, properties]`. Gradient blocks follow
metatensor's layout: their first sample dimension is `sample` (the row of the parent
block the gradient belongs to), then the parameter's own dimensions (`system, atom`
for positions); their components are the parameter's components (`xyz` for
positions, `xyz_2, xyz_1` for strain and cell) followed by the parent's components;
their properties are the parent's. Gradient blocks may have gradients themselves.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ..errors import MetadataError
from ._array import array_device, array_kind, convert, dtype_name, is_jax, is_torch, to_arguments
from ._display import block_text
from ._metatensor_api import Serializable, _function
from .labels import Labels


def short_dtype(dtype) -> str:
    """'f64' for float64, 'i32' for int32: metatensor's short dtype names."""
    name = dtype_name(dtype)
    for long, short in (("float", "f"), ("uint", "u"), ("int", "i"), ("complex", "c"), ("bool", "b")):
        if name.startswith(long):
            return short + (name[len(long):] or "8")
    return name


class TensorBlock(Serializable):
    """A block of values labelled along every axis, with optional gradient blocks."""

    __slots__ = ("_values", "_samples", "_components", "_properties", "_gradients", "_gradient_path")

    def __init__(self, values, samples: Labels, components: Sequence[Labels], properties: Labels):
        components = list(components)
        for axis_name, labels in (("samples", samples), ("properties", properties)):
            if not isinstance(labels, Labels):
                raise TypeError(f"`{axis_name}` must be metatensor Labels, not {type(labels)}")
        for labels in components:
            if not isinstance(labels, Labels):
                raise TypeError(f"`components` elements must be metatensor Labels, not {type(labels)}")
            if len(labels.names) != 1:
                raise MetadataError(
                    f"component labels must have a single dimension, got {labels.names}"
                )
        component_names = [c.names[0] for c in components]
        if len(set(component_names)) != len(component_names):
            raise MetadataError(f"component names must be unique, got {component_names}")
        if not is_torch(values) and not is_jax(values):  # numpy, or another DLPack producer (zero-copy)
            values = np.from_dlpack(values) if hasattr(values, "__dlpack__") and not isinstance(values, np.ndarray) \
                else np.asarray(values)
        expected = (len(samples), *(len(c) for c in components), len(properties))
        if tuple(values.shape) != expected:
            raise MetadataError(
                f"values have shape {list(values.shape)} but the labels give {list(expected)} "
                f"(samples {samples.names}, components {component_names}, properties {properties.names})"
            )
        self._values = values
        self._samples = samples
        self._components = components
        self._properties = properties
        self._gradients: dict[str, TensorBlock] = {}
        self._gradient_path: tuple[str, ...] = ()  # ("positions",) for a positions gradient, for repr

    # -- metadata -------------------------------------------------------------------
    @property
    def values(self):
        return self._values

    @values.setter
    def values(self, new_values):
        if tuple(new_values.shape) != tuple(self._values.shape):
            raise MetadataError(
                f"new values have shape {list(new_values.shape)}, the block has {list(self._values.shape)}"
            )
        self._values = new_values

    @property
    def samples(self) -> Labels:
        return self._samples

    @property
    def components(self) -> list[Labels]:
        return list(self._components)

    @property
    def properties(self) -> Labels:
        return self._properties

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._values.shape)

    def __len__(self) -> int:
        """The number of samples (rows of the values), as in metatensor."""
        return len(self._values)

    @property
    def dtype(self):
        return self._values.dtype

    @property
    def device(self) -> str:
        return array_device(self._values)

    @property
    def is_view(self) -> bool:
        return False

    # -- gradients -------------------------------------------------------------------
    def add_gradient(self, parameter: str, gradient: "TensorBlock") -> None:
        """Attach `gradient` as the gradient of the values with respect to `parameter`."""
        if not isinstance(gradient, TensorBlock):
            raise TypeError(f"gradient must be a TensorBlock, not {type(gradient).__name__}")
        if parameter in self._gradients:
            raise MetadataError(f"the block already has a gradient with respect to {parameter!r}")
        where = f"gradient with respect to {parameter!r}"
        if not gradient.samples.names:
            raise MetadataError(
                "invalid parameter: gradients samples must have at least one dimension, named 'sample', we got none"
            )
        if gradient.samples.names[0] != "sample":
            raise MetadataError(
                f"{where}: the first sample dimension must be 'sample', got {gradient.samples.names}"
            )
        n_extra = len(gradient._components) - len(self._components)
        if n_extra < 0 or [c for c in gradient._components[n_extra:]] != self._components:
            raise MetadataError(
                f"{where}: its components must end with the block's components "
                f"{[c.names[0] for c in self._components]}, got {[c.names[0] for c in gradient._components]}"
            )
        if gradient.properties != self._properties:
            raise MetadataError(f"{where}: its properties must be the block's properties")
        if dtype_name(gradient.dtype) != dtype_name(self.dtype):
            raise MetadataError(
                f"invalid parameter: the gradient values have dtype '{short_dtype(gradient.dtype)}' but the block "
                f"values have dtype '{short_dtype(self.dtype)}' ({where}: {dtype_name(gradient.dtype)} instead "
                f"of {dtype_name(self.dtype)})"
            )
        if array_kind(gradient.values) != array_kind(self._values):
            raise MetadataError(
                f"invalid parameter: the gradient data has a different origin ('python.{array_kind(gradient.values)}') "
                f"than the value data ('python.{array_kind(self._values)}') ({where})"
            )
        if gradient.device != self.device:
            raise MetadataError(
                f"invalid parameter: the gradient and the block must be on the same device, got "
                f"{gradient.device} and {self.device} ({where})"
            )
        rows = gradient.samples.array[:, 0]
        if len(rows) and rows.min() < 0:
            raise MetadataError(
                "invalid parameter: invalid value for the 'sample' dimension in gradient samples: all values should "
                f"be positive, but we got {int(rows.min())} ({where})"
            )
        if len(rows) and rows.max() >= len(self._samples):
            raise MetadataError(
                "invalid parameter: invalid value for the 'sample' dimension in gradient samples: we got "
                f"{int(rows.max())}, but the values contain {len(self._samples)} samples ({where}: 'sample' "
                f"values must be rows of the block, 0..{len(self._samples) - 1})"
            )
        self._gradients[parameter] = gradient
        if not gradient._gradient_path:
            gradient._gradient_path = (*self._gradient_path, parameter)

    def gradient(self, parameter: str) -> "TensorBlock":
        try:
            return self._gradients[parameter]
        except KeyError:
            raise MetadataError(
                f"no gradient with respect to {parameter!r} in this block "
                f"(it has {sorted(self._gradients) or 'none'})"
            ) from None

    def has_gradient(self, parameter: str) -> bool:
        return parameter in self._gradients

    def gradients_list(self) -> list[str]:
        return list(self._gradients)

    def gradients(self) -> Iterator[tuple[str, "TensorBlock"]]:
        return iter(list(self._gradients.items()))

    # -- copies and conversions -----------------------------------------------------------
    def copy(self, deep: bool = True) -> "TensorBlock":
        """A copy; `deep=True` (the default) copies the values and every gradient's values,
        `deep=False` shares them."""
        values = self._values
        if deep:
            values = values.clone() if is_torch(values) else values.copy()
        block = TensorBlock(values, self._samples, self._components, self._properties)
        for parameter, gradient in self._gradients.items():
            block._gradients[parameter] = gradient.copy(deep=deep)
            block._gradients[parameter]._gradient_path = gradient._gradient_path
        return block

    def __copy__(self) -> "TensorBlock":
        return self.copy(deep=False)

    def __deepcopy__(self, memo) -> "TensorBlock":
        return self.copy(deep=True)

    def to(self, *args, dtype=None, device=None, arrays: str | None = None,
           non_blocking: bool = False) -> "TensorBlock":
        """The same block with values (and gradients) of another dtype, device or library
        (`to("cpu")`, `to(torch.float32)` and keywords, as in metatensor)."""
        dtype, device = to_arguments(args, dtype, device, "TensorBlock.to")
        values = convert(self._values, dtype=dtype, device=device, arrays=arrays, non_blocking=non_blocking)
        to_labels = (lambda labels: labels.to(arrays="torch", device=device)) if array_kind(values) == "torch" \
            else (lambda labels: labels.to(arrays="numpy"))
        block = TensorBlock(values, to_labels(self._samples), [to_labels(c) for c in self._components],
                            to_labels(self._properties))
        for parameter, gradient in self._gradients.items():
            block._gradients[parameter] = gradient.to(dtype=dtype, device=device, arrays=arrays,
                                                      non_blocking=non_blocking)
            block._gradients[parameter]._gradient_path = gradient._gradient_path
        return block

    # -- comparison and display --------------------------------------------------------------
    def __repr__(self) -> str:
        return block_text(self, self._gradient_path)

    def __eq__(self, other):
        if not isinstance(other, TensorBlock):
            return NotImplemented
        return _function("equal_block")(self, other)

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    # equal blocks stay distinct objects (caches and sets key them by identity), as before
    __hash__ = object.__hash__

    def _metadata_equal(self, other: "TensorBlock") -> bool:
        return (
            self._samples == other._samples
            and self._components == other._components
            and self._properties == other._properties
        )
