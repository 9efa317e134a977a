"""`python -m mtdsl ...`: the `mtdsl` command line (mtdsl/cli/)."""

import sys

from .cli import main

sys.exit(main())
