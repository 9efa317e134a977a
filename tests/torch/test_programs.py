"""The torch module of programs beyond the reference ones: every built-in, pair samples and
neighbours of neighbours, message passing and three-body sums, positions read directly,
parameters inside non-linear functions (gradcheck and gradgradcheck, float64), and the
random kernels of the backends' tests (values against the interpreter, gradcheck)."""

import numpy as np
import pytest
import torch

import mtdsl
from mtdsl.runtime.evaluate import torch_values
from mtdsl.runtime.model import Model

from ..codegen.test_backends import bind, interpret, methanol, rocksalt, water
from ..codegen.test_random_programs import SEEDS as RANDOM_SEEDS
from ..codegen.test_random_programs import random_module
from ..runtime.test_gradients import BUILTINS_PROGRAM, DIPOLE_PROGRAM, MESSAGE_PASSING_PROGRAM, PAIRS_PROGRAM
from ._helpers import atoms, flat_values, systems

PARAMS_PROGRAM = """
model nonlinear
hyper cutoff = 3.5
input S : systems
pairs P = neighbors(S, cutoff = cutoff)
index i : atoms(S)
index s : systems(S)
index k : range(3)
param c[k] ~ normal(0.0, 1.0)
param b[k] ~ normal(1.0, 0.1)

tensor f
    samples (i)
    properties (k)
  = tanh(c[k] * sum(p in P.from(i)) exp(-b[k] ^ 2 * P.distance[p]) * cosine_cutoff(P.distance[p], cutoff, width = 0.5))

tensor e
    samples (s)
  = sum(i in atoms(S) where S.system[i] == s) sum(k) sigmoid(f[i, k] + c[k]) * f[i, k] * b[k]

output e
"""

PROGRAMS = {"builtins": BUILTINS_PROGRAM, "pairs": PAIRS_PROGRAM, "message_passing": MESSAGE_PASSING_PROGRAM,
            "dipole": DIPOLE_PROGRAM, "params": PARAMS_PROGRAM}


def module_function(tmp_path, name):
    path = tmp_path / f"{name}.mt"
    path.write_text(PROGRAMS[name])
    module = mtdsl.compile(path).to_torch()
    names = [n for n, _ in module.named_parameters()]
    frames = atoms()
    molecule_cell = torch.tensor(frames[0].cell.array)

    def function(positions_0, positions_1, cell_1, *params):
        batch = systems(positions=[positions_0, positions_1], cells=[molecule_cell, cell_1])
        return flat_values(torch.func.functional_call(module, dict(zip(names, params)), (batch,)))

    inputs = [torch.tensor(frames[0].positions), torch.tensor(frames[1].positions), torch.tensor(frames[1].cell.array)]
    inputs += [p.detach().clone() for p in module.parameters()]
    return function, [x.requires_grad_(True) for x in inputs]


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_gradcheck(tmp_path, name):
    function, inputs = module_function(tmp_path, name)
    assert torch.autograd.gradcheck(function, inputs, fast_mode=True)


def test_gradgradcheck_parameters_inside_non_linear_functions(tmp_path):
    function, inputs = module_function(tmp_path, "params")
    assert torch.autograd.gradgradcheck(function, inputs, fast_mode=True)


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_torch_values_equal_the_backend(tmp_path, name):
    path = tmp_path / f"{name}.mt"
    path.write_text(PROGRAMS[name])
    module = mtdsl.compile(path).to_torch()
    batch = systems()
    plan, _ = module._prepare(batch, [], {})
    primals = [torch.cat([s.positions for s in batch]), torch.stack([s.cell for s in batch]),
               *(p.detach() for p in module.parameters())]
    for found, expected in zip(plan.torch_values(plan.structure, primals), plan.values(plan.structure, primals)):
        torch.testing.assert_close(found, expected, rtol=1e-12, atol=1e-13)


# ---- random programs (tests/codegen/test_random_programs.py) -------------------------------------------


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_random_programs_values_equal_the_interpreter(seed):
    module = random_module(seed)
    frames = [rocksalt(), water(), methanol()]
    with np.errstate(all="ignore"):
        expected = interpret(module, bind(module, frames))
        bindings = bind(module, frames)
        batch = bindings.systems["S"]
        found = torch_values.evaluate(module, batch, bindings.pairs, torch.tensor(np.asarray(batch.positions)),
                                    torch.tensor(np.asarray(batch.cell)),
                                    {name: torch.tensor(value) for name, value in bindings.params.items()}, {})
    for kernel in module.kernels:
        assert found[kernel.name].keys == expected[kernel.name].keys
        for a, b in zip(expected[kernel.name].blocks(), found[kernel.name].blocks()):
            np.testing.assert_allclose(b.values.numpy(), np.asarray(a.values), rtol=1e-12,
                                       atol=1e-12 * max(np.abs(np.asarray(a.values)).max(), 1.0))


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_random_programs_gradcheck(seed):
    module = Model(random_module(seed), backend="interpreter").to_torch()
    frames = [water(), rocksalt()]
    pbc = [torch.tensor([False] * 3), torch.tensor([True] * 3)]

    def function(positions_0, positions_1, cell_1, w):
        cells = [torch.zeros(3, 3, dtype=torch.float64), cell_1]
        batch = [mtdsl.System(torch.tensor(frame.numbers), positions, cell, periodic)
                 for frame, positions, cell, periodic in zip(frames, [positions_0, positions_1], cells, pbc)]
        return flat_values(torch.func.functional_call(module, {"w": w}, (batch,)))

    inputs = [torch.tensor(frames[0].positions), torch.tensor(frames[1].positions),
              torch.tensor(frames[1].cell.array), module.w.detach().clone()]
    with np.errstate(all="ignore"):
        assert torch.autograd.gradcheck(function, [x.requires_grad_(True) for x in inputs], fast_mode=True)
