"""Build script: compiles the native twins of the accelerated pieces under RECORDER_NATIVE.

auto (default): a piece that fails to compile is left out, with a loud line in the build log,
and the install falls back to its pure-Python twin. required: any failure fails the build.
off: nothing is compiled. The policy is parsed by recorder/_native.py, the same code the
package uses at import time.
"""

import importlib.util
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def _load_policy_module():
    spec = importlib.util.spec_from_file_location("_bwv_native_policy", HERE / "recorder" / "_native.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class is made
    spec.loader.exec_module(module)
    return module


native = _load_policy_module()
POLICY = native.policy_from_environ()

# Sources of each native module named in recorder._native.PIECES.
SOURCES = {
    "recorder.ring._ring_c": ["native/_ring_c.pyx", "native/ring.c"],
    "recorder.storage._mux_c": ["native/_mux_c.pyx", "native/mux.c"],
    "recorder.integrity._sha256_c": ["native/_sha256_c.pyx", "native/sha256.c"],
}

# Libraries a native module links: the muxer encrypts ('cenc') with OpenSSL's libcrypto, whose
# AES uses AES-NI or the ARMv8 crypto extensions (Debian: libssl-dev to build).
LIBRARIES = {"recorder.storage._mux_c": ["crypto"]}


def _shout(message):
    bar = "*" * 78
    print(f"\n{bar}\n* bwv-recorder: {message}\n{bar}\n", file=sys.stderr, flush=True)


def _extensions():
    if POLICY is native.NativePolicy.OFF:
        _shout("RECORDER_NATIVE=off: building no native modules; the install is pure Python.")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        if POLICY is native.NativePolicy.REQUIRED:
            raise SystemExit(f"RECORDER_NATIVE=required but Cython is missing: {exc}")
        _shout(f"Cython is missing ({exc}): installing the pure-Python fallback only.")
        return []
    extensions = [
        Extension(piece.native_module, SOURCES[piece.native_module], include_dirs=["native"],
                  extra_compile_args=["-O2", "-std=c99", "-D_POSIX_C_SOURCE=200809L"],
                  libraries=LIBRARIES.get(piece.native_module, []))
        for piece in native.PIECES.values()
    ]
    try:
        return cythonize(extensions, build_dir="build/cython", quiet=True,
                         compiler_directives={"language_level": "3"})
    except Exception as exc:
        if POLICY is native.NativePolicy.REQUIRED:
            raise
        _shout(f"Cython could not translate the native sources ({exc}): installing the "
               "pure-Python fallback only.")
        return []


class BuildNative(build_ext):
    """build_ext that, under auto, leaves out a module that fails to compile, loudly."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing entirely: setuptools raises at setup time
            if POLICY is native.NativePolicy.REQUIRED:
                raise
            _shout(f"native build failed ({exc}); installing the pure-Python fallback only. "
                   "Set RECORDER_NATIVE=required to make this an error.")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            if POLICY is native.NativePolicy.REQUIRED:
                raise
            _shout(f"native module {ext.name} NOT built ({exc}); its pure-Python twin will be "
                   "used. Install a C compiler (apt-get install build-essential python3-dev) and "
                   "reinstall, or set RECORDER_NATIVE=required to make this an error.")


setup(
    packages=[*find_packages(include=["recorder", "recorder.*"]), "recorder.board"],
    package_dir={"recorder.board": "board"},
    # board/rpi/ (wiring, systemd unit) is documentation and deployment, not code: it goes in the
    # sdist (MANIFEST.in) but not in the installed package.
    include_package_data=False,
    # the station's web assets (recorder/station/static/): served from the installed package
    # and the catalogue's migration template and notes (its revisions are modules)
    package_data={"recorder": ["py.typed"], "recorder.station": ["static/*.css", "static/*.js"],
                  "recorder.station.migrations": ["script.py.mako", "README.md"]},
    ext_modules=_extensions(),
    cmdclass={"build_ext": BuildNative},
)
