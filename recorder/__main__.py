"""`python -m recorder` is the `bwv` command."""

import signal
import sys

try:
    from .cli import command
except KeyboardInterrupt:  # Ctrl-C while starting up: nothing was begun, so no traceback
    # and none from a second Ctrl-C (a user hammering it) landing in the interpreter's exit
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(130)

command()
