"""Moved to `mtdsl/ir/passes/products.py` (issue #15: the derivative passes in one home).

This alias keeps code written against the old path (branches in flight) working: it is the
moved module itself. Import `mtdsl.ir.passes.products` in new code.
"""

import sys

from mtdsl.ir.passes import products as _moved

sys.modules[__name__] = _moved
