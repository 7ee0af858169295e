"""One HTTP client for the tests' plain requests to the servers they start.

``httpx.get`` and its siblings make a new client for every call, and a new client loads the CA
bundle: 28 ms of CPU, which a loop waiting for a station to start paid twenty times a second,
against the station it waited for, and which 200 examples of the API fuzzer paid 200 times.
``http`` is made once per process, and opens a new connection for every request (no
keep-alive), as those calls did: no request rides on a connection an earlier answer closed.
"""

from __future__ import annotations

import httpx

http = httpx.Client(timeout=5.0, limits=httpx.Limits(max_keepalive_connections=0))
