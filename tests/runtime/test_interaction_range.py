"""`model.interaction_range` (runtime/interaction.py): the cutoffs along chains of pair hops.

Checked on the reference programs and on programs with one, two and mixed hops, and against the
model itself: moving an atom just inside the range changes an atom's output, just outside does not.
"""

import math
import pathlib

import ase
import numpy as np
import pytest

from mtdsl.compile import compile

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"

HOPS_PROGRAM = """
model hops
hyper cutoff = 3.0
hyper short = 2.0
input S : systems
pairs P = neighbors(S, cutoff = cutoff)
pairs Q = neighbors(S, cutoff = short)
index i : atoms(S)
index s : systems(S)

tensor h1
    samples (i)
    properties (k = 0)
  = sum(p in P.from(i)) exp(-P.distance[p]) * cosine_cutoff(P.distance[p], cutoff, width = 0.5)

tensor h2
    samples (i)
    properties (k = 0)
  = sum(p in P.from(i)) tanh(h1[P.second[p], 0]) * cosine_cutoff(P.distance[p], cutoff, width = 0.5)

tensor mixed
    samples (i)
    properties (k = 0)
  = sum(q in Q.from(i)) h1[Q.second[q], 0] * h1[i, 0]

tensor own
    samples (i)
    properties (k = 0)
  = sum(p in P.from(i)) h1[i, 0] * P.distance[p]

tensor energy
    samples (s)
    properties (energy = 0)
  = sum(i in atoms(S) where S.system[i] == s) h2[i, 0]

tensor total
    samples (s)
    properties (energy = 0)
  = sum(i in atoms(S) where S.system[i] == s) h1[i, 0]

tensor centred
    samples (i)
    properties (k = 0)
  = h1[i, 0] - total[S.system[i], 0]

tensor everything
    samples (i)
    properties (k = 0)
  = sum(j in atoms(S) where S.system[j] == S.system[i]) h1[j, 0]

output {outputs}
"""


def hops_model(tmp_path, outputs):
    path = tmp_path / "hops.mt"
    path.write_text(HOPS_PROGRAM.replace("{outputs}", "\noutput ".join(outputs)))
    # dense: an atom without neighbours keeps its (zero) sample, so atom 0 is always there to read
    return compile(path, backend="interpreter", dense=True)


@pytest.mark.parametrize("outputs, expected", [
    (["h1"], 3.0),                # one hop
    (["h2"], 6.0),                # a neighbour's neighbourhood: twice the cutoff
    (["energy"], 6.0),            # a sum of per-atom terms over a system: the terms' range
    (["mixed"], 5.0),             # a hop of Q (2.0) then one of P (3.0)
    (["own"], 3.0),               # the centre's own h1: no extra hop
    (["h1", "h2"], 6.0),          # the largest of the outputs
    (["centred"], math.inf),      # a per-system value seen from one atom
    (["everything"], math.inf),   # a sum over all the atoms of the system
])
def test_two_hop_and_mixed_programs(tmp_path, outputs, expected):
    assert hops_model(tmp_path, outputs).interaction_range == expected


def test_reference_programs():
    assert compile(EXAMPLES / "spherical_expansion.mt", backend="interpreter").interaction_range == 5.0
    assert compile(EXAMPLES / "soap_power_spectrum.mt", backend="interpreter", cutoff=4.5).interaction_range == 4.5
    assert compile(EXAMPLES / "soap_energy.mt", backend="interpreter", species=[1, 8]).interaction_range == 5.0
    assert compile(EXAMPLES / "equivariant_convolution.mt", backend="interpreter").interaction_range == 4.0


@pytest.mark.parametrize("output, reach, stops", [("h1", 3.0, []), ("h2", 6.0, [0.5]), ("mixed", 5.0, [0.4])])
def test_range_is_where_the_output_stops_depending_on_an_atom(tmp_path, output, reach, stops):
    """Atom 0, atoms on the way at fractions `stops` of d along y (one per hop but the last), and
    an atom at distance d: atom 0's output moves with that atom for d below the range only."""
    model = hops_model(tmp_path, [output])
    assert model.interaction_range == reach

    def atom0(d, shift):
        positions = [[0.0, 0.0, 0.0], *([0.0, f * d, 0.0] for f in stops), [0.0, d + shift, 0.0]]
        return model(ase.Atoms(f"H{len(positions)}", positions=positions))[output].block().values[0, 0]

    def moves(d):
        return abs(atom0(d, 0.0) - atom0(d, 0.05)) > 1e-12

    assert moves(reach - 0.3)
    assert not moves(reach + 0.3)
