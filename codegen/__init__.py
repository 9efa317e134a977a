"""Backends that render the loop IR as code (C++ through jinja2, LLVM IR through llvmlite)."""


def render(module, emit: str, dtype: str = "float64") -> str:
    """The generated code of `module` (`mtdsl compile --emit cpp|llvm`): C++ source or LLVM IR."""
    if emit == "cpp":
        from .cpp import render as render_cpp

        return render_cpp(module, dtype)
    if emit == "llvm":
        from .llvm import render as render_llvm

        return render_llvm(module, dtype)
    raise ValueError(f"unknown code to emit {emit!r} (cpp or llvm)")
