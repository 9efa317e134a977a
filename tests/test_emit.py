"""`mtdsl compile --emit nest|cpp|llvm` shows the code a model runs: the loop nests its library
was printed from and that library's source, for every example program (codegen/build.py: rendering).

The model's library comes from the kernel cache after the first run, so these are quick."""

import pathlib

import pytest

import mtdsl
from mtdsl.cli import main
from mtdsl.codegen import render
from mtdsl.codegen.cache import FLAGS, cache_key, entry_paths

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
PROGRAMS = sorted(EXAMPLES.glob("*.mt"))
SPECIES = [1, 8]  # for the programs whose params are indexed by species (the CLI needs --species)


def emitted(capsys, path, emit, *options) -> str:
    assert main(["compile", str(path), "--emit", emit, *options]) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert text.endswith("\n")
    return text[:-1]  # print's newline


def options_for(capsys, path) -> tuple:
    """The CLI's defaults, or with `--species` for a program that needs it."""
    if main(["compile", str(path)]) == 0:
        capsys.readouterr()
        return ()
    assert "no species were given" in capsys.readouterr().err
    return ("--species", ",".join(map(str, SPECIES)))


def library_of(source: str) -> pathlib.Path:
    """Where the kernel cache keeps the library compiled from `source`."""
    return entry_paths(cache_key(source, FLAGS))[0]


def test_every_example_is_covered():
    assert {p.name for p in PROGRAMS} >= {"spherical_expansion.mt", "soap_power_spectrum.mt", "lennard_jones.mt"}


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_emitted_code_is_what_the_model_runs(path, capsys):
    options = options_for(capsys, path)
    model = mtdsl.compile(path, backend="cpp", species=SPECIES if options else None)
    values = model._values_native()  # the library of a call without gradients (--no-gradients)
    compiled = model.compiled  # with the kernels of every declared gradient, as --emit by default
    nest, cpp = emitted(capsys, path, "nest", *options), emitted(capsys, path, "cpp", *options)
    assert nest == compiled.rendered.nest and cpp == compiled.rendered.source
    assert compiled.path == library_of(cpp)  # the library the model loaded is this source compiled
    # every kernel the model runs natively (its body parts too) is printed, as the library has it
    for name, kernel in compiled.rendered.kernels.items():
        assert kernel.nest.startswith(f"kernel {name} ") and kernel.nest in nest, name
        assert kernel.source in cpp, name
    for name in compiled.fallbacks:
        assert f"# {name}: no compiled form" in nest
    assert emitted(capsys, path, "nest", "--no-gradients", *options) == values.rendered.nest
    assert emitted(capsys, path, "cpp", "--no-gradients", *options) == values.rendered.source


def test_the_kernel_of_several_terms_is_shown_as_it_runs(capsys):
    """The spherical expansion's `rho` is a pair sum plus the central atom's term: the model renders
    the pair sum alone, scattering over the pairs (`accumulate`), and the other term as a kernel of
    its own (`codegen/schedule/parts.py`); --emit shows that, not the whole body in one kernel."""
    path = EXAMPLES / "spherical_expansion.mt"
    nest = emitted(capsys, path, "nest", "--no-gradients")
    assert "kernel rho (accumulate):" in nest and "kernel rho·part1 (" in nest and "kernel rho (direct)" not in nest


def test_emitted_llvm_is_what_the_llvm_backend_jits(capsys):
    path = EXAMPLES / "lennard_jones.mt"
    compiled = mtdsl.compile(path, backend="llvm").compiled
    llvm = emitted(capsys, path, "llvm")
    assert llvm.endswith("\n\n" + compiled.rendered.source)
    for name, kernel in compiled.rendered.kernels.items():
        assert f"; {kernel.symbol}: tensor {name}" in llvm


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_codegen_render_is_what_the_model_runs(path, capsys):
    """`mtdsl.codegen.render` takes the one rendering step a model's library is built from
    (codegen/build.py: rendering): a kernel of several terms split as it runs, with the gradient
    kernels the model compiles, or without them as a call without gradients runs."""
    species = SPECIES if options_for(capsys, path) else None
    model = mtdsl.compile(path, backend="cpp", species=species)
    values = model._values_native()  # first: the library of a call without gradients
    compiled = model.compiled  # with the kernels of every declared gradient
    gradients = model.gradient_kernels
    assert render(model.module, "cpp", model.dtype, gradients) == compiled.rendered.source
    assert render(model.module, "nest", model.dtype, gradients) == compiled.rendered.nest
    assert render(model.module, "cpp", model.dtype) == values.rendered.source
    assert render(model.module, "nest", model.dtype, {}) == values.rendered.nest


def test_codegen_render_is_what_the_llvm_backend_runs():
    """The spherical expansion's `rho` runs by parts on the LLVM backend too: `render` prints its
    pair sum and its central atom's term as the kernels the JIT-compiled library has."""
    model = mtdsl.compile(EXAMPLES / "spherical_expansion.mt", backend="llvm")
    values = model._values_native()
    assert [part.rendered.name for part, _ in values.parts["rho"]] == ["rho·part1"]  # run by parts
    assert render(model.module, "llvm").endswith("\n\n" + values.rendered.source)
    nest = render(model.module, "nest", backend="llvm")
    assert nest == values.rendered.nest and "kernel rho·part1 (" in nest
