"""Testing helpers for users' own models, the ones mtdsl's test-suite uses.

`assert_equivariant(model, frames, **inputs)` rotates and inverts the systems
(and the equivariant components of input TensorMaps), runs the model again and
checks that every output transforms as its metadata says: a block with keys
`o3_lambda = l, o3_sigma = s` and an `o3_mu` component by the Wigner-D matrix of
degree `l` under rotations and by `s (-1)^l` under inversion, every `xyz*`
component (`xyz`, `xyz_1`, `xyz_2`...) as a vector, everything else as an invariant.
"""

from __future__ import annotations

import numpy as np

from .errors import MtdslError
from .ir import nodes as ir
from .math.wigner import wigner_d
from .systems import System, as_batch
from .tensor import Labels, TensorBlock, TensorMap
from .tensor._array import to_numpy


class EquivarianceError(MtdslError):
    """An output that does not transform as its metadata declares."""


def random_rotation(seed: int = 0) -> np.ndarray:
    """A uniformly random proper rotation matrix."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q * np.sign(np.linalg.det(q))


def random_systems(species=(1, 6, 8), n_systems=3, seed=0) -> list[System]:
    """Small random systems: a molecule, a periodic crystal, and an isolated atom pair."""
    rng = np.random.default_rng(seed)
    species = list(species)
    systems = []
    for k in range(n_systems):
        if k % 3 == 2:
            types = rng.choice(species, size=2)
            positions = np.array([[0.0, 0.0, 0.0], [30.0, 0.0, 0.0]])
            systems.append(System(types, positions))
            continue
        n_atoms = int(rng.integers(3, 9))
        types = rng.choice(species, size=n_atoms)
        if k % 3 == 0:
            positions = _spread(rng, n_atoms, 3.0)
            systems.append(System(types, positions))
        else:
            cell = np.diag(rng.uniform(3.5, 5.0, size=3)) + rng.uniform(-0.3, 0.3, size=(3, 3))
            fractions = rng.uniform(size=(n_atoms, 3))
            positions = fractions @ cell
            systems.append(System(types, positions, cell, np.array([True, True, True])))
    return systems


def _spread(rng, n_atoms, size):
    positions = [rng.uniform(-size, size, size=3)]
    while len(positions) < n_atoms:
        candidate = rng.uniform(-size, size, size=3)
        if min(np.linalg.norm(candidate - p) for p in positions) > 0.8:
            positions.append(candidate)
    return np.array(positions)


def random_inputs(module, frames, seed: int = 0) -> dict:
    """Random TensorMaps for every tensormap input of a compiled module, shaped by its declaration.

    Keys `o3_lambda` take every degree the program's irreps reach (with `o3_sigma`
    both parities), samples `system, atom` every atom of `frames`, `o3_mu` and `xyz`
    components their irrep, properties every value of the program's largest range
    dimension (so any channel index the program reads exists); other labels take 0.
    """

    rng = np.random.default_rng(seed)
    batch = as_batch(frames)
    degrees, widths = [0], [1]
    for node in _domains(module):
        if isinstance(node, ir.IrrepDomain):
            degrees.append(node.max_degree)
        elif isinstance(node, ir.RangeDomain):
            widths.append(node.stop)
    top, width = max(degrees), max(widths)
    atoms = np.stack([to_numpy(batch.system), to_numpy(batch.atom)], axis=1)
    inputs = {}
    for declaration in module.tensormaps:
        key_rows = [[]]
        for name in declaration.keys:
            values = {"o3_lambda": range(top + 1), "o3_sigma": (1, -1)}.get(name, (0,))
            key_rows = [row + [v] for row in key_rows for v in values]
        blocks = []
        for row in key_rows:
            key = dict(zip(declaration.keys, row))
            samples = atoms if tuple(declaration.samples) == ("system", "atom") else np.zeros((1, len(declaration.samples)))
            components = []
            for name in declaration.components:
                if name == "o3_mu":
                    degree = key.get("o3_lambda", 0)
                    components.append(Labels([name], np.arange(-degree, degree + 1).reshape(-1, 1)))
                else:
                    components.append(Labels([name], np.arange(3 if name == "xyz" else 1).reshape(-1, 1)))
            grids = np.meshgrid(*[np.arange(width)] * len(declaration.properties), indexing="ij")
            properties = np.stack([g.reshape(-1) for g in grids], axis=1) if grids else np.zeros((1, 0))
            shape = (len(samples), *(len(c) for c in components), len(properties))
            blocks.append(TensorBlock(rng.normal(size=shape), Labels(list(declaration.samples), samples.astype(np.int32)),
                                      components, Labels(list(declaration.properties), properties.astype(np.int32))))
        keys = Labels(list(declaration.keys), np.array(key_rows, dtype=np.int32).reshape(len(key_rows), -1))
        inputs[declaration.name] = TensorMap(keys, blocks)
    return inputs


def _domains(module):
    """Every domain appearing in a module (kernel indices, reduction binders, params)."""

    def walk(node):
        if isinstance(node, ir.Binder):
            yield node.domain
            yield from walk(node.domain)
            return
        for name in getattr(node, "__slots__", ()):
            value = getattr(node, name, None)
            for child in value if isinstance(value, tuple) else (value,):
                if hasattr(child, "__slots__") and not isinstance(child, (str, int, float)):
                    yield from walk(child)

    for kernel in module.kernels:
        yield from walk(kernel)
    for param in module.params:
        yield from param.domains


def transform_systems(frames, matrix: np.ndarray) -> list[System]:
    """Systems with positions and cells multiplied by `matrix` (a rotation, or -1 for inversion)."""
    batch = as_batch(frames)
    result = []
    for system in batch.systems:
        positions = to_numpy(system.positions) @ matrix.T
        cell = to_numpy(system.cell) @ matrix.T
        result.append(System(to_numpy(system.types), positions, cell, to_numpy(system.pbc)))
    return result


def transform_tensormap(tensor: TensorMap, matrix: np.ndarray, convention: str = "metatensor") -> TensorMap:
    """How an equivariant TensorMap changes when the systems are transformed by `matrix`."""
    keys = tensor.keys.names
    blocks = []
    for index, block in enumerate(tensor.blocks()):
        key = dict(zip(keys, tensor.keys.array[index].tolist()))
        values = to_numpy(block.values)
        for axis, component in enumerate(block.components, start=1):
            name = component.names[0]
            if name == "o3_mu" and "o3_lambda" in key:
                values = _apply(_irrep_matrix(key["o3_lambda"], key.get("o3_sigma", 1), matrix, convention), values, axis)
            elif name.startswith("xyz"):  # `xyz`, `xyz_1`, `xyz_2`...: every Cartesian axis is a vector
                values = _apply(matrix, values, axis)
        blocks.append(TensorBlock(values, block.samples, block.components, block.properties))
    return TensorMap(tensor.keys, blocks)


def _irrep_matrix(degree: int, sigma: int, matrix: np.ndarray, convention: str) -> np.ndarray:
    determinant = np.linalg.det(matrix)
    proper = matrix * np.sign(determinant)
    d = wigner_d(int(degree), proper, convention)
    if determinant < 0:  # an improper transformation: parity sigma (-1)^l
        d = d * sigma * (-1) ** int(degree)
    return d


def _apply(matrix, values, axis):
    return np.moveaxis(np.tensordot(matrix, values, axes=([1], [axis])), 0, axis)


def assert_equivariant(model, frames, *, seed: int = 0, atol: float = 1e-10, inversion: bool = True, **inputs):
    """Raise `EquivarianceError` unless every output of `model` transforms as declared.

    `inputs` are the model's tensormap inputs; their `o3_mu`/`xyz` components are
    transformed with the systems. Tolerance `atol` is relative to the largest value of each block.
    """
    convention = getattr(getattr(model, "module", None), "convention", "metatensor")
    reference = model(frames, **inputs)
    transformations = [("rotation", random_rotation(seed))]
    if inversion:
        transformations.append(("inversion", -np.eye(3)))
        transformations.append(("rotation and inversion", -random_rotation(seed + 1)))
    for name, matrix in transformations:
        moved_inputs = {k: transform_tensormap(v, matrix, convention) for k, v in inputs.items()}
        moved = model(transform_systems(frames, matrix), **moved_inputs)
        for output, tensor in reference.items():
            expected = transform_tensormap(tensor, matrix, convention)
            _compare(output, name, expected, moved[output], atol)


def _compare(output: str, transformation: str, expected: TensorMap, found: TensorMap, atol: float):
    if expected.keys != found.keys:
        raise EquivarianceError(f"output {output}: the {transformation} changed the blocks")
    for index, (a, b) in enumerate(zip(expected.blocks(), found.blocks())):
        key = ", ".join(f"{n}={v}" for n, v in zip(expected.keys.names, expected.keys.array[index].tolist()))
        if a.samples != b.samples or a.properties != b.properties:
            raise EquivarianceError(f"output {output}, block ({key}): the {transformation} changed the labels")
        scale = max(float(np.abs(to_numpy(a.values)).max(initial=0.0)), 1.0)
        error = float(np.abs(to_numpy(a.values) - to_numpy(b.values)).max(initial=0.0))
        if error > atol * scale:
            raise EquivarianceError(
                f"output {output}, block ({key}) is not equivariant under {transformation}: "
                f"error {error:.3g} (largest value {scale:.3g})"
            )
