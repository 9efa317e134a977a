"""`Model.to_torch()`: a `torch.nn.Module` over a compiled model, differentiable by torch autograd.

The module's forward prepares a *plan* outside any graph (the neighbour lists,
the labels of every input and output block, from one run of the model's
backend) and calls one custom op, `mtdsl::evaluate`, on the systems' structure
and neighbour lists (int tensors: types, system of each atom, periodicity,
first and second atoms and cell shifts of each pair) and on the float inputs
(the *primals*): the positions of all atoms `[N, 3]`, the cells `[S, 3, 3]`,
the parameters in the order of the program, and the values of every block of
the input TensorMaps. The op returns the values of every output block. Its
forward runs the model's backend (cpp, llvm or the interpreter) on these
neighbour lists, the pair vectors recomputed from the given positions and cells.

`mtdsl::evaluate` of order `k > 0` is the vector-Jacobian product of order
`k - 1`: its inputs are those of order `k - 1` followed by one cotangent per
output of order `k - 1`, its outputs one gradient per input of order `k - 1`.
The backward of order `k` calls order `k + 1`, so double backward (forces in
a loss, mixed derivatives positions x parameters) is the same op again. Orders
`k > 0` run torch autograd through `runtime/evaluate/torch_values.py`, the IR evaluated
with torch tensors (differentiable to every order). Every shape is known
from the op's arguments (`shapes` for order 0, the inputs for `k > 0`), so the
fake implementation needs no data and `torch.compile` traces the op.

Gradient blocks (`gradients=[...]`) are the model's own (`model(frames,
gradients=...)`); they come out of `mtdsl::gradient_blocks`, whose backward is an
error for any non-zero cotangent: backpropagating through them is an error,
never zeros.
"""

from __future__ import annotations

import copy
import itertools
import weakref

import numpy as np
import torch

from mtdsl.errors import MtdslError
from mtdsl.systems import System
from mtdsl.systems._pyg import is_pyg, systems_from_pyg
from mtdsl.systems.batch import SystemBatch
from mtdsl.systems.neighbors import Pairs, neighbors
from mtdsl.tensor import TensorBlock, TensorMap
from mtdsl.tensor._array import to_numpy

from ..evaluate import torch_values
from ..gradients.asked import asked_gradients
from ..assemble import evaluate_kernel
from ..bindings import Bindings
from .descriptors import Descriptors
from ..evaluate.evaluator import Evaluator
from ..inputs import check_tensormap_inputs
from ..parameters import load_parameters, save_parameters
from ..presence import module_presence, restrict
from .descriptor_functions import DescriptorState, DescriptorUse, DescriptorValues

#: live plans by handle value; a plan lives as long as its handle tensor (an attribute of it),
#: which the outputs' autograd graph holds until it is freed
_PLANS: "weakref.WeakValueDictionary[int, Plan]" = weakref.WeakValueDictionary()
_HANDLES = itertools.count(1)


class TorchModelError(MtdslError):
    """A torch module call that cannot go on (inputs of the wrong kind, changed neighbour lists...)."""


# ---- plans: everything about a call that is not a float ---------------------------------------


class Plan:
    """What a call's ops share beyond their tensors: the model, the labels of the input and output
    blocks, the gradients asked for, and the backend's outputs at the call's own values.

    The systems and the neighbour lists are op inputs, `structure`: the types and the system
    of each atom, the periodicity of each system, then the first atoms, second atoms and cell
    shifts of each neighbour list of the program. The ops find the plan by the value of its
    handle (`handle()`), an int64 tensor given to them and saved for backward, which keeps the
    plan alive.
    """

    def __init__(self, model, systems: list, tensormaps: dict, gradients: list[str], descriptors=None):
        self.model = model
        #: runtime/descriptors.Descriptors: the structural tensors the VJPs take from the backend
        self.descriptors = descriptors if descriptors is not None and descriptors.names else None
        self._descriptor_cache = None
        self._memo = None  # (structure, torch_values.StructureMemo): what the orders of one call share
        self._computed = None  # (positions and cells, the descriptors' tensors) of the backend's last run
        self.module = model.module
        self.gradients = dict(gradients) if isinstance(gradients, dict) else list(gradients)
        self.param_names = [p.name for p in self.module.params]
        self.inputs = [(t.name, tensormaps[t.name]) for t in self.module.tensormaps]  # labels only are used
        self.n_primals = 2 + len(self.param_names) + sum(len(t) for _, t in self.inputs)
        types = [to_numpy(s.types).astype(np.int32) for s in systems]
        positions = np.concatenate([to_numpy(_detach(s.positions)) for s in systems]).reshape(-1, 3)
        cells = np.stack([to_numpy(_detach(s.cell)) for s in systems])
        structure = [
            np.concatenate(types),
            np.repeat(np.arange(len(systems), dtype=np.int64), [len(t) for t in types]),
            np.stack([to_numpy(s.pbc).astype(bool) for s in systems]),
        ]
        batch = self.batch(positions, cells, structure)
        for declaration in self.module.pairs:
            pairs = neighbors(batch, declaration.cutoff, full=declaration.full)
            structure += [np.asarray(pairs.first), np.asarray(pairs.second), np.asarray(pairs.cell_shifts)]
        #: the structure as the ops take it
        self.structure = [torch.from_numpy(array) for array in structure]
        # the outputs at the given values: their labels, and the values the first call reuses
        self._cache = None
        primals = [positions, cells, *(np.asarray(model.parameters[n]) for n in self.param_names),
                   *(to_numpy(_detach(b.values)) for name, _ in self.inputs for b in tensormaps[name].blocks())]
        outputs = self.run(structure, primals, gradients)
        self.outputs = [(o.name, outputs[o.name]) for o in self.module.outputs]
        #: {output: runtime/presence.py PresentSet}: the blocks and samples the module returns (the
        #: ops compute the dense blocks; `_assemble` keeps the present ones), {} for a dense model
        self.present = {}
        if not getattr(model, "dense", False):
            bindings = Bindings({self.module.systems[0].name: batch}, self.pairs(batch, structure),
                                dict(model.parameters), dtype=model.dtype.type, sparse=True)
            bindings.tensors.update({name: tensor for name, tensor in self.inputs})
            self.present = module_presence(self.module, bindings, [o.name for o in self.module.outputs])
        self.shapes = [tuple(b.values.shape) for _, t in self.outputs for b in t.blocks()]
        self.gradient_shapes = [tuple(g.values.shape) for _, t in self.outputs for b in t.blocks()
                                for _, g in b.gradients()]
        self._cache = (structure + primals, outputs)

    def handle(self) -> torch.Tensor:
        """A new handle of this plan: the plan lives while the handle does."""
        key = next(_HANDLES)
        handle = torch.tensor(key, dtype=torch.int64)
        handle._mtdsl_plan = self
        _PLANS[key] = self
        return handle

    # -- from the op's inputs ------------------------------------------------------------------------
    def batch(self, positions: np.ndarray, cells: np.ndarray, structure: list[np.ndarray]) -> SystemBatch:
        types, system, pbc = structure[:3]
        systems = []
        for index, cell in enumerate(cells):
            atoms = system == index
            systems.append(System(types[atoms], positions[atoms], cell, pbc[index]))
        return SystemBatch(systems)

    def pairs(self, batch: SystemBatch, structure: list[np.ndarray]) -> dict[str, Pairs]:
        result = {}
        for k, declaration in enumerate(self.module.pairs):
            first, second, shifts = structure[3 + 3 * k: 6 + 3 * k]
            result[declaration.name] = Pairs(batch, declaration.cutoff, declaration.full, first, second, shifts)
        return result

    def split(self, primals: list):
        """positions, cells, {param: array}, {input name: TensorMap} from the primals."""
        positions, cells = primals[0], primals[1]
        n_params = len(self.param_names)
        params = dict(zip(self.param_names, primals[2:2 + n_params]))
        values = iter(primals[2 + n_params:])
        inputs = {}
        for name, tensor in self.inputs:
            blocks = [TensorBlock(next(values), b.samples, b.components, b.properties) for b in tensor.blocks()]
            inputs[name] = TensorMap(tensor.keys, blocks)
        return positions, cells, params, inputs

    # -- numpy side: the model's backend ---------------------------------------------------------
    def run(self, structure: list[np.ndarray], primals: list[np.ndarray], gradients=()) -> dict[str, TensorMap]:
        """The outputs by the model's backend; the cached ones at the plan's own inputs."""
        if self._cache is not None and _same(self._cache[0], structure + primals):
            return self._cache[1]
        positions, cells, params, inputs = self.split(primals)
        model = copy.copy(self.model)
        model.parameters = params
        model.dense = True  # the ops work on the dense blocks; `_assemble` keeps the present ones
        batch = self.batch(positions, cells, structure)
        if gradients:  # the model's own gradient blocks (its neighbour lists from these positions)
            return model(batch, gradients=gradients, **inputs)
        bindings = Bindings({self.module.systems[0].name: batch}, self.pairs(batch, structure), params,
                            dtype=model.dtype.type)
        bindings.tensors.update(inputs)
        if model.compiled is not None:
            model.compiled.run(bindings, threads=model.threads)
            if self.descriptors is not None:  # the descriptors' values, for their products at these values
                self._computed = ([np.array(positions, copy=True), np.array(cells, copy=True)], model.compiled.computed(
                    bindings, [k.name for k in self.descriptors.module.kernels]))
        else:
            interpreter = Evaluator(self.module, bindings)
            for kernel in self.module.kernels:
                bindings.tensors[kernel.name] = evaluate_kernel(interpreter, kernel)
        return {o.name: bindings.tensors[o.name] for o in self.module.outputs}

    def values(self, structure: list[torch.Tensor], primals: list[torch.Tensor]) -> list[torch.Tensor]:
        """Order 0 by the backend: the values of every output block."""
        outputs = self.run(_numpy(structure), _numpy(primals))
        result = []
        for name, expected in self.outputs:
            found = outputs[name]
            if found.keys != expected.keys or any(a.samples != b.samples or a.properties != b.properties
                                                  for a, b in zip(found.blocks(), expected.blocks())):
                raise TorchModelError(f"output {name}: its blocks or samples are not those of the prepared call")
            result += [torch.from_numpy(np.array(b.values)).to(primals[0].dtype) for b in found.blocks()]
        return result

    def gradient_values(self, structure: list[torch.Tensor], primals: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = self.run(_numpy(structure), _numpy(primals), self.gradients)
        return [torch.from_numpy(np.array(g.values)).to(primals[0].dtype)
                for o in self.module.outputs for b in outputs[o.name].blocks() for _, g in b.gradients()]

    # -- torch side: the IR with torch tensors -----------------------------------------------------
    def torch_values(self, structure: list[torch.Tensor], primals: list[torch.Tensor],
                     use: DescriptorUse | None = None) -> list[torch.Tensor]:
        """The output blocks' values evaluated with torch. With `use`, the descriptors come from
        the backend as autograd functions (runtime/torch/descriptor_functions.py)."""
        structure = _numpy(structure)
        positions, cells, params, inputs = self.split(primals)
        batch = self.batch(positions.detach().numpy(), cells.detach().numpy(), structure)
        pairs = self.pairs(batch, structure)
        precomputed, skip = {}, ()
        if use is not None and self.descriptors is not None:
            run = self.descriptor_run(batch, pairs, positions.detach().numpy(), cells.detach().numpy(), use.wrt)
            state = DescriptorState(self.descriptors, run, batch, pairs, use.second_derivatives)
            values = iter(DescriptorValues.apply(state, positions, cells))
            for name, reference in run.tensors.items():
                precomputed[name] = TensorMap(reference.keys, [
                    TensorBlock(next(values), b.samples, b.components, b.properties) for b in reference.blocks()
                ])
            skip = self.descriptors.skipped(self.module)
        if self._memo is None or not _same(self._memo[0], structure):  # the label lookups of this structure
            self._memo = ([np.array(a, copy=True) for a in structure], torch_values.StructureMemo())
        tensors = torch_values.evaluate(self.module, batch, pairs, positions, cells, params, inputs,
                                      precomputed=precomputed, skip=skip, memo=self._memo[1])
        return [b.values for o in self.module.outputs for b in tensors[o.name].blocks()]

    def descriptor_run(self, batch, pairs, positions: np.ndarray, cells: np.ndarray, wrt: tuple):
        """The descriptors' run at these positions and cells with the gradients `wrt` (the last
        one is kept: the orders of one call share it)."""
        cached = self._descriptor_cache
        if cached is not None and set(wrt) <= set(cached[1]) and _same(cached[0], [positions, cells]):
            return cached[2]
        if cached is not None:
            cached[2].close()
        computed = self._computed
        precomputed = computed[1] if computed is not None and _same(computed[0], [positions, cells]) else None
        run = self.descriptors.run(batch, pairs, wrt, precomputed=precomputed)
        self._descriptor_cache = ([positions.copy(), cells.copy()], tuple(wrt), run)
        weakref.finalize(self, run.close)  # the buffers go with the call's graph
        return run


def _numpy(tensors) -> list[np.ndarray]:
    return [t.detach().cpu().numpy() for t in tensors]


def _detach(value):
    return value.detach() if isinstance(value, torch.Tensor) else value


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(np.shape(x) == np.shape(y) and np.array_equal(x, y) for x, y in zip(a, b))


def _plan(handle: torch.Tensor) -> Plan:
    plan = _PLANS.get(int(handle))
    if plan is None:
        raise TorchModelError("this mtdsl call was released: its outputs can no longer be differentiated")
    return plan


# ---- the orders of the op: input and output counts ---------------------------------------------------


def input_counts(order: int, n_primals: int, n_outputs: int) -> list[int]:
    """|X_0| .. |X_order|, the inputs of each order: X_k = X_(k-1) + one cotangent per output of k - 1."""
    counts = [n_primals]
    outputs = n_outputs
    for _ in range(order):
        counts.append(counts[-1] + outputs)
        outputs = counts[-2]
    return counts


def _decode_shapes(shapes: list[int]) -> list[tuple[int, ...]]:
    result, k = [], 0
    while k < len(shapes):
        n = shapes[k]
        result.append(tuple(shapes[k + 1:k + 1 + n]))
        k += 1 + n
    return result


def encode_shapes(shapes) -> list[int]:
    return [x for shape in shapes for x in (len(shape), *shape)]


#: the dispatch keys excluded outside any op (autocast's among them)
_DEFAULT_EXCLUDED = torch._C._dispatch_tls_local_exclude_set()


def _autograd_guard():
    """Autograd inside an op's implementation: the keys the dispatcher excludes there (autograd's)
    are included again; those excluded by default (autocast's: float32 would run in bfloat16) stay."""
    excluded = torch._C._dispatch_tls_local_exclude_set()
    return torch._C._ForceDispatchKeyGuard(
        torch._C._dispatch_tls_local_include_set(), excluded - (excluded - _DEFAULT_EXCLUDED)
    )


def _derivative(plan: Plan, structure: list, order: int, masks: list[list[int]], counts: list[int],
                inputs: list[torch.Tensor], create_graph: bool, use: DescriptorUse | None = None) -> list[torch.Tensor]:
    """The outputs of order `order` (> 0) at `inputs` (X_order), with torch autograd.

    Orders 1 and 2 take the descriptors from the backend (`Plan.torch_values`), with second
    derivatives w.r.t. positions and cells only when order 2 asks for the positions' or the
    cells' gradient; higher orders evaluate the whole program with torch."""
    n = counts[order - 1]
    inner, cotangents = inputs[:n], inputs[n:]
    wanted = [k for k in range(n) if masks[order - 1][k] and inner[k].requires_grad]
    if order == len(counts) - 1 and order <= 2:  # the top order
        # the gradients of order 1 w.r.t. positions and cells that are asked for (X_0 = positions, cells...)
        wrt = tuple(w for k, w in enumerate(("positions", "cell")) if masks[0][k])
        use = DescriptorUse(wrt, second_derivatives=order == 2 and bool({0, 1} & set(wanted)))
    if order == 1:
        outputs = plan.torch_values(structure, inner, use)
    else:
        outputs = _derivative(plan, structure, order - 1, masks, counts, inner, True, use)
    pairs = [(o, c) for o, c in zip(outputs, cotangents) if o.requires_grad]
    grads = [None] * n
    if wanted and pairs:
        found = torch.autograd.grad([o for o, _ in pairs], [inner[k] for k in wanted], [c for _, c in pairs],
                                    create_graph=create_graph, allow_unused=True)
        for k, g in zip(wanted, found):
            grads[k] = g
    return [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, inner)]


# ---- the ops -------------------------------------------------------------------------------------


@torch.library.custom_op("mtdsl::evaluate", mutates_args=())
def evaluate_op(handle: torch.Tensor, order: int, masks: list[int], n_outputs: int, shapes: list[int],
                structure: list[torch.Tensor], inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Order 0: the output blocks' values at the primals `inputs`; order k: the VJP of order k - 1
    (`masks`: for each order 1..k, which inputs of the order below to differentiate, 1 or 0).
    `structure`: the systems and neighbour lists (see `Plan`)."""
    plan = _plan(handle)
    if order == 0:
        return plan.values(list(structure), list(inputs))
    counts = input_counts(order, plan.n_primals, n_outputs)
    split = list(itertools.accumulate(counts[:-1]))
    mask_list = [masks[a - c:a] for a, c in zip(split, counts[:-1])]
    with _autograd_guard(), torch.enable_grad():
        leaves = [x.detach().requires_grad_(x.is_floating_point()) for x in inputs]
        result = _derivative(plan, list(structure), order, mask_list, counts, leaves, create_graph=False)
    return [r.detach().clone() for r in result]


@evaluate_op.register_fake
def _evaluate_fake(handle, order, masks, n_outputs, shapes, structure, inputs):
    if order == 0:
        return [inputs[0].new_empty(shape) for shape in _decode_shapes(shapes)]
    n = _previous_count(order, len(inputs), n_outputs, len(masks))
    return [torch.empty_like(x) for x in inputs[:n]]


def _previous_count(order: int, n_inputs: int, n_outputs: int, n_masks: int) -> int:
    """|X_(order-1)|: the masks of orders 1..order cover X_0 .. X_(order-1)."""
    # |X_order| = n_inputs and sum_{j < order} |X_j| = n_masks: find |X_0|
    for n_primals in range(n_inputs + 1):
        counts = input_counts(order, n_primals, n_outputs)
        if counts[-1] == n_inputs and sum(counts[:-1]) == n_masks:
            return counts[-2]
    raise TorchModelError("mtdsl::evaluate: inconsistent input counts")


def _setup(ctx, inputs, output):
    handle, order, masks, n_outputs, shapes, structure, xs = inputs
    ctx.order, ctx.masks, ctx.n_outputs, ctx.shapes = order, list(masks), n_outputs, shapes
    ctx.requires = [int(x.requires_grad) for x in xs]
    ctx.edges = [_gradient_edge(x) for x in xs]
    ctx.n_structure = len(structure)
    ctx.save_for_backward(handle, *structure, *xs)


def _backward(ctx, grads):
    handle, *saved = ctx.saved_tensors
    structure, xs = saved[:ctx.n_structure], saved[ctx.n_structure:]
    cotangents = [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, _outputs_like(ctx, xs))]
    requires = [int(r and _engine_needs(edge)) for r, edge in zip(ctx.requires, ctx.edges)]
    result = evaluate_op(handle, ctx.order + 1, ctx.masks + requires, ctx.n_outputs, ctx.shapes,
                         structure, list(xs) + cotangents)
    # (an empty list argument counts as a list of tensors: its gradient is an empty list)
    return None, None, None if ctx.masks else [], None, None, [None] * len(structure), list(result)


def _gradient_edge(x: torch.Tensor):
    """Where `x`'s gradient goes in the autograd graph (None: unknown, e.g. while tracing)."""
    if not x.requires_grad:
        return None
    try:
        return torch.autograd.graph.get_gradient_edge(x)
    except Exception:  # fake or functional tensors of torch.compile
        return None


def _engine_needs(edge) -> bool:
    """Whether the running backward uses the gradient sent along `edge`: a backward restricted
    to the parameters (`loss.backward(inputs=...)`, `torch.autograd.grad(loss, params)`) then
    skips the second derivatives w.r.t. the positions (torch's own test, as in
    `torch.autograd.graph.register_multi_grad_hook`)."""
    if edge is None:
        return True
    try:
        return bool(torch._C._will_engine_execute_node(edge.node))
    except Exception:  # outside the engine (traced backward of torch.compile): assume it is
        return True


def _outputs_like(ctx, xs):
    if ctx.order == 0:
        return [xs[0].new_zeros(shape) for shape in _decode_shapes(ctx.shapes)]
    return xs[:_previous_count(ctx.order, len(xs), ctx.n_outputs, len(ctx.masks))]


evaluate_op.register_autograd(_backward, setup_context=_setup)


@torch.library.custom_op("mtdsl::gradient_blocks", mutates_args=())
def gradient_blocks_op(handle: torch.Tensor, shapes: list[int], structure: list[torch.Tensor],
                       inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """The values of the output blocks' gradient blocks (the model's forward-mode gradients).

    Not differentiable (an error in backward, see `gradient_blocks_backward_op`): differentiate
    the values with torch.autograd instead."""
    return _plan(handle).gradient_values(list(structure), list(inputs))


@gradient_blocks_op.register_fake
def _gradient_blocks_fake(handle, shapes, structure, inputs):
    return [inputs[0].new_empty(shape) for shape in _decode_shapes(shapes)]


@torch.library.custom_op("mtdsl::gradient_blocks_backward", mutates_args=())
def gradient_blocks_backward_op(cotangents: list[torch.Tensor], inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """The backward of `mtdsl::gradient_blocks`: zeros for zero cotangents (which a compiled
    backward gives the outputs nothing reads), else an error: the gradient blocks have no derivative."""
    if any(bool(torch.any(c != 0)) for c in cotangents):
        raise TorchModelError(
            "gradient blocks (module(..., gradients=[...])) are not differentiable: differentiate the "
            "output values with torch.autograd.grad(..., create_graph=True) instead"
        )
    return [torch.zeros_like(x) for x in inputs]


@gradient_blocks_backward_op.register_fake
def _gradient_blocks_backward_fake(cotangents, inputs):
    return [torch.empty_like(x) for x in inputs]


def _gradient_blocks_setup(ctx, inputs, output):
    _, _, structure, xs = inputs
    ctx.n_structure = len(structure)
    ctx.save_for_backward(*xs)


def _gradient_blocks_backward(ctx, grads):
    result = gradient_blocks_backward_op(list(grads), list(ctx.saved_tensors))
    return None, None, [None] * ctx.n_structure, list(result)


gradient_blocks_op.register_autograd(_gradient_blocks_backward, setup_context=_gradient_blocks_setup)


# ---- the module -----------------------------------------------------------------------------------


class _Shared:
    """The compiled model, shared by copies of the module (`copy.deepcopy`): its native code
    cannot be copied, and the module never changes it."""

    __slots__ = ("model", "_descriptors")

    def __init__(self, model):
        self.model = model
        self._descriptors = None

    def __getstate__(self):
        return {"model": self.model}  # the descriptors are compiled again when needed

    def __setstate__(self, state):
        self.model = state["model"]
        self._descriptors = None

    def descriptors(self):
        """The model's descriptors compiled with their gradients (native backends), built on first use."""
        if self.model.backend == "interpreter":
            return None
        if self._descriptors is None:
            self._descriptors = Descriptors(self.model)
        return self._descriptors

    def __deepcopy__(self, memo):
        return self


class TorchModel(torch.nn.Module):
    """A compiled model as a torch module: `module(systems, gradients=[...], **tensormaps)`.

    Each `param` of the program is an `nn.Parameter` of the same name,
    initialised from `model.parameters`. Returns `{output name: TensorMap}`
    whose block values are torch tensors, differentiable with respect to the
    systems' positions and cells, the parameters and the input TensorMaps'
    values.
    """

    def __init__(self, model):
        super().__init__()
        self._mtdsl = _Shared(model)
        dtype = torch.float64 if model.dtype == np.float64 else torch.float32
        for name, value in model.parameters.items():
            if hasattr(type(self), name) or name.startswith("_mtdsl"):
                raise TorchModelError(f"param {name}: the name is taken by the torch module, rename the param")
            self.register_parameter(name, torch.nn.Parameter(torch.tensor(np.asarray(value), dtype=dtype)))

    @property
    def model(self):
        """The compiled model (its `parameters` are not updated by training: this module's are used)."""
        return self._mtdsl.model

    def save_parameters(self, path) -> None:
        """This module's parameters (trained values) to a file `Model.load_parameters` and
        `mtdsl.compile(..., parameters=)` read (runtime/parameters.py)."""
        model = self._mtdsl.model
        save_parameters(model, path, {name: getattr(self, name).detach().cpu().numpy() for name in model.parameters})

    def load_parameters(self, path) -> None:
        """Set this module's parameters from a file of `save_parameters` (checked as `Model.load_parameters`)."""
        values = load_parameters(self._mtdsl.model, path)
        with torch.no_grad():
            for name, value in values.items():
                getattr(self, name).copy_(torch.from_numpy(value))

    def forward(self, systems, gradients=None, **tensormaps) -> dict[str, TensorMap]:
        if is_pyg(systems):  # a PyTorch Geometric Data or Batch: its graphs, autograd kept
            systems = systems_from_pyg(systems)
        systems = list(systems) if isinstance(systems, (list, tuple)) else [systems]
        # a list for every output, or {output: [...]} per output (runtime/gradients/asked.py)
        asked = asked_gradients(self._mtdsl.model.module, gradients)
        gradients = dict(gradients) if isinstance(gradients, dict) and any(asked.values()) else \
            list(gradients or []) if not isinstance(gradients, dict) else []
        plan, handle = self._prepare(systems, gradients, tensormaps)
        primals = [
            torch.cat([s.positions for s in systems]).reshape(-1, 3),
            torch.stack([s.cell for s in systems]),
            *(getattr(self, name) for name in plan.param_names),
            *(b.values for name, _ in plan.inputs for b in tensormaps[name].blocks()),
        ]
        structure = plan.structure
        values = evaluate_op(handle, 0, [], len(plan.shapes), encode_shapes(plan.shapes), structure, primals)
        gradient_values = []
        if gradients:
            gradient_values = gradient_blocks_op(handle, encode_shapes(plan.gradient_shapes), structure, primals)
        return _assemble(plan, values, gradient_values)

    @torch.compiler.disable
    def _prepare(self, systems, gradients, tensormaps) -> tuple[Plan, torch.Tensor]:
        """The plan of a call and its handle (outside any graph: `torch.compile` does not trace it)."""
        self._mtdsl.model.compiled  # built once, shared by the copies below
        model = copy.copy(self._mtdsl.model)
        model.parameters = {name: getattr(self, name).detach().cpu().numpy() for name in model.parameters}
        check_tensormap_inputs(model.module, tensormaps, error=TorchModelError)
        for name in tensormaps:
            for block in tensormaps[name].blocks():
                if not isinstance(block.values, torch.Tensor) or block.values.dtype != self._dtype():
                    raise TorchModelError(f"input {name}: block values must be torch tensors of {self._dtype()}, "
                                          f"got {type(block.values).__name__} of {block.values.dtype}")
        for index, system in enumerate(systems):
            if not isinstance(system, System) or not system.is_torch:
                raise TorchModelError(
                    f"system {index}: the torch module takes mtdsl.System with torch positions and cell"
                )
            if system.positions.dtype != self._dtype():
                raise TorchModelError(f"system {index}: positions are {system.positions.dtype}, "
                                      f"the module computes in {self._dtype()}")
        plan = Plan(model, systems, tensormaps, gradients, self._mtdsl.descriptors())
        return plan, plan.handle()

    def _dtype(self):
        return torch.float64 if self._mtdsl.model.dtype == np.float64 else torch.float32


@torch.compiler.disable
def _assemble(plan: Plan, values, gradient_values) -> dict[str, TensorMap]:
    values, gradient_values = iter(values), iter(gradient_values)
    result = {}
    for name, reference in plan.outputs:
        blocks = []
        for block in reference.blocks():
            new = TensorBlock(next(values), block.samples, block.components, block.properties)
            for parameter, gradient in block.gradients():
                new.add_gradient(parameter, TensorBlock(next(gradient_values), gradient.samples,
                                                        gradient.components, gradient.properties))
            blocks.append(new)
        tensor = TensorMap(reference.keys, blocks)
        for key, value in reference.info().items():
            tensor.set_info(key, value)
        if name in plan.present:
            tensor = restrict(tensor, plan.present[name])
        result[name] = tensor
    return result


__all__ = ["TorchModel", "TorchModelError", "evaluate_op", "gradient_blocks_op"]
