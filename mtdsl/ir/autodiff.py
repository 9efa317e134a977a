"""Moved to `mtdsl/ir/passes/autodiff.py` (issue #15: the derivative passes in one home).

This alias keeps code written against the old path (branches in flight) working: it is the
moved module itself, private names included. Import `mtdsl.ir.passes.autodiff` in new code.
"""

import sys

from mtdsl.ir.passes import autodiff as _moved

sys.modules[__name__] = _moved
