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

- positions and cell: the generated reverse-mode kernels (runtime/gradients/native_products.py, the
  products `model(frames, gradients=[...])` uses for its reverse gradient blocks), with the
  params and inputs as constants; one VJP with the given cotangent. The forward callback runs
  these products' own pass when they exist, and the backward reuses it when the inputs are the
  same (the usual `jax.grad` / `jax.vjp` sequence);
- params and input TensorMaps: `model.to_torch()`'s backward (runtime/torch/module.py);
  also the fallback for positions and cell where the products do not lower (and for the
  interpreter backend).

`jax.vmap` (`vmap_method="expand_dims"`, any nesting) over systems of the same size and types
runs them as one batch of systems in the native kernels (one model run, one VJP) when they
share their params and the model has no input TensorMaps; one by one otherwise.

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
import weakref

import numpy as np

from mtdsl.errors import AutodiffError, MtdslError, Unsupported
from mtdsl.systems import System
from mtdsl.tensor import Labels, TensorBlock, TensorMap

from ..inputs import check_tensormap_inputs
from ..gradients.native_products import NativeProducts

#: the callbacks share state (the products' last run, a model's torch module and its params) and
#: XLA may call them from several threads (independent calls in one jitted function): one at a time
_LOCK = threading.RLock()
#: model -> {output: its NativeProducts, or False}: built once per model (seconds), shared
_PRODUCTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
#: model -> its torch module, for the VJPs of params and inputs
_TORCH_MODULES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

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

    def places(self, tensor: TensorMap, output: str) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """For each block of `tensor` (a run's output on one system or a batch of them), its block
        in the layout, the system of each of its rows and the row in the layout (the row of the
        same sample in system 0). Outputs without a `system` sample are of one system."""
        keys = self.template.keys
        found = []
        for index, block in enumerate(tensor.blocks()):
            position = int(keys.positions(tensor.keys.array[index:index + 1])[0])
            if position < 0:
                raise JaxFunctionError(f"output {output}: block {tensor.keys.array[index].tolist()} is not in the "
                                       f"layout these types give (keys {keys.names}): its blocks depend on more "
                                       f"than the types and pbc")
            reference = self.template.block(position)
            samples = np.array(block.samples.array)
            systems = np.zeros(len(samples), dtype=np.int64)
            if "system" in block.samples.names:
                column = block.samples.names.index("system")
                systems = samples[:, column].astype(np.int64)
                samples[:, column] = 0
            rows = reference.samples.positions(samples)
            if (rows < 0).any() or block.components != reference.components \
                    or block.properties != reference.properties:
                raise JaxFunctionError(f"output {output}: the samples, components or properties of block "
                                       f"{tensor.keys.array[index].tolist()} are not in the layout these types "
                                       f"give: its labels depend on more than the types and pbc")
            found.append((position, systems, rows))
        return found

    def batched(self) -> bool:
        """Whether a batch of systems can run as one: every block's samples name their system."""
        return all("system" in b.samples.names for b in self.template.blocks())

    def scatter(self, tensor: TensorMap, output: str, dtype, n_systems: int) -> tuple:
        """The values of `tensor` (over `n_systems` systems) in the layout: `[n_systems, *shape]`."""
        result = [np.zeros((n_systems,) + shape, dtype=dtype) for shape in self.shapes]
        for (position, systems, rows), block in zip(self.places(tensor, output), tensor.blocks()):
            result[position][systems, rows] = np.asarray(block.values)
        return tuple(result)

    def gather(self, cotangents, tensor: TensorMap, output: str) -> list[np.ndarray]:
        """The cotangents (`[n_systems, *shape]` per layout block) of the blocks of `tensor`."""
        return [np.asarray(cotangents[position], dtype=np.float64)[systems, rows]
                for position, systems, rows in self.places(tensor, output)]


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
        self._products = None  # NativeProducts of the output (shared per model), False where they do not lower
        self._torch = None  # the torch module of the fallback and of the inputs' VJP
        self._last = None  # (host, the inputs, bindings) of the last run of the products
        self.lock = _LOCK

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
        ndims = [2, 2] + [v.ndim for v in param_values] + [v.ndim for v in tensor_values]
        key = (types.tobytes(), pbc.tobytes(), str(positions.dtype), tuple(ndims),
               tuple(_fingerprint(tensormaps[n]) for n in self.input_names))
        if key not in self._functions:
            layout = self._probe(types, pbc, tensormaps)
            self._functions[key] = (layout, self._function(layout, types, pbc, tensormaps, positions.dtype, ndims))
        layout, function = self._functions[key]
        result = function(positions, cell, param_values, tensor_values)
        return result[0] if len(result) == 1 else result

    def template(self, *, types, pbc=None, **tensormaps) -> TensorMap:
        """The layout of `f`'s result for these types: the output's labels, zero values."""
        types = _static(types, "types").astype(np.int32).reshape(-1)
        pbc = np.broadcast_to(_static(False if pbc is None else pbc, "pbc").astype(bool), (3,)).copy()
        return self._probe(types, pbc, tensormaps).template.copy()

    def _function(self, layout: _Layout, types, pbc, tensormaps, dtype, ndims: list):
        """The custom_vjp function of one static signature."""
        import jax
        import jax.numpy as jnp
        from jax.custom_derivatives import SymbolicZero

        labels = {name: tensormaps[name] for name in self.input_names}
        shapes = tuple(jax.ShapeDtypeStruct(shape, dtype) for shape in layout.shapes)
        host = _Host(self, layout, types, pbc, labels, ndims)

        def forward(positions, cell, params, tensors):
            return jax.pure_callback(host.forward, shapes, positions, cell, params, tensors,
                                     vmap_method="expand_dims")

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
                    positions, cell, params, tensors, cotangents, vmap_method="expand_dims")
            if _INPUTS in groups:
                params_bar, tensors_bar = jax.pure_callback(
                    host.vjp_inputs, jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                                                            (params, tensors)),
                    positions, cell, params, tensors, cotangents, vmap_method="expand_dims")
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
            self._products = _PRODUCTS.setdefault(self.model, {}).get(self.output)
        if self._products is None:
            self._products = False
            if self.model.backend != "interpreter":
                try:
                    self._products = NativeProducts(self.model.module, [self.output], self.model.backend,
                                                    dtype=self.model.dtype, threads=self.model.threads,
                                                    wrt=("positions", "cell"), constants=True)
                except (Unsupported, ValueError, AutodiffError):
                    self._products = False
            _PRODUCTS[self.model][self.output] = self._products
        return self._products or None

    def torch_module(self):
        """The model's torch module, shared by the JAX functions of one model (its descriptors are
        compiled once); each VJP sets its params first, under `_LOCK`."""
        if self._torch is None:
            if self.model not in _TORCH_MODULES:
                _TORCH_MODULES[self.model] = self.model.to_torch()
            self._torch = _TORCH_MODULES[self.model]
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
    """The callbacks of one static signature (types, pbc, input labels): numpy in, numpy out.

    Under `jax.vmap` (`vmap_method="expand_dims"`) each argument has leading batch dimensions
    (of size 1 where it is not batched): systems that share their params and inputs run as one
    batch of systems (one model run, one VJP), others one by one."""

    def __init__(self, function: JaxFunction, layout: _Layout, types, pbc, tensormaps: dict, ndims: list):
        self.function = function
        self.layout = layout
        self.types = types
        self.pbc = pbc
        self.tensormaps = tensormaps  # labels only
        self.ndims = ndims  # of positions, cell, each param and input block, without batch dimensions

    # -- batch dimensions ------------------------------------------------------------------------------
    def _split(self, arguments: list):
        """(batch shape, the arguments flattened to `[B, ...]`, whether only positions and cell vary)."""
        arrays = [np.asarray(a) for a in arguments]
        leading = [a.shape[:a.ndim - n] for a, n in zip(arrays, self.ndims)]
        shape = np.broadcast_shapes(*leading) if any(leading) else ()
        size = int(np.prod(shape, dtype=np.int64))
        flat = [np.broadcast_to(a, shape + a.shape[a.ndim - n:]).reshape((size,) + a.shape[a.ndim - n:])
                for a, n in zip(arrays, self.ndims)]
        shared = all(int(np.prod(lead, dtype=np.int64)) == 1 for lead in leading[2:])
        return shape, flat, shared

    def _arguments(self, positions, cell, params, tensors) -> list:
        return [positions, cell, *params, *tensors]

    def _parts(self, flat: list, b):
        n_params = len(self.function.param_names)
        item = [a[b] for a in flat]
        return item[0], item[1], item[2:2 + n_params], item[2 + n_params:]

    # -- one model run over several systems ------------------------------------------------------------
    def _model(self, params):
        model = copy.copy(self.function.model)
        model.parameters = {n: np.asarray(v, dtype=np.float64) for n, v in zip(self.function.param_names, params)}
        return model

    def _inputs(self, tensors, convert=np.asarray) -> dict:
        values = iter(tensors)
        return {name: TensorMap(t.keys, [TensorBlock(convert(next(values)), b.samples, b.components, b.properties)
                                         for b in t.blocks()])
                for name, t in self.tensormaps.items()}

    def _systems(self, positions, cells) -> list[System]:
        return [System(self.types, np.asarray(p, dtype=np.float64), np.asarray(c, dtype=np.float64), self.pbc)
                for p, c in zip(positions, cells)]

    def _run(self, positions, cells, params, tensors, products):
        """The output over the systems `positions[b], cells[b]` (one params and inputs for all), and
        the bindings on which the products ran (reused when the last run had the same inputs)."""
        if products is None:
            model = self._model(params)
            return model(self._systems(positions, cells), **self._inputs(tensors))[self.function.output], None
        flat = [np.asarray(positions), np.asarray(cells), *map(np.asarray, params), *map(np.asarray, tensors)]
        last = self.function._last
        if last is not None and last[0] is self and _same(last[1], flat):
            bindings = last[2]
        else:
            model = self._model(params)
            bindings = model.bind(self._systems(positions, cells), self._inputs(tensors))
            products.threads = model.threads
            products.run(bindings)
            self.function._last = (self, [np.array(a, copy=True) for a in flat], bindings)
        return bindings.tensors[self.function.output], bindings

    def _one_batch(self, shared: bool) -> bool:
        """Whether the systems of a vmap run as one batch: same params, no input TensorMaps (their
        samples would need each system's index), and outputs whose samples name their system."""
        return shared and not self.tensormaps and self.layout.batched()

    # -- the callbacks ----------------------------------------------------------------------------------
    @_locked
    def forward(self, positions, cell, params, tensors):
        dtype = np.asarray(positions).dtype
        shape, flat, shared = self._split(self._arguments(positions, cell, params, tensors))
        n = int(np.prod(shape, dtype=np.int64))
        products = self.function.products()
        if self._one_batch(shared) or n == 1:
            p, _, par, ten = self._parts(flat, 0)
            tensor, _ = self._run(flat[0], flat[1], par, ten, products)
            result = self.layout.scatter(tensor, self.function.output, dtype, n)
        else:
            runs = []
            for b in range(n):
                p, c, par, ten = self._parts(flat, b)
                tensor, _ = self._run(p[None], c[None], par, ten, products)
                runs.append(self.layout.scatter(tensor, self.function.output, dtype, 1))
            result = tuple(np.concatenate(blocks) for blocks in zip(*runs))
        return tuple(r.reshape(shape + r.shape[1:]) for r in result)

    @_locked
    def vjp_structure(self, positions, cell, params, tensors, cotangents):
        dtype, cell_dtype = np.asarray(positions).dtype, np.asarray(cell).dtype
        arguments = self._arguments(positions, cell, params, tensors)
        shape, flat, shared = self._split(arguments)
        n = int(np.prod(shape, dtype=np.int64))
        cotangents = [np.broadcast_to(np.asarray(c), shape + tuple(s)).reshape((n,) + tuple(s))
                      for c, s in zip(cotangents, self.layout.shapes)]
        products = self.function.products()
        if products is None:
            found = [self._torch_vjp(*self._parts(flat, b), [c[b:b + 1] for c in cotangents], structure=True)
                     for b in range(n)]
            positions_bar = np.stack([f[0] for f in found])
            cell_bar = np.stack([f[1] for f in found])
        elif self._one_batch(shared) or n == 1:
            _, _, par, ten = self._parts(flat, 0)
            positions_bar, cell_bar = self._products_vjp(flat[0], flat[1], par, ten, cotangents, products)
        else:
            found = []
            for b in range(n):
                p, c, par, ten = self._parts(flat, b)
                found.append(self._products_vjp(p[None], c[None], par, ten, [x[b:b + 1] for x in cotangents],
                                                products))
            positions_bar = np.concatenate([f[0] for f in found])
            cell_bar = np.concatenate([f[1] for f in found])
        return (positions_bar.reshape(shape + positions_bar.shape[1:]).astype(dtype),
                cell_bar.reshape(shape + (3, 3)).astype(cell_dtype))

    def _products_vjp(self, positions, cells, params, tensors, cotangents, products):
        """`(positions_bar [B, N, 3], cell_bar [B, 3, 3])` of the systems by the native products."""
        tensor, bindings = self._run(positions, cells, params, tensors, products)
        output = self.function.output
        positions_bar, cell_bar = products.vjp(bindings, {output: self.layout.gather(cotangents, tensor, output)})
        return positions_bar.reshape(len(positions), -1, 3), cell_bar

    @_locked
    def vjp_inputs(self, positions, cell, params, tensors, cotangents):
        shape, flat, _ = self._split(self._arguments(positions, cell, params, tensors))
        n = int(np.prod(shape, dtype=np.int64))
        cotangents = [np.broadcast_to(np.asarray(c), shape + tuple(s)).reshape((n,) + tuple(s))
                      for c, s in zip(cotangents, self.layout.shapes)]
        found = [self._torch_vjp(*self._parts(flat, b), [c[b:b + 1] for c in cotangents], structure=False)
                 for b in range(n)]
        grads = [np.stack([f[k] for f in found]).reshape(shape + found[0][k].shape) for k in range(len(found[0]))]
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
        cotangent = [torch.tensor(c) for c in self.layout.gather(cotangents, output, self.function.output)]  # [1, ...]
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
