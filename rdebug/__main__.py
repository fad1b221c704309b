"""`python -m rdebug` is the `rdebug` command."""

import sys

from rdebug.cli import main

sys.exit(main())
