"""The reference evaluator skips absent blocks (runtime/evaluate/present_blocks.py): the body of
a kernel over the key points of its present blocks gives, bit for bit, the TensorMaps of the
dense grid, with fewer points evaluated."""

import ase
import numpy as np
import pytest

from mtdsl.compile import compile
from mtdsl.runtime.assemble import evaluate_kernel, kernel_domain
from mtdsl.runtime.evaluate.evaluator import Evaluator
from mtdsl.runtime.evaluate import present_blocks
from mtdsl.runtime.named import Named

from .test_sparsity import PROGRAM

# two neighbour types per centre: most (centre, neighbour 1, neighbour 2) blocks are absent
SPECTRUM = """
hyper cutoff = 2.5
input S : systems
pairs P = neighbors(S, cutoff = cutoff)
index i : atoms(S)
index a, b : species(S)
index n : range(3)

tensor rho
    keys       (center_type = S.type[i], neighbor_type = b)
    samples    (i)
    properties (n)
  = sum(p in P.from(i) where S.type[P.second[p]] == b) exp(-P.distance[p] * (n + 1.0))

# reads rho only at its present blocks: the keys depend on i, a and b
tensor ps
    keys       (center_type = S.type[i], neighbor_1_type = a, neighbor_2_type = b)
    samples    (i)
    properties (n)
  = rho{center_type = S.type[i], neighbor_type = a}[i, n] * rho{center_type = S.type[i], neighbor_type = b}[i, n]
    * exp(-dot(S.positions[i], S.positions[i]))

output rho
output ps
"""


def molecules():
    return [ase.Atoms("CH4", positions=[[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63],
                                        [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]]),
            ase.Atoms("H2O", positions=[[0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]]),
            ase.Atoms("NO", positions=[[0, 0, 0], [1.15, 0, 0]]),
            ase.Atoms("F", positions=[[0, 0, 0]])]


def both_ways(monkeypatch, path, frames, spy):
    """The outputs with absent blocks skipped, then over the dense grid."""
    model = compile(path, backend="interpreter")
    original = present_blocks.evaluate_present_blocks
    evaluated = {}

    def counting(evaluator, kernel, scope, axes, sizes):
        body = original(evaluator, kernel, scope, axes, sizes)
        evaluated[kernel.name] = body is not None
        return body

    monkeypatch.setattr("mtdsl.runtime.assemble.evaluate_present_blocks", counting)
    skipped = model(frames)
    spy.update(evaluated)
    monkeypatch.setattr(present_blocks, "SKIP_ABSENT_BLOCKS", False)
    dense = model(frames)
    return skipped, dense


def assert_identical(first, second):
    assert first.keys == second.keys
    for a, b in zip(first.blocks(), second.blocks()):
        assert a.samples == b.samples and a.properties == b.properties
        assert np.array_equal(np.asarray(a.values), np.asarray(b.values))  # bit for bit


@pytest.mark.parametrize("program, frames", [(SPECTRUM, molecules), (PROGRAM, None)])
def test_skipping_absent_blocks_gives_the_dense_values(tmp_path, monkeypatch, program, frames):
    from .test_sparsity import frames as rule_frames

    path = tmp_path / "program.mt"
    path.write_text(program)
    spy = {}
    skipped, dense = both_ways(monkeypatch, path, (frames or rule_frames)(), spy)
    for name in dense:
        assert_identical(skipped[name], dense[name])
    if program is SPECTRUM:
        # both skip absent blocks: ps over (i, a, b), rho over b alone (i is its P.from atom: dense)
        assert spy == {"rho": True, "ps": True}


def test_present_key_points_are_fewer_than_the_grid(tmp_path):
    """The power spectrum's body is evaluated over the key points of its present blocks."""
    path = tmp_path / "program.mt"
    path.write_text(SPECTRUM)
    model = compile(path, backend="interpreter")
    bindings = model.bind(molecules(), {})
    bindings.present = bindings.kernels_present
    evaluator = Evaluator(model.module, bindings)
    rho, ps = model.module.kernels
    bindings.tensors["rho"] = evaluate_kernel(evaluator, rho)
    scope, axes, sizes, _ = kernel_domain(evaluator, ps)
    seen = []
    original = evaluator.evaluate

    def spying(expr, inner):
        if expr is ps.body:
            seen.append(inner.aliases["i"])
        return original(expr, inner)

    evaluator.evaluate = spying
    body = present_blocks.evaluate_present_blocks(evaluator, ps, scope, axes, sizes)
    (atoms,) = seen
    n_atoms, n_species = 12, 5
    assert atoms.axes == (present_blocks.BLOCKS_AXIS,)
    assert 0 < len(atoms.data) < n_atoms * n_species * n_species / 4
    assert set(body.axes) == set(axes)  # back on the dense grid


def test_scatter_of_torch_values_keeps_autograd():
    import torch

    values = torch.arange(1.0, 7.0, dtype=torch.float64).reshape(3, 2).requires_grad_()
    points = (np.array([0, 2, 3]), np.array([1, 0, 2]))
    body = Named((present_blocks.BLOCKS_AXIS, "n"), values * 2.0)
    dense = present_blocks._scatter(body, ("i", "a"), points, {"i": 4, "a": 3})
    assert dense.axes == ("i", "a", "n") and tuple(dense.data.shape) == (4, 3, 2)
    assert torch.equal(dense.data[points], values.detach() * 2.0)
    assert float(dense.data.detach().sum()) == float(values.detach().sum() * 2.0)
    weights = torch.rand(4, 3, 2, dtype=torch.float64)
    (dense.data * weights).sum().backward()
    assert torch.equal(values.grad, 2.0 * weights[points])
