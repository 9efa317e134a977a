"""Backends that render the loop IR as code (C++ through jinja2, LLVM IR through llvmlite)."""
