"""The kernel ABI (codegen/schedule/abi.py): every argument a lowered kernel takes is a typed,
frozen dataclass (never a string-tagged tuple), storable by the kernel cache, with a text form."""

from __future__ import annotations

import dataclasses
import pathlib
import re

import pytest

from mtdsl.codegen import serialize
from mtdsl.codegen.schedule.derived import extended_module
from mtdsl.codegen.schedule import abi
from mtdsl.codegen.schedule.kernel import ModuleLowering
from mtdsl.compile import compile

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.mark.parametrize("program", sorted(p.name for p in EXAMPLES.glob("*.mt")))
def test_every_kernel_argument_is_an_abi_instance(program):
    """The arguments of every kernel of the example programs, their gradient kernels included."""
    model = compile(EXAMPLES / program, backend="cpp", species=[1, 8])
    module, _ = extended_module(model.module, model.gradient_kernels)
    kernels, _ = ModuleLowering(module).lower()
    assert kernels
    kinds = set()
    for name, lowered in kernels.items():
        for argument in lowered.arrays:
            assert isinstance(argument, abi.ArrayArgument), (name, argument)
        for argument in lowered.scalars:
            assert isinstance(argument, abi.ScalarArgument), (name, argument)
        assert isinstance(lowered.arrays[0], abi.OutputBuffer), name
        for argument in lowered.arrays + lowered.scalars:
            assert str(argument) and not str(argument).startswith("("), argument
            kinds.add(type(argument))
            # the kernel cache stores them as data, read back equal
            assert serialize.decode(serialize.encode(argument)) == argument
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(argument, dataclasses.fields(argument)[0].name, None)
    assert abi.OutputBuffer in kinds and len(kinds) >= 3


def test_arguments_are_not_string_tagged_tuples_in_the_sources():
    """No lowering builds a `("kind", ...)` descriptor, no binder routes on `descriptor[0]`."""
    pattern = re.compile(r"self\.(array|scalar)\(\(\s*[\"']|descriptor\[0\]|\(\"driver_range\"")
    sources = [*(ROOT / "codegen").rglob("*.py"), *(ROOT / "runtime").rglob("*.py")]
    found = [f"{path.relative_to(ROOT)}:{n}" for path in sources
             for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, found


def test_text_form_in_the_nest():
    """`--emit nest` names what each argument is."""
    from mtdsl.codegen.schedule import nest
    model = compile(EXAMPLES / "lennard_jones.mt", backend="cpp")
    kernels, _ = ModuleLowering(model.module).lower()
    text = "\n".join(nest.text(k.nest) for k in kernels.values())
    assert re.search(r"arg a\d+ = \w+\.(first|second|offsets|distances|vectors)", text), text
