"""Helpers shared by the tests (and the benches): twin implementations, synthetic media, segments
written by PyAV, station fixtures. Test modules import them from here, never from one another."""
