"""`run_domains` on a real LocalCluster equals one call over the whole system: per-atom outputs,
per-system shares, gradient rows on ghosts sent back to their owners, on periodic crystals, a
non-orthogonal cell, a slab with vacuum, a domain with no atoms; a halo smaller than the
interaction range of a two-hop model gives wrong results."""

import json
import math
import os

import ase.build
import numpy as np
import pytest

import mtdsl
from mtdsl.distributed import run_domains
from mtdsl.distributed.decompose import decompose
from mtdsl.testing import random_inputs

from .conftest import assert_same, compile_example

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
HERE = os.path.dirname(__file__)
VALUES, GRADIENTS = 1e-12, 1e-9


def crystal(repeat=(2, 2, 2), seed=1):
    """Rattled diamond silicon with some carbon: a periodic crystal of two species."""
    atoms = ase.build.bulk("Si", "diamond", a=5.43, cubic=True) * repeat
    atoms.rattle(0.05, seed=seed)
    atoms.numbers[::5] = 6
    return atoms


def triclinic():
    """A sheared cell (no right angle) of SrTiO3-like composition."""
    atoms = ase.build.bulk("Si", "diamond", a=5.43) * (3, 3, 3)  # the primitive fcc cell: 60 degree angles
    atoms.rattle(0.05, seed=2)
    atoms.numbers[::4] = 8
    return atoms


def slab():
    """Periodic along x and y, 10 A of vacuum along z: the z domains split the atoms' span."""
    atoms = ase.build.fcc111("Al", size=(3, 3, 4), vacuum=5.0, a=4.05)
    atoms.rattle(0.05, seed=3)
    atoms.numbers[::3] = 29
    atoms.pbc = (True, True, False)
    return atoms


def cluster():
    """A non-periodic molecule-like cluster (no cell at all), one domain left empty."""
    rng = np.random.default_rng(4)
    points = rng.uniform(0, 6, size=(30, 3))
    points[:, 0] *= 0.4  # x spans [0, 2.4]: with 3 domains along y and the far corner empty
    points[:, 1] = np.where(points[:, 1] > 3.5, points[:, 1] + 6.0, points[:, 1])
    return ase.Atoms(numbers=rng.choice([1, 8], size=30), positions=points)


@pytest.mark.parametrize("structure, grid", [
    (crystal, (2, 2, 1)),
    (triclinic, (2, 1, 2)),
    (slab, (1, 2, 2)),
])
def test_power_spectrum(client, structure, grid):
    model = compile_example("soap_power_spectrum")
    atoms = structure()
    expected = model([atoms], gradients=["positions", "strain"] if atoms.pbc.all() else ["positions"])
    gradients = list(expected["ps"].block(0).gradients_list())
    found = run_domains(model, atoms, client=client, grid=grid, gradients=gradients)
    assert_same(expected, found, VALUES, GRADIENTS)


def test_soap_energy_positions_and_strain(client):
    model = compile_example("soap_energy", species=[6, 14])
    atoms = crystal((2, 2, 2))
    expected = model([atoms], gradients=["positions", "strain"])
    # 3 domains along x: each thinner than the cell, ghosts from both neighbouring domains
    found = run_domains(model, atoms, client=client, grid=(3, 1, 2), gradients=["positions", "strain"])
    assert_same(expected, found, VALUES, GRADIENTS)
    # the forces and stress are the sums of the domains' shares: they are not the ghost-free ones
    assert len(found["energy"].block(0).gradient("positions").samples) == len(atoms)
    # an 8-atom cell smaller than twice the cutoff: an atom sees several images of another, and
    # its own; every domain's ghosts include images of its owned atoms
    small = crystal((1, 1, 1))
    expected = model([small], gradients=["positions", "strain"])
    found = run_domains(model, small, client=client, grid=(3, 3, 1), gradients=["positions", "strain"])
    assert_same(expected, found, VALUES, GRADIENTS)


def test_equivariant_convolution_with_inputs(client):
    model = compile_example("equivariant_convolution")
    atoms = triclinic()
    frames = [mtdsl.System.from_ase(atoms)]
    inputs = random_inputs(model.module, frames, seed=2)
    expected = model(frames, **inputs)
    found = run_domains(model, atoms, client=client, grid=(2, 2, 1), **inputs)
    assert_same(expected, found, VALUES, GRADIENTS)


def test_empty_domain(client):
    model = compile_example("soap_power_spectrum")
    atoms = cluster()
    positions = atoms.positions
    decomposition = decompose(positions, np.zeros((3, 3)), np.zeros(3, bool), (1, 3, 1), 3.5)
    assert min(d.n_owned for d in decomposition.domains) == 0  # the middle slab has no atom
    expected = model([atoms], gradients=["positions"])
    found = run_domains(model, atoms, client=client, grid=(1, 3, 1), gradients=["positions"])
    assert_same(expected, found, VALUES, GRADIENTS)


def test_two_hops_need_twice_the_cutoff(client):
    # a cutoff past the second neighbours of silicon (3.84 A): two hops reach 8 A
    model = mtdsl.compile(os.path.join(HERE, "two_hop.mt"), cutoff=4.0)
    assert model.interaction_range == pytest.approx(8.0)
    atoms = crystal((3, 3, 2))  # 3 domains of 5.4 A along x and y: thinner than the range
    expected = model([atoms], gradients=["positions"])
    found = run_domains(model, atoms, client=client, grid=(3, 3, 1), gradients=["positions"])
    assert_same(expected, found, VALUES, GRADIENTS)
    # a halo of one cutoff misses the neighbours of the ghosts: the atoms near faces are wrong
    short = run_domains(model, atoms, client=client, grid=(3, 3, 1), gradients=["positions"], halo=4.0)
    with pytest.raises(AssertionError):
        assert_same(expected, short, VALUES, GRADIENTS)


def test_refusals(client):
    model = compile_example("soap_power_spectrum")
    atoms = crystal()
    with pytest.raises(mtdsl.MtdslError, match="grid"):
        run_domains(model, atoms, client=client, grid=(0, 1, 1))
    with pytest.raises(mtdsl.MtdslError, match="cell"):
        run_domains(model, atoms, client=client, grid=(1, 1, 1), gradients=["cell"])
    with pytest.raises(mtdsl.MtdslError, match="one system"):
        run_domains(model, [atoms, atoms], client=client)
    # a per-system output that is not a sum over atoms cannot be shared out
    from mtdsl.distributed.shares import share_module

    nonlinear = mtdsl.compile(os.path.join(HERE, "two_hop.mt")).module
    import dataclasses

    from mtdsl.ir import nodes as ir

    kernel = nonlinear.kernel("energy")
    squashed = dataclasses.replace(kernel, body=ir.Call("tanh", (kernel.body,)))
    module = dataclasses.replace(nonlinear, kernels=tuple(squashed if k.name == "energy" else k for k in nonlinear.kernels))
    with pytest.raises(mtdsl.MtdslError, match="output energy is not a sum over the atoms"):
        share_module(module)
    assert math.isfinite(model.interaction_range)


def test_memory_per_domain_follows_the_domain(client):
    """Twice the system on twice the domains: each domain's peak memory stays that of one domain
    (its owned atoms and ghosts), while the system's grows."""
    model = compile_example("soap_power_spectrum")
    peaks = {}
    for repeat, grid in (((2, 2, 2), (1, 1, 2)), ((2, 2, 4), (1, 1, 4))):
        atoms = crystal(repeat)
        found = run_domains(model, atoms, client=client, grid=grid, gradients=["positions"], measure_memory=True)
        domains = json.loads(found["ps"].get_info("provenance"))[-1]["distributed"]["domains"]
        assert len(domains) == grid[2] and sum(d["owned"] for d in domains) == len(atoms)
        peaks[len(atoms)] = max(d["peak_bytes"] for d in domains)
    small, large = sorted(peaks)
    assert large == 2 * small
    assert peaks[large] < 1.25 * peaks[small]
