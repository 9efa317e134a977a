"""LLVM IR text to machine code: the host target machine, the optimization pipeline (O3, loop
and SLP vectorization), and the object cache in the kernel cache directory (`JITLibrary`).
Rendering (through the rendering cache) is `codegen/build.py`'s, the same for every backend."""

from __future__ import annotations

import threading
from typing import Optional

import llvmlite.binding as llvm

from ..cache import _atomic_write, _discard, cache_dir, object_bytes, object_payload
from ..rendered import RenderedModule
from .driver import LLVMKernel

_INIT = threading.Lock()
_READY = False


def _target_machine():
    global _READY
    with _INIT:
        if not _READY:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _READY = True
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
                                        opt=3, reloc="default", codemodel="jitdefault")


def optimize(source: str):
    """Parse, verify and optimize LLVM IR text (O3, loop and SLP vectorization, host CPU)."""
    machine = _target_machine()
    parsed = llvm.parse_assembly(source)
    parsed.verify()
    parsed.triple = llvm.get_process_triple()
    parsed.data_layout = str(machine.target_data)
    tuning = llvm.PipelineTuningOptions(speed_level=3)
    tuning.loop_vectorization = True
    tuning.slp_vectorization = True
    tuning.loop_unrolling = True
    builder = llvm.create_pass_builder(machine, tuning)
    builder.getModulePassManager().run(parsed, builder)
    return parsed, machine


def object_key(source: str) -> str:
    """The object-code cache key: the IR, llvmlite and LLVM versions, the pipeline, the host CPU."""
    import hashlib

    import llvmlite

    digest = hashlib.sha256()
    for part in (source, llvmlite.__version__, ".".join(map(str, llvm.llvm_version_info)), "O3 loop+slp mcjit",
                 llvm.get_process_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _cached_object(path) -> Optional[bytes]:
    """The object code of a cache entry; None when absent or corrupted (its sha256 prefix disagrees)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    payload = object_payload(data, path.stem)  # the hash covers the key: another entry's object is refused
    if payload is None:
        _discard(path, "hash mismatch")  # removed with a warning, rebuilt by the caller
    return payload


class JITLibrary:
    """What `CompiledModule` expects of a loaded library: one callable attribute per kernel symbol.

    The machine code goes through the kernel cache (`codegen/cache.py`'s directory, under
    `llvm/`): an entry is the sha256 of the object then the object, written atomically, so a
    reader never loads a half-written or corrupted entry (it is rebuilt). A hit skips the
    optimization passes and code generation.
    """

    def __init__(self, rendered: RenderedModule, use_cache: bool = True):
        path = cache_dir() / "llvm" / f"{object_key(rendered.source)}.o"
        cached = _cached_object(path) if use_cache else None
        self.cache_hit = cached is not None
        if cached is not None:
            machine = _target_machine()
            self.optimized = llvm.parse_assembly(rendered.source)
            self.optimized.triple = llvm.get_process_triple()
            self.optimized.data_layout = str(machine.target_data)
        else:
            self.optimized, machine = optimize(rendered.source)
        self.engine = llvm.create_mcjit_compiler(self.optimized, machine)

        def notify(module, data):
            if use_cache and not self.cache_hit:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _atomic_write(path, object_bytes(bytes(data), path.stem))
                except OSError:
                    pass  # a read-only cache: compile every time

        self.engine.set_object_cache(notify, lambda module: cached)
        self.engine.finalize_object()
        self.path = path
        for kernel in rendered.kernels.values():
            address = self.engine.get_function_address(kernel.symbol)
            setattr(self, kernel.symbol, LLVMKernel(address, kernel))
