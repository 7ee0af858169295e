"""`python -m recorder` is the `bwv` command. A Ctrl-C while it starts up (here, importing the
command line) ends it quietly: the package put ``recorder.stop_quietly`` in place first."""

from .cli import command

command()
