"""Capture, the first layer of the data path: the camera and the microphone, the access units
they produce and the monotonic clock that stamps them. Imports only the foundation."""
