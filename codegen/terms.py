"""Moved to `mtdsl/ir/passes/terms.py` (the gradient terms as kernels) and `codegen/derived.py`
(`extended_module`: the derived kernels a native module is rendered with, fused), issue #15.

This module keeps code written against the old path (branches in flight) working. Import from
the new homes in new code.
"""

from mtdsl.ir.passes.terms import *  # noqa: F401,F403
from mtdsl.ir.passes.terms import STORED_ORDER, _into_sums, _Lowering, _substituted_domain  # noqa: F401

from .derived import extended_module  # noqa: F401
