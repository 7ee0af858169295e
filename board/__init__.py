"""Hardware layer (installed as ``recorder.board``): record button, LEDs, beeper and dock sense.

Built on gpiozero with the pin factory injected; see issue 5. Nothing here yet.
"""
