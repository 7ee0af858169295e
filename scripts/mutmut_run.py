"""Runs mutmut's command line (for scripts/mutation) with the one adaptation pytest 9 needs.

mutmut 3.8.0 records which test covers which function under the name ``item._nodeid``, an
attribute pytest 9 no longer has (its public ``nodeid`` is the same string); without this its
first run stops with AttributeError. Remove once a mutmut release reads ``nodeid``.
"""

from __future__ import annotations

import sys

from _pytest import nodes

if not hasattr(nodes.Node, "_nodeid"):
    nodes.Node._nodeid = property(lambda self: self.nodeid)  # type: ignore[attr-defined]

from mutmut.__main__ import cli  # noqa: E402  (after the adaptation, which it must see)

if __name__ == "__main__":
    sys.exit(cli())
