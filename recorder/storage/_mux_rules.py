"""The muxer's rules, written once for both twins: when to cut, and how time is counted.

`MuxRules` holds the state machine described in recorder/storage/_mux_py.py: which access units
are refused or dropped, the origin, ticks and composition offsets, when a fragment or a segment
ends, and the init segment of each segment. It leaves the bytes to a subclass, through five hooks:
``_scan`` (find the NAL units of a video access unit and its parameter sets), ``_video_count``,
``_add_video``, ``_add_audio`` and ``_write_fragment`` (moof + mdat of the pending samples).

The pure twin (`_mux_py.FragmentedMp4Muxer`) subclasses this module as plain Python. The native
twin (native/_mux_c.pyx) includes this very file, so Cython compiles the same rules into a C
extension type with typed fields, and its subclass only scans and writes, in C. The ``cython``
markers below are what makes that compiled version fast; without Cython they do nothing.
"""

from typing import TYPE_CHECKING, TypeAlias, TypeVar

from . import _mux_format as spec  # the format: errors, constants, init segments

if TYPE_CHECKING:  # mypy reads the markers as they behave in plain Python: they do nothing
    _T = TypeVar("_T")

    class cython:
        longlong: TypeAlias = int
        bint: TypeAlias = bool
        Py_ssize_t: TypeAlias = int

        @staticmethod
        def cclass(thing: _T) -> _T:
            return thing

        ccall = cfunc = cclass
else:
    try:
        import cython
    except ImportError:  # plain Python without Cython installed: the markers do nothing
        class cython:
            longlong = int
            bint = bool
            Py_ssize_t = int

            @staticmethod
            def cclass(thing):
                return thing

            ccall = cfunc = cclass

from ..capture.access_unit import AUDIO, VIDEO
from ..errors import empty_access_unit_error

NalList: TypeAlias = "list[bytes]"  # an alias: Cython passes it as an object, mypy checks it


@cython.cfunc
def _ticks(us: cython.longlong, timescale: cython.longlong) -> cython.longlong:
    """``(us * timescale + 500000) // 1000000``: microseconds to ticks of a timescale."""
    return (us * timescale + 500_000) // 1_000_000


@cython.cclass
class MuxRules:
    """The state machine of a fragmented-MP4 muxer; a subclass supplies the byte hooks."""

    _audio_config: bytes | None
    _audio_rate: cython.longlong
    _audio_frame: cython.longlong
    _segment_us: cython.longlong
    _fragment_us: cython.longlong
    _closed: cython.bint
    _started: cython.bint
    _fragment_is_first: cython.bint
    _origin_us: cython.longlong
    _segment_start_us: cython.longlong
    _fragment_start_us: cython.longlong
    _sps: list[bytes]
    _pps: list[bytes]
    _init: bytes
    _segment: cython.longlong
    _sequence: cython.longlong
    _last_v_ticks: cython.longlong
    _last_a_ticks: cython.longlong
    _last_v_dts_us: cython.longlong
    _last_a_pts_us: cython.longlong
    _last_v_delta: cython.longlong
    _min_pts: cython.longlong
    _max_pts: cython.longlong
    _dropped: cython.longlong

    def __init__(self, audio_config: bytes | None = None, *, segment_seconds: float = 30.0,
                 fragment_seconds: float = 2.0) -> None:
        self._segment_us, self._fragment_us = spec.check_construction(
            audio_config, segment_seconds, fragment_seconds)
        self._audio_config = None if audio_config is None else bytes(audio_config)
        self._audio_rate = 0
        self._audio_frame = 0
        if self._audio_config is not None:
            info = spec.parse_audio_specific_config(self._audio_config)
            self._audio_rate, self._audio_frame = info.sample_rate, info.frame_samples
        self._closed = False
        self._started = False
        self._origin_us = 0
        self._sps = []
        self._pps = []
        self._init = b""
        self._segment = 0
        self._sequence = 0
        self._segment_start_us = 0
        self._fragment_start_us = 0
        self._fragment_is_first = True
        self._last_v_ticks = -1
        self._last_a_ticks = -1
        self._last_v_dts_us = 0
        self._last_a_pts_us = 0
        self._last_v_delta = spec.DEFAULT_VIDEO_TICKS
        self._min_pts = 0
        self._max_pts = 0
        self._dropped = 0

    @property
    def closed(self) -> bool:
        return bool(self._closed)

    @property
    def segment(self) -> int:
        """1-based number of the segment being written (0 before the first keyframe)."""
        return int(self._segment)

    @property
    def dropped_units(self) -> int:
        """Access units dropped because they came before the first keyframe (or its audio)."""
        return int(self._dropped)

    def push(self, stream: int, pts_us: cython.longlong, is_keyframe: bool,
             payload: bytes | bytearray | memoryview,
             dts_us: int | None = None) -> "spec.MuxedFragment | None":
        """Add one access unit; return the fragment it completed, if any.

        ``dts_us``: the decode time of a video unit when the encoder reorders frames
        (B-frames); None means dts = pts. Audio ignores it.
        """
        if self._closed:
            raise spec.closed_error()
        if stream != VIDEO and stream != AUDIO:
            raise spec.stream_error(stream)
        if stream == AUDIO and self._audio_config is None:
            raise spec.audio_to_video_only_error()
        # a bytearray could change before the fragment is written: keep an immutable copy
        data: bytes = payload if type(payload) is bytes else bytes(memoryview(payload))
        if not data:  # refused as the ring refuses it: no encoder emits an empty access unit
            raise empty_access_unit_error(stream, pts_us)
        if stream == VIDEO:
            return self._push_video(pts_us, bool(is_keyframe), data,
                                    pts_us if dts_us is None else dts_us)
        self._push_audio(pts_us, data)
        return None

    @cython.ccall
    def _push_video(self, pts_us: cython.longlong, key: cython.bint, payload: bytes,
                    dts_us: cython.longlong) -> "spec.MuxedFragment | None":
        ticks: cython.longlong
        delta: cython.longlong
        sps: list[bytes] = []
        pps: list[bytes] = []
        self._scan(payload, pts_us, key, sps, pps)
        if pts_us < dts_us:
            raise spec.pts_before_dts_error(pts_us, dts_us)
        done = None
        if not self._started:
            if not key:
                self._dropped += 1
                return None
            if not sps or not pps:
                raise spec.missing_parameter_sets_error(pts_us)
            self._origin_us = dts_us
            ticks = 0
        else:
            ticks = _ticks(dts_us - self._origin_us, spec.VIDEO_TIMESCALE)
            if ticks <= self._last_v_ticks:
                raise spec.timestamp_error(VIDEO, "dts_us", dts_us, self._last_v_dts_us)
            changed = (sps or self._sps) != self._sps or (pps or self._pps) != self._pps
            delta = ticks - self._last_v_ticks
            if key and (changed or dts_us - self._segment_start_us >= self._segment_us):
                done = self._finish_fragment(delta, True)
            elif key or dts_us - self._fragment_start_us >= self._fragment_us:
                done = self._finish_fragment(delta, False)
            self._last_v_delta = delta
        if not self._started or (done is not None and done.ends_segment):
            self._sps = sps or self._sps
            self._pps = pps or self._pps
            self._open_segment(dts_us)
        self._last_v_ticks = ticks
        self._last_v_dts_us = dts_us
        if self._video_count() == 0:
            self._fragment_start_us = dts_us
            self._min_pts = self._max_pts = pts_us
        elif pts_us < self._min_pts:
            self._min_pts = pts_us
        elif pts_us > self._max_pts:
            self._max_pts = pts_us
        cto: cython.longlong = _ticks(pts_us - self._origin_us, spec.VIDEO_TIMESCALE) - ticks
        self._add_video(payload, ticks, cto, key)
        return done

    @cython.ccall
    def _open_segment(self, dts_us: cython.longlong) -> None:
        self._init = spec.init_segment(self._sps, self._pps, self._audio_config, self._origin_us)
        self._segment += 1
        self._segment_start_us = dts_us
        self._fragment_is_first = True
        self._started = True

    @cython.ccall
    def _push_audio(self, pts_us: cython.longlong, payload: bytes) -> None:
        ticks: cython.longlong
        if not self._started or pts_us < self._origin_us:
            self._dropped += 1
            return
        ticks = _ticks(pts_us - self._origin_us, self._audio_rate)
        if ticks <= self._last_a_ticks:
            raise spec.timestamp_error(AUDIO, "pts_us", pts_us, self._last_a_pts_us)
        self._last_a_ticks = ticks
        self._last_a_pts_us = pts_us
        self._add_audio(payload, ticks)

    def close(self) -> "spec.MuxedFragment | None":
        """End the recording: return its last fragment (None if nothing was muxed). Idempotent."""
        if self._closed:
            return None
        self._closed = True
        if self._video_count() == 0:
            return None
        return self._finish_fragment(self._last_v_delta, True)

    @cython.ccall
    def _finish_fragment(self, last_video_ticks: cython.longlong,
                         ends_segment: cython.bint) -> "spec.MuxedFragment":
        head: bytes = self._init if self._fragment_is_first else b""
        data: bytes = self._write_fragment(head, self._sequence + 1, last_video_ticks)
        self._sequence += 1
        fragment = spec.MuxedFragment(self._segment, self._sequence, data,
                                      bool(self._fragment_is_first), bool(ends_segment),
                                      self._min_pts, self._max_pts)
        self._fragment_is_first = False
        return fragment

    # -- the byte hooks ---------------------------------------------------------------------

    @cython.ccall
    def _scan(self, payload: bytes, pts_us: cython.longlong, key: cython.bint,
              sps: NalList, pps: NalList) -> None:
        """Find the NAL units of a video access unit (raise AnnexBError if it is not Annex B);
        if ``key``, append its SPS and PPS NAL units to ``sps`` and ``pps``."""
        raise NotImplementedError

    @cython.ccall
    def _video_count(self) -> cython.Py_ssize_t:
        """Video samples in the pending fragment."""
        raise NotImplementedError

    @cython.ccall
    def _add_video(self, payload: bytes, ticks: cython.longlong, cto: cython.longlong,
                   key: cython.bint) -> None:
        """Append the access unit last given to ``_scan`` as a video sample."""
        raise NotImplementedError

    @cython.ccall
    def _add_audio(self, payload: bytes, ticks: cython.longlong) -> None:
        """Append one audio sample."""
        raise NotImplementedError

    @cython.ccall
    def _write_fragment(self, head: bytes, sequence: cython.longlong,
                        last_video_ticks: cython.longlong) -> bytes:
        """``head`` + moof + mdat of the pending samples; empty the pending fragment."""
        raise NotImplementedError

