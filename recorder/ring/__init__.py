"""The pre-event ring buffer: ``_ring_c`` (native) and its pure twin ``_ring_py``, chosen by
``recorder._native``; ``recorder.PreEventRing`` is the active one. Imports only capture and the
foundation."""
