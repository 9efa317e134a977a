"""What the orders of one call of a torch module share (docs/torch.md).

A training step evaluates the program with torch twice on the same systems (the forces, then
the backward of a force loss); the positions that block accesses gather depend on the structure
only, so the second evaluation takes them from the first (`torch_values.StructureMemo`); the
second VJP of the descriptors is the first's; the descriptors' values come from the plan's run.
The results must be those of evaluations that compute everything again.
"""

import torch

from mtdsl.runtime.evaluate import torch_values

from ._helpers import compiled, systems


def step(module):
    found = systems(requires_grad=True)
    energy = module(found)["energy"].block().values.sum()
    forces = torch.autograd.grad(energy, [s.positions for s in found], create_graph=True)
    loss = energy ** 2 + sum((f ** 2).sum() for f in forces)
    parameters = list(module.parameters())
    loss.backward(inputs=parameters)
    return [energy.detach()] + [f.detach() for f in forces] + [p.grad.clone() for p in parameters]


def test_second_order_reuses_the_first_orders_lookups(monkeypatch):
    memos = []
    original = torch_values.StructureMemo

    class Recorded(original):
        def __init__(self):
            super().__init__()
            memos.append(self)

    monkeypatch.setattr(torch_values, "StructureMemo", Recorded)
    with_memo = step(compiled("soap_energy").to_torch())
    assert len(memos) == 1 and memos[0].hits > 0  # one memo for the call, used by the second order

    class Forgetful(original):  # computes everything each time
        def get(self, key, compute):
            return compute()

    monkeypatch.setattr(torch_values, "StructureMemo", Forgetful)
    without = step(compiled("soap_energy").to_torch())
    assert len(with_memo) == len(without)
    for a, b in zip(with_memo, without):
        assert torch.equal(a, b)


def test_the_forces_vjp_runs_once_per_step(monkeypatch):
    """The backward of a force loss recomputes the forces' graph: the descriptors' VJP with the
    same cotangents is taken from the first (`NativeRun.vjp`); test_descriptors.py checks the
    results against the all-torch module."""
    from mtdsl.runtime.gradients.native_products import NativeProducts

    calls = []
    original = NativeProducts.vjp

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(NativeProducts, "vjp", counted)
    step(compiled("soap_energy").to_torch())
    assert len(calls) == 1


def test_the_descriptors_take_their_values_from_the_plans_run(monkeypatch):
    """The plan's backend run (order 0) computed the descriptors at the same positions: their
    products' run takes those values instead of running the kernels again."""
    from mtdsl.runtime.gradients.native_products import NativeProducts

    given = []
    original = NativeProducts.run

    def recorded(self, bindings, precomputed=None):
        given.append(sorted(precomputed) if precomputed else None)
        return original(self, bindings, precomputed)

    monkeypatch.setattr(NativeProducts, "run", recorded)
    step(compiled("soap_energy").to_torch())
    assert given == [["ps", "rho"]]
