"""`Model.to_jax(output)`: one output of a model as a JAX function, differentiable by JAX.

    f = model.to_jax("energy")
    values = f(positions, types=numbers, cell=cell, pbc=True)            # [samples, properties]
    forces = -jax.jit(jax.grad(lambda r: f(r, types=numbers).sum()))(positions)

`f(positions, *, types, cell=None, pbc=None, params=None, **tensormaps)` computes the output
for one system. `positions` `[N, 3]`, `cell` `[3, 3]`, the `params` (a dict name -> array; None:
`model.parameters`) and the values of the input TensorMaps' blocks are JAX inputs (traced,
differentiable); `types` and `pbc` are static (concrete arrays: they fix the output's shape).

The forward runs the model's backend through `jax.pure_callback`; a `jax.custom_vjp` gives the
backward, in two callbacks so that `jax.jit` drops the one whose cotangents are not used:

- positions and cell: the generated reverse-mode kernels (runtime/native_products.py, the
  products `model(frames, gradients=[...])` uses for its reverse gradient blocks), with the
  params and inputs as constants; one VJP with the given cotangent. The forward callback runs
  these products' own pass when they exist, and the backward reuses it when the inputs are the
  same (the usual `jax.grad` / `jax.vjp` sequence);
- params and input TensorMaps: `model.to_torch()`'s backward (runtime/torch_module.py);
  also the fallback for positions and cell where the products do not lower (and for the
  interpreter backend).

`jax.vmap` runs the callbacks once per system (`vmap_method="sequential"`).

The result's layout (blocks, samples) is fixed by `types` and `pbc`, as JAX needs static
shapes: it is that of the output on a probe geometry where every pair of atoms is within
every cutoff (all the blocks and samples the types allow). Blocks or samples a real geometry
lacks are zeros, as in a block-sparse TensorMap; `f.template(types=..., pbc=...)` is that
layout, a TensorMap of zeros. One block: `f` returns its values; several: a tuple, in key order.

Precision: the model computes in its own dtype (float64 by default) and the result has the
dtype of `positions`. JAX makes float32 arrays unless 64-bit types are enabled; for float64
results enable them around your own code (`with jax.enable_x64(True): ...` or
`jax.config.update("jax_enable_x64", True)`): mtdsl does not change that setting for you.
"""

from __future__ import annotations

import copy
import functools
import threading

import numpy as np

from mtdsl.errors import MtdslError
from mtdsl.systems import System
from mtdsl.tensor import Labels, TensorBlock, TensorMap

from .model import check_tensormap_inputs

#: groups of differentiable inputs, each with its own backward callback
_STRUCTURE, _INPUTS = "structure", "inputs"


class JaxFunctionError(MtdslError):
    """A call of a model's JAX function that cannot go on."""


def _static(value, what: str) -> np.ndarray:
    """A concrete numpy array of `value` (a traced jax value is an error that says what to do)."""
    try:
        return np.asarray(value)
    except Exception as error:  # jax's TracerArrayConversionError and friends
        raise JaxFunctionError(
            f"{what} must be a concrete array (it fixes the output's shape), not a traced value: "
            f"close over it or mark it static (jax.jit(..., static_argnames=...))"
        ) from error


def _fingerprint(tensor: TensorMap) -> tuple:
    """The labels of a TensorMap as a hashable value."""
    def labels(value: Labels):
        return tuple(value.names), value.array.tobytes(), value.array.shape

    return (labels(tensor.keys),) + tuple(
        (labels(b.samples), tuple(labels(c) for c in b.components), labels(b.properties)) for b in tensor.blocks())


class _Layout:
    """The output's blocks on the probe geometry: where a run's blocks and samples go in it."""

    def __init__(self, tensor: TensorMap):
        self.template = TensorMap(tensor.keys, [TensorBlock(np.zeros(b.values.shape), b.samples, b.components,
                                                            b.properties) for b in tensor.blocks()])
        self.shapes = [tuple(b.values.shape) for b in tensor.blocks()]

    def places(self, tensor: TensorMap, output: str) -> list[tuple[int, np.ndarray]]:
        """For each block of `tensor` (a run's output), its block in the layout and its rows there."""
        keys = self.template.keys
        found = []
        for index, block in enumerate(tensor.blocks()):
            position = int(keys.positions(tensor.keys.array[index:index + 1])[0])
            if position < 0:
                raise JaxFunctionError(f"output {output}: block {tensor.keys.array[index].tolist()} is not in the "
                                       f"layout these types give (keys {keys.names}): its blocks depend on more "
                                       f"than the types and pbc")
            reference = self.template.block(position)
            rows = reference.samples.positions(block.samples.array)
            if (rows < 0).any() or block.components != reference.components \
                    or block.properties != reference.properties:
                raise JaxFunctionError(f"output {output}: the samples, components or properties of block "
                                       f"{tensor.keys.array[index].tolist()} are not in the layout these types "
                                       f"give: its labels depend on more than the types and pbc")
            found.append((position, rows))
        return found

    def scatter(self, tensor: TensorMap, output: str, dtype) -> tuple:
        result = [np.zeros(shape, dtype=dtype) for shape in self.shapes]
        for (position, rows), block in zip(self.places(tensor, output), tensor.blocks()):
            result[position][rows] = np.asarray(block.values)
        return tuple(result)

    def gather(self, cotangents, tensor: TensorMap, output: str) -> list[np.ndarray]:
        return [np.asarray(cotangents[position], dtype=np.float64)[rows]
                for position, rows in self.places(tensor, output)]


class JaxFunction:
    """One output of a model as a JAX function (see the module's docstring)."""

    def __init__(self, model, output: str | None = None):
        names = [o.name for o in model.module.outputs]
        if output is None:
            if len(names) != 1:
                raise JaxFunctionError(f"the model has outputs {names}: say which one, model.to_jax(name)")
            output = names[0]
        if output not in names:
            raise JaxFunctionError(f"unknown output {output!r}: the model's outputs are {names}")
        if len(model.module.systems) != 1:
            raise JaxFunctionError("to_jax needs a model with one systems input")
        self.model = model
        self.output = output
        self.param_names = [p.name for p in model.module.params]
        self.input_names = [t.name for t in model.module.tensormaps]
        self._functions: dict = {}  # static signature -> (layout, jax function)
        self._products = None  # NativeProducts of the output, False where they do not lower
        self._torch = None  # the torch module of the fallback and of the inputs' VJP
        self._last = None  # (host, the inputs, bindings) of the last run of the products
        #: the callbacks share the products' state (their last run): XLA may call them from several
        #: threads (independent calls in one jitted function), so they run one at a time
        self.lock = threading.RLock()

    # -- the JAX side -------------------------------------------------------------------------------
    def __call__(self, positions, *, types, cell=None, pbc=None, params=None, **tensormaps):
        import jax.numpy as jnp

        positions = jnp.asarray(positions)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise JaxFunctionError(f"positions must have shape [n_atoms, 3], got {list(positions.shape)}")
        types = _static(types, "types").astype(np.int32).reshape(-1)
        if len(types) != positions.shape[0]:
            raise JaxFunctionError(f"got {len(types)} types for {positions.shape[0]} atoms")
        pbc = np.broadcast_to(_static(False if pbc is None else pbc, "pbc").astype(bool), (3,)).copy()
        cell = jnp.zeros((3, 3), positions.dtype) if cell is None else jnp.asarray(cell)
        params = self.model.parameters if params is None else params
        missing = sorted(set(self.param_names) - set(params))
        unknown = sorted(set(params) - set(self.param_names))
        if missing or unknown:
            raise JaxFunctionError(f"params must be exactly the model's {self.param_names}: "
                                   f"missing {missing}, unknown {unknown}")
        check_tensormap_inputs(self.model.module, tensormaps, error=JaxFunctionError)
        param_values = tuple(jnp.asarray(params[name]) for name in self.param_names)
        tensor_values = tuple(jnp.asarray(b.values) for name in self.input_names for b in tensormaps[name].blocks())
        key = (types.tobytes(), pbc.tobytes(), str(positions.dtype),
               tuple(_fingerprint(tensormaps[n]) for n in self.input_names))
        if key not in self._functions:
            layout = self._probe(types, pbc, tensormaps)
            self._functions[key] = (layout, self._function(layout, types, pbc, tensormaps, positions.dtype))
        layout, function = self._functions[key]
        result = function(positions, cell, param_values, tensor_values)
        return result[0] if len(result) == 1 else result

    def template(self, *, types, pbc=None, **tensormaps) -> TensorMap:
        """The layout of `f`'s result for these types: the output's labels, zero values."""
        types = _static(types, "types").astype(np.int32).reshape(-1)
        pbc = np.broadcast_to(_static(False if pbc is None else pbc, "pbc").astype(bool), (3,)).copy()
        return self._probe(types, pbc, tensormaps).template.copy()

    def _function(self, layout: _Layout, types, pbc, tensormaps, dtype):
        """The custom_vjp function of one static signature."""
        import jax
        import jax.numpy as jnp
        from jax.custom_derivatives import SymbolicZero

        labels = {name: tensormaps[name] for name in self.input_names}
        shapes = tuple(jax.ShapeDtypeStruct(shape, dtype) for shape in layout.shapes)
        host = _Host(self, layout, types, pbc, labels)

        def forward(positions, cell, params, tensors):
            return jax.pure_callback(host.forward, shapes, positions, cell, params, tensors,
                                     vmap_method="sequential")

        function = jax.custom_vjp(forward)

        def fwd(positions, cell, params, tensors):
            values = [positions.value, cell.value, tuple(p.value for p in params), tuple(t.value for t in tensors)]
            groups = {}
            if positions.perturbed or cell.perturbed:
                groups[_STRUCTURE] = ()
            if any(p.perturbed for p in params) or any(t.perturbed for t in tensors):
                groups[_INPUTS] = ()
            return forward(*values), (values, groups)

        def bwd(residuals, cotangents):
            (positions, cell, params, tensors), groups = residuals
            cotangents = tuple(jnp.zeros(c.aval.shape, c.aval.dtype) if isinstance(c, SymbolicZero) else c
                               for c in cotangents)
            zeros = jax.tree_util.tree_map(jnp.zeros_like, (positions, cell, params, tensors))
            positions_bar, cell_bar, params_bar, tensors_bar = zeros
            if _STRUCTURE in groups:
                positions_bar, cell_bar = jax.pure_callback(
                    host.vjp_structure, (jax.ShapeDtypeStruct(positions.shape, positions.dtype),
                                         jax.ShapeDtypeStruct(cell.shape, cell.dtype)),
                    positions, cell, params, tensors, cotangents, vmap_method="sequential")
            if _INPUTS in groups:
                params_bar, tensors_bar = jax.pure_callback(
                    host.vjp_inputs, jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                                                            (params, tensors)),
                    positions, cell, params, tensors, cotangents, vmap_method="sequential")
            return positions_bar, cell_bar, params_bar, tensors_bar

        function.defvjp(fwd, bwd, symbolic_zeros=True)
        return function

    # -- the layout -----------------------------------------------------------------------------------
    def _probe(self, types: np.ndarray, pbc: np.ndarray, tensormaps: dict) -> _Layout:
        """The output's layout on a geometry where all atoms are within every cutoff of each other."""
        cutoffs = [p.cutoff for p in self.model.module.pairs] or [1.0]
        size = max(20.0, 3 * max(cutoffs))
        rng = np.random.default_rng(0)
        directions = rng.normal(size=(len(types), 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        radius = 0.2 * min(cutoffs) * rng.uniform(0.5, 1.0, size=(len(types), 1))
        positions = size / 2 + directions * radius
        inputs = {name: TensorMap(t.keys, [TensorBlock(np.zeros(tuple(b.values.shape)), b.samples, b.components,
                                                       b.properties) for b in t.blocks()])
                  for name, t in tensormaps.items()}
        with np.errstate(all="ignore"):
            output = self.model([System(types, positions, np.eye(3) * size, pbc)], **inputs)[self.output]
        return _Layout(output)

    # -- the numpy side ---------------------------------------------------------------------------------
    def products(self):
        """The output's native reverse products with respect to positions and cell, or None."""
        if self._products is None:
            self._products = False
            if self.model.backend != "interpreter":
                from mtdsl.codegen.plan import Unsupported
                from mtdsl.ir.autodiff import AutodiffError

                from .native_products import NativeProducts

                try:
                    self._products = NativeProducts(self.model.module, [self.output], self.model.backend,
                                                    dtype=self.model.dtype, threads=self.model.threads,
                                                    wrt=("positions", "cell"), constants=True)
                except (Unsupported, ValueError, AutodiffError):
                    self._products = False
        return self._products or None

    def torch_module(self):
        if self._torch is None:
            self._torch = self.model.to_torch()
        return self._torch


def _same(first, second) -> bool:
    return len(first) == len(second) and all(a.shape == b.shape and np.array_equal(a, b)
                                             for a, b in zip(first, second))


def _locked(method):
    """`method` of a `_Host`, holding its function's lock."""
    @functools.wraps(method)
    def wrapper(self, *args):
        with self.function.lock:
            return method(self, *args)
    return wrapper


class _Host:
    """The callbacks of one static signature (types, pbc, input labels): numpy in, numpy out."""

    def __init__(self, function: JaxFunction, layout: _Layout, types, pbc, tensormaps: dict):
        self.function = function
        self.layout = layout
        self.types = types
        self.pbc = pbc
        self.tensormaps = tensormaps  # labels only

    def _model(self, params):
        model = copy.copy(self.function.model)
        model.parameters = {n: np.asarray(v, dtype=np.float64) for n, v in zip(self.function.param_names, params)}
        return model

    def _inputs(self, tensors, convert=np.asarray) -> dict:
        values = iter(tensors)
        return {name: TensorMap(t.keys, [TensorBlock(convert(next(values)), b.samples, b.components, b.properties)
                                         for b in t.blocks()])
                for name, t in self.tensormaps.items()}

    def _system(self, positions, cell) -> System:
        return System(self.types, np.asarray(positions, dtype=np.float64), np.asarray(cell, dtype=np.float64),
                      self.pbc)

    def _flat(self, positions, cell, params, tensors) -> list[np.ndarray]:
        return [np.asarray(positions), np.asarray(cell), *map(np.asarray, params), *map(np.asarray, tensors)]

    def _run_products(self, products, positions, cell, params, tensors):
        """Bindings at these inputs on which the products ran (the last forward's when the same)."""
        flat = self._flat(positions, cell, params, tensors)
        last = self.function._last
        if last is not None and last[0] is self and _same(last[1], flat):
            return last[2]
        model = self._model(params)
        bindings = model.bind([self._system(positions, cell)], self._inputs(tensors))
        products.threads = model.threads
        products.run(bindings)
        self.function._last = (self, [np.array(a, copy=True) for a in flat], bindings)
        return bindings

    @_locked
    def forward(self, positions, cell, params, tensors):
        dtype = np.asarray(positions).dtype
        products = self.function.products()
        output = self.function.output
        if products is not None:
            tensor = self._run_products(products, positions, cell, params, tensors).tensors[output]
        else:
            tensor = self._model(params)([self._system(positions, cell)], **self._inputs(tensors))[output]
        return self.layout.scatter(tensor, output, dtype)

    @_locked
    def vjp_structure(self, positions, cell, params, tensors, cotangents):
        products = self.function.products()
        output = self.function.output
        if products is None:
            grads = self._torch_vjp(positions, cell, params, tensors, cotangents, structure=True)
            return grads[0], grads[1]
        bindings = self._run_products(products, positions, cell, params, tensors)
        tensor = bindings.tensors[output]
        positions_bar, cell_bar = products.vjp(bindings, {output: self.layout.gather(cotangents, tensor, output)})
        return (positions_bar.astype(np.asarray(positions).dtype), cell_bar[0].astype(np.asarray(cell).dtype))

    @_locked
    def vjp_inputs(self, positions, cell, params, tensors, cotangents):
        grads = self._torch_vjp(positions, cell, params, tensors, cotangents, structure=False)
        n_params = len(params)
        return tuple(grads[:n_params]), tuple(grads[n_params:])

    def _torch_vjp(self, positions, cell, params, tensors, cotangents, structure: bool) -> list[np.ndarray]:
        """`model.to_torch()`'s VJP: (positions, cell) when `structure`, else (params..., tensors...)."""
        import torch

        module = self.function.torch_module()
        with torch.no_grad():
            for name, value in zip(self.function.param_names, params):
                getattr(module, name).copy_(torch.tensor(np.asarray(value), dtype=torch.float64))
        torch_positions = torch.tensor(np.asarray(positions, dtype=np.float64), requires_grad=structure)
        torch_cell = torch.tensor(np.asarray(cell, dtype=np.float64), requires_grad=structure)
        system = System(torch.tensor(self.types), torch_positions, torch_cell, torch.tensor(self.pbc))
        inputs = self._inputs(tensors, lambda v: torch.tensor(np.asarray(v, dtype=np.float64),
                                                               requires_grad=not structure))
        output = module([system], **inputs)[self.function.output]
        cotangent = [torch.tensor(c) for c in self.layout.gather(cotangents, output, self.function.output)]
        if structure:
            targets, like = [torch_positions, torch_cell], [positions, cell]
        else:
            targets = [getattr(module, name) for name in self.function.param_names] + \
                      [b.values for name in self.function.input_names for b in inputs[name].blocks()]
            like = list(params) + list(tensors)
        found = torch.autograd.grad([b.values for b in output.blocks()], targets, grad_outputs=cotangent,
                                    allow_unused=True)
        return [np.zeros(np.shape(x), dtype=np.asarray(x).dtype) if g is None
                else g.detach().numpy().astype(np.asarray(x).dtype) for g, x in zip(found, like)]


__all__ = ["JaxFunction", "JaxFunctionError"]
