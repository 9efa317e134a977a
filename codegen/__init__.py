"""Backends that render the loop IR as code (C++ through jinja2, LLVM IR through llvmlite)."""

from .build import render  # noqa: F401 - `mtdsl.codegen.render(module, "cpp" | "llvm" | "nest")`: the code a model runs
