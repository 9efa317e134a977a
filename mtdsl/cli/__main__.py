"""`python -m mtdsl.cli ...`: the `mtdsl` command line."""

import sys

from .app import main

sys.exit(main())
