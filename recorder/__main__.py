"""`python -m recorder` is the `bwv` command."""

import sys

from .cli import main

sys.exit(main())
