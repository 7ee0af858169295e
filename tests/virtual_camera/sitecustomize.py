"""Loaded by Python at start-up under scripts/with-virtual-camera: arms the virtual camera's shims.

The shims (`virtual_camera_shims`) adapt picamera2 to libcamera's virtual pipeline on a machine
with no Raspberry Pi hardware; they are applied when picamera2 is first imported, so a process
that never imports it is untouched.
"""

import virtual_camera_shims

virtual_camera_shims.install()
