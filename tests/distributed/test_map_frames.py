"""`map_frames` on a real LocalCluster equals one call over every frame, for every example program."""

import json

import pytest

from mtdsl.distributed import map_frames
from mtdsl.testing import random_inputs, random_systems

from .conftest import assert_same, compile_example

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def frames():
    # 7 frames, three shapes (molecule, periodic crystal, far-apart pair), species H C O: some
    # chunks lack a species, so their blocks are labelled by the dataset's species
    return random_systems(species=(1, 6, 8), n_systems=7, seed=3)


@pytest.mark.parametrize("name, gradients", [
    ("spherical_expansion", ["positions", "strain"]),
    ("soap_power_spectrum", ["positions"]),
    ("soap_power_spectrum", {"ps": ["strain"]}),  # gradients asked per output
    ("soap_energy", ["positions", "strain"]),
])
def test_equals_one_call(client, frames, name, gradients):
    extra = {"species": [1, 6, 8]} if name == "soap_energy" else {}
    model = compile_example(name, **extra)
    expected = model(frames, gradients=gradients)
    found = map_frames(model, frames, client=client, gradients=gradients, chunk_size=2)
    assert_same(expected, found)
    for tensor in found.values():
        record = json.loads(tensor.get_info("provenance"))[-1]
        assert record["distributed"]["workers"] == 2 and record["distributed"]["chunks"] == 4
        # the model was loaded at most once per worker, never per chunk
        assert record["distributed"]["loaded_on_workers"] <= 2


def test_tensormap_inputs_and_loaded_once(client, frames):
    model = compile_example("equivariant_convolution")
    inputs = random_inputs(model.module, frames, seed=1)
    expected = model(frames, **inputs)
    found = map_frames(model, frames, client=client, chunk_size=3, **inputs)
    assert_same(expected, found)
    # a second run of the same model finds it loaded on both workers already
    again = map_frames(model, frames, client=client, chunk_size=1, **inputs)
    assert_same(expected, again)
    record = json.loads(again["msg"].get_info("provenance"))[-1]
    assert record["distributed"]["loaded_on_workers"] == 0


def test_uneven_chunks_and_one_frame(client, frames):
    model = compile_example("soap_power_spectrum")
    expected = model(frames[:1])
    assert_same(expected, map_frames(model, frames[:1], client=client))
    expected = model(frames)
    assert_same(expected, map_frames(model, frames, client=client, chunk_size=5))
    with pytest.raises(ValueError, match="chunk_size"):
        map_frames(model, frames, client=client, chunk_size=0)
