"""The model subcommands of the `mtdsl` command line: `compile`, `run`, `inspect`.

They are registered in `mtdsl.cli.app`'s command table (one `Command` each) and
follow its rules: one clear line on stderr and exit status 1 for bad input,
2 for usage errors, never a traceback unless `--debug`.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

from .cache import COMMAND as CACHE_COMMAND
from .base import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Command, CommandError, _parse_set, _require_file
from ..codegen import render
from ..codegen.schedule.derived import extended_module
from ..compile import CompileError, compile
from ..distributed.command import inspect_dataset, parse_domains, run_distributed
from ..errors import FormatError
from ..io.mts import load, save
from ..io.structures import read_structures
from ..lang.resolve import parse_literal_text
from ..ops import join
from ..provenance import append_provenance, history
from ..runtime.export.atomistic import ExportError, ExportWarning
from ..runtime.native.compiled import model_arguments
from ..runtime.parameters import ParametersError, file_species
from ..tensor import Labels, TensorBlock, TensorMap


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the .mt program")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a hyper (repeatable)")
    parser.add_argument("--species", metavar="Z,Z,...",
                        help="fix the species dimensions (needed by species-indexed params)")


def _species(text):
    if not text:
        return None
    try:
        return [int(z) for z in text.split(",") if z.strip()]
    except ValueError:
        raise CommandError(f"--species expects atomic numbers separated by commas, got {text!r}", EXIT_USAGE)


def _hypers(args) -> dict:
    return {name: parse_literal_text(value) for name, value in _parse_set(args.set).items()}


def _compile(args, backend=None, dtype=np.float64):
    _require_file(args.file)
    try:
        model = compile(args.file, backend=backend, species=_species(args.species), dtype=dtype, **_hypers(args))
    except CompileError as error:
        print(str(error), file=sys.stderr)
        raise CommandError(f"{args.file}: {len(error.diagnostics)} error(s)") from None
    if getattr(args, "params", None):  # run, export: trained parameters
        _load_params(model, args.params)
    return model


# ---- compile ----------------------------------------------------------------------------------


def add_compile(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("--emit", choices=("ir", "nest", "cpp", "llvm"), default="ir",
                        help="what to print: the loop IR (default), the loop nest of the backends, "
                             "or generated C++ / LLVM IR")
    parser.add_argument("--gradients", action="append", metavar="PARAMETER",
                        help="with --emit cpp/llvm/nest/ir, append the gradient kernels of these declared gradients "
                             "(positions, strain or cell; repeatable; default: every declared gradient)")
    parser.add_argument("--no-gradients", action="store_true",
                        help="only the value kernels, without the gradient kernels")


def _emitted_gradients(model, args) -> dict:
    """`{wrt: {kernel: GradientKernel}}` of the chosen declared gradients (`mtdsl/ir/passes/terms.py`;
    every declared one unless `--gradients` says, none with `--no-gradients`)."""
    if args.no_gradients:
        if args.gradients:
            raise CommandError("--gradients and --no-gradients exclude each other", EXIT_USAGE)
        return {}
    declared = model.gradient_kernels
    chosen = list(dict.fromkeys(args.gradients)) if args.gradients else list(declared)
    unknown = [wrt for wrt in chosen if wrt not in declared]
    if unknown:
        raise CommandError(f"--gradients {unknown[0]}: no output of {args.file} declares it "
                           f"(declared: {', '.join(declared) or 'none'})", EXIT_USAGE)
    return {wrt: declared[wrt] for wrt in chosen}


def cmd_compile(args: argparse.Namespace) -> int:
    model = _compile(args)
    gradients = _emitted_gradients(model, args)
    if args.emit == "ir":  # the value kernels, then the gradient kernels the native backends append
        print(extended_module(model.module, gradients)[0] if gradients else model.module)
        return EXIT_OK
    # exactly what the model compiles (runtime/native/compiled.py: model_arguments): its module, backend,
    # dtype and gradient kernels, through the same rendering as its library (codegen/build.py: rendering)
    print(render(emit=args.emit, **model_arguments(model, gradients)))
    return EXIT_OK


# ---- run --------------------------------------------------------------------------------------


def add_run(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("structures", nargs="+", help="structure files (extxyz, POSCAR, OUTCAR, LAMMPS, ...)")
    parser.add_argument("-o", "--output", required=True, help="where to write the outputs (.mts)")
    parser.add_argument("--gradients", action="append", default=[], metavar="PARAMETER",
                        help="gradient blocks to compute: positions, strain or cell (repeatable)")
    parser.add_argument("--params", metavar="FILE", help="trained parameters (a file of model.save_parameters)")
    parser.add_argument("--format", help="structure file format, when the extension does not say it")
    parser.add_argument("--type-map", metavar="TYPE=ELEMENT,...",
                        help="LAMMPS files: the element of each numeric type, e.g. 1=O,2=H")
    parser.add_argument("--atom-style", metavar="STYLE", help="LAMMPS data files: the atom style, e.g. atomic")
    parser.add_argument("--batch", type=int, default=64, metavar="N", help="frames per model call (default 64)")
    parser.add_argument("--float32", action="store_true", help="compute in single precision")
    parser.add_argument("--backend", choices=("cpp", "llvm", "interpreter"),
                        help="how to run the kernels (default: cpp with a C++ compiler, else llvm)")
    parser.add_argument("--threads", type=int, metavar="N", help="threads of the kernels (default OMP_NUM_THREADS)")
    # Dask distributed (docs/distributed.md)
    parser.add_argument("--scheduler", metavar="ADDRESS|local[:N]",
                        help="run on Dask workers: a scheduler's address, or local[:N] for a LocalCluster of N "
                             "workers; -o is then a directory of shards (read it with mtdsl inspect)")
    parser.add_argument("--chunk-size", type=int, metavar="K", help="with --scheduler: frames per shard")
    parser.add_argument("--domains", metavar="NX,NY,NZ",
                        help="one large structure split into NX x NY x NZ spatial domains (with ghost atoms)")
    parser.add_argument("--max-pairs", type=int, metavar="N",
                        help="the most neighbour pairs a batch may have, estimated before the search "
                             "(default $MTDSL_MAX_PAIRS or 100,000,000; docs/systems.md)")
    parser.add_argument("--allow-nonfinite", action="store_true",
                        help="write NaN or infinite outputs instead of failing on them")


def cmd_run(args: argparse.Namespace) -> int:
    options = {}
    if args.type_map:
        options["type_map"] = _type_map(args.type_map)
    if args.atom_style:
        options["atom_style"] = args.atom_style
    frames = []
    for path in args.structures:
        frames += read_structures(path, format=args.format, **options)
    if not frames:
        raise CommandError("no structures to run on")
    if args.species is None and args.params:
        args.species = _params_species(args.params)
    if args.species is None:
        # the species of every structure given, so that every batch has the same species dimensions
        args.species = ",".join(str(z) for z in sorted({int(z) for f in frames for z in np.asarray(f.types)}))
    model = _compile(args, backend=args.backend, dtype=np.float32 if args.float32 else np.float64)
    model.threads = args.threads
    if args.max_pairs is not None:
        if args.max_pairs < 1:
            raise CommandError("--max-pairs must be at least 1", EXIT_USAGE)
        os.environ["MTDSL_MAX_PAIRS"] = str(args.max_pairs)  # read by every neighbour search of this run
    model.check_finite = not args.allow_nonfinite
    if args.batch < 1:
        raise CommandError("--batch must be at least 1", EXIT_USAGE)
    if getattr(args, "scheduler", None) or getattr(args, "domains", None):
        if args.chunk_size is not None and args.chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1", EXIT_USAGE)
        if args.domains:
            parse_domains(args.domains)  # before any cluster starts
        run_distributed(args, model, frames)
        return EXIT_OK
    outputs = _run_in_batches(model, frames, args.batch, args.gradients)
    paths = _output_paths(args.output, list(outputs))
    for name, tensor in outputs.items():
        save(paths[name], tensor)
        print(f"{name}: {len(tensor)} blocks -> {paths[name]}")
    return EXIT_OK


def _params_species(path: str):
    """The species a parameter file was saved for, as `--species` text (None when it has none)."""
    try:
        species = file_species(path)
    except ParametersError as error:
        raise CommandError(str(error)) from None
    return ",".join(str(z) for z in species) if species else None


def _load_params(model, path: str) -> None:
    try:
        model.load_parameters(path)
    except ParametersError as error:
        raise CommandError(str(error)) from None


def _type_map(text: str) -> dict:
    mapping = {}
    for item in text.split(","):
        number, sep, element = item.partition("=")
        if not sep or not number.strip().isdigit() or not element.strip():
            raise CommandError(f"--type-map expects TYPE=ELEMENT pairs separated by commas, got {text!r}", EXIT_USAGE)
        mapping[int(number)] = element.strip()
    return mapping


def _run_in_batches(model, frames, batch_size, gradients):
    """The outputs over all frames, computed `batch_size` frames at a time (progress bar on a terminal)."""
    chunks = [frames[k : k + batch_size] for k in range(0, len(frames), batch_size)]
    progress = _progress(total=len(frames), unit="frame")
    results = {}
    for start, chunk in zip(range(0, len(frames), batch_size), chunks):
        # numpy's warnings of NaN and overflow would precede the one line of the final guard
        with np.errstate(all="ignore" if getattr(model, "check_finite", False) else "warn"):
            outputs = model(chunk, gradients=gradients)
        for name, tensor in outputs.items():
            results.setdefault(name, []).append(_shift_systems(tensor, start) if start else tensor)
        progress.update(len(chunk))
    progress.close()
    merged = {}
    for name, parts in results.items():
        if len(parts) == 1:
            merged[name] = parts[0]
            continue
        merged[name] = _sorted_keys(join(parts, axis="samples", different_keys="union"))
        # one provenance record for the whole run: the last batch's, with every batch's inputs
        record = dict(history(parts[-1])[-1])
        record["inputs"] = [source for part in parts for source in history(part)[-1]["inputs"]]
        append_provenance(merged[name], record)
    return merged


def _sorted_keys(tensor):
    """Blocks in lexicographic key order, as a model orders them (a union of keys appends)."""
    order = np.lexsort(tensor.keys.array.T[::-1])
    result = TensorMap(Labels(tensor.keys.names, tensor.keys.array[order], assume_unique=True),
                       [tensor.block_by_id(int(k)) for k in order])
    for key, value in tensor.info().items():
        result.set_info(key, value)
    return result


def _shift_systems(tensor, offset: int):
    """The same TensorMap with every `system` sample label increased by `offset`."""
    def shifted(labels):
        if "system" not in labels.names:
            return labels
        values = labels.array.copy()
        values[:, labels.names.index("system")] += offset
        return Labels(labels.names, values, assume_unique=True)

    def block(original):
        result = TensorBlock(original.values, shifted(original.samples), original.components, original.properties)
        for parameter, gradient in original.gradients():
            result.add_gradient(parameter, block(gradient))
        return result

    result = TensorMap(tensor.keys, [block(b) for b in tensor.blocks()])
    for key, value in tensor.info().items():
        result.set_info(key, value)
    return result


def _output_paths(output: str, names: list[str]) -> dict:
    if len(names) == 1:
        return {names[0]: output}
    stem, extension = os.path.splitext(output)
    return {name: f"{stem}.{name}{extension or '.mts'}" for name in names}


def _progress(total: int, unit: str):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, disable=not sys.stderr.isatty(), file=sys.stderr)


# ---- inspect ----------------------------------------------------------------------------------


def add_inspect(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a .mts file")
    parser.add_argument("--blocks", action="store_true", help="list every block")


def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    if os.path.isdir(args.file):  # a sharded output of `mtdsl run --scheduler`
        print(inspect_dataset(args.file))
        return EXIT_OK
    _require_file(args.file)
    try:
        data = load(args.file, mmap=True, verify=False)  # shapes and labels only: values are never read
    except FormatError as error:
        raise CommandError(f"{args.file}: {error}") from None
    print(data if not isinstance(data, TensorMap) else _summary(data, args.blocks))
    if isinstance(data, TensorMap):
        for key, value in sorted(data.info().items()):
            if key == "provenance":
                try:
                    records = json.loads(value)
                except json.JSONDecodeError:
                    records = [value]
                print("provenance:")
                for record in records:
                    print(f"    {json.dumps(record, sort_keys=True)}")
            else:
                print(f"{key}: {value}")
    return EXIT_OK


def _summary(tensor, every_block: bool) -> str:
    if not every_block:
        return repr(tensor)
    lines = [repr(tensor).split("\n")[0], f"keys: {tensor.keys.names}"]
    for index, block in enumerate(tensor.blocks()):
        key = ", ".join(f"{n}={int(v)}" for n, v in zip(tensor.keys.names, tensor.keys.array[index]))
        gradients = ", ".join(f"{p} {'x'.join(map(str, g.shape))}" for p, g in block.gradients())
        lines.append(f"    ({key}): {'x'.join(map(str, block.shape))}" + (f"  [{gradients}]" if gradients else ""))
    return "\n".join(lines)


# ---- export -----------------------------------------------------------------------------------


def add_export(parser: argparse.ArgumentParser) -> None:
    _add_model_arguments(parser)
    parser.add_argument("-o", "--output", required=True, help="the metatomic model file to write (.pt)")
    parser.add_argument("--params", metavar="FILE", help="trained parameters (a file of model.save_parameters)")
    parser.add_argument("--extensions-directory", default="extensions", metavar="DIR",
                        help="where the model's extension goes (give it to the engine; default: extensions)")
    parser.add_argument("--energy", default="energy", metavar="OUTPUT", help="the energy output (default: energy)")
    parser.add_argument("--length-unit", default="angstrom", help="length unit of the model (default: angstrom)")
    parser.add_argument("--energy-unit", default="eV", help="energy unit of the model (default: eV)")
    parser.add_argument("--backend", choices=("cpp", "llvm", "interpreter"),
                        help="how the exported model runs its kernels (default: cpp with a C++ compiler)")
    parser.add_argument("--runtime", choices=("auto", "cpp", "python"), default="auto",
                        help="the exported operator: cpp (C++, engines without Python load it), python (hosted by "
                             "mtdsl in the engine's Python), auto (cpp where the program allows; default)")


def cmd_export(args: argparse.Namespace) -> int:
    """A metatomic AtomisticModel of the program (runtime/export/atomistic.py, docs/simulation.md)."""
    if args.species is None and args.params:
        args.species = _params_species(args.params)
    model = _compile(args, backend=args.backend)
    with warnings.catch_warnings(record=True) as caught:  # the fallback's warning, as one line
        warnings.simplefilter("always", ExportWarning)
        try:
            path = model.export(args.output, extensions_directory=args.extensions_directory, output=args.energy,
                                length_unit=args.length_unit, energy_unit=args.energy_unit, runtime=args.runtime)
        except ExportError as error:
            raise CommandError(str(error)) from None
    for warning in caught:
        if issubclass(warning.category, ExportWarning):
            print(f"mtdsl export: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    print(f"{args.file} -> {path} (extension in {args.extensions_directory}, "
          f"interaction range {model.interaction_range:g})")
    return EXIT_OK


COMMANDS = [
    Command("compile", "compile a .mt file and print its IR or generated code", add_compile, cmd_compile),
    Command("run", "run a .mt model on structure files and write its outputs as .mts", add_run, cmd_run),
    Command("export", "export a .mt energy model as a metatomic AtomisticModel (ASE, i-PI, torch-sim)",
            add_export, cmd_export),
    Command("inspect", "summarize a .mts file: blocks, labels, gradients, provenance", add_inspect, cmd_inspect),
]


COMMANDS.append(CACHE_COMMAND)  # `mtdsl cache info|clear|verify` (mtdsl/cli/cache.py)

__all__ = ["COMMANDS", "EXIT_ERROR"]
