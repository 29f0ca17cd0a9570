"""`python -m gateway ...` is the `flywheel` command."""

import sys

from gateway.cli import main

sys.exit(main())
