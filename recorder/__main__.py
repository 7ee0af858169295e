"""`python -m recorder` is the `bwv` command."""

import sys

try:
    from .cli import command
except KeyboardInterrupt:  # Ctrl-C while starting up: nothing was begun, so no traceback
    sys.exit(130)

command()
