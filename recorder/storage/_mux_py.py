"""Pure-Python fragmented-MP4 muxer: the twin of the native muxer (`native/mux.c`), same API and bytes.

This docstring is the specification of the muxer's rules. They are written once, as code, in
`recorder/storage/_mux_rules.py`, which both twins run (the native one compiled into
`native/_mux_c.pyx`); the twins differ only in how they scan Annex B and write moof + mdat, and the
differential tests hold them to identical bytes for identical input. The
init segment (`ftyp` + `moov`, built once per segment from the SPS and the AudioSpecificConfig) is
built by this module for both twins: it is not on the hot path, and one builder means one place
to get ISO/IEC 14496-12/-14/-15 right.

Input. Access units in push order: video is H.264 Annex B, audio one raw AAC frame. ``pts_us`` is
on one monotonic clock for both streams. Video may carry ``dts_us`` (decode time) when the encoder
emits B-frames; without it, dts = pts (no reordering). Decode order is push order. An access unit
of no bytes, on either stream, is refused with the ring's EmptyAccessUnitError.

Timeline. The first video keyframe's dts is the origin (time 0 of the recording); anything pushed
before it, and audio older than it, is dropped and counted in ``dropped_units``. Video uses a
90 kHz timescale (the MPEG clock: exact for 24/25/30/50/60 and 29.97 fps, and microseconds round
to it within 5.6 us); audio uses its sample rate, so each AAC frame is exactly 1024 ticks.
``ticks(us) = (us * timescale + 500000) // 1000000`` of a time relative to the origin. Ticks must
increase strictly within each stream, and a video pts may not precede its dts.

Durations. A video sample lasts until the next video dts; the last video sample of the recording
(at close) lasts as long as the one before it (3000 ticks, 1/30 s, if it is the only one). An audio
sample lasts until the next audio sample of the same fragment; the last audio sample of a fragment
lasts one AAC frame (1024 samples, or 960 if the AudioSpecificConfig says so); the next fragment's
``tfdt`` puts audio back on its pts, so audio never drifts.

Cuts. A video keyframe starts a new segment when ``segment_us`` has passed since the segment's
first dts, or when it carries SPS/PPS different from the segment's; otherwise it starts a new
fragment. A non-keyframe starts a new fragment when ``fragment_us`` has passed since the
fragment's first dts (a long GOP is split; segments are still cut only at keyframes). A fragment is
returned (a `MuxedFragment`) when the video AU that ends it arrives, and by ``close()``.
Audio goes into the fragment open when it is pushed. A fragment's first/last pts are those of its
video frames: video decides the cuts, and with closed GOPs a segment's frames all come after the
previous segment's, whereas audio pushed around a cut can straddle it by an audio frame (or by the
encoder's reorder delay with B-frames).

Layout. Init segment: ``ftyp``, ``moov`` (``mvhd``, a ``trak`` per track, ``mvex``, and a ``uuid``
box holding the origin in pts_us). Fragment: ``moof`` (``mfhd`` with a sequence number counting
fragments of the recording from 1; a ``traf`` per track with samples: ``tfhd``
default-base-is-moof, ``tfdt`` version 1, ``trun``) then ``mdat`` with the video samples, then the
audio samples. Video samples are the AU's
NAL units, each with a 4-byte big-endian length instead of its start code, trailing zero bytes
removed, empty NAL units skipped; SPS/PPS stay in-band and also go into ``avcC``.
"""

from __future__ import annotations

import struct

from ._mux_format import (  # the format, shared with the rules and the native twin
    VIDEO_TIMESCALE, DEFAULT_VIDEO_TICKS, VIDEO_TRACK_ID, AUDIO_TRACK_ID, NAL_SPS, NAL_PPS,
    MAX_FRAGMENT_BYTES, SAMPLE_FLAGS_SYNC, SAMPLE_FLAGS_NON_SYNC, TFHD_DEFAULT_BASE_IS_MOOF,
    TRUN_VIDEO, TRUN_CTO, TRUN_AUDIO, START_CODE, MuxError, AnnexBError, ParameterSetError,
    AudioConfigError, MuxTimestampError, MuxClosedError, MuxedFragment, annexb_error,
    missing_parameter_sets_error, timestamp_error, pts_before_dts_error,
    audio_to_video_only_error, stream_error, closed_error, fragment_too_large_error,
    check_construction, SpsInfo, parse_sps, AudioInfo, parse_audio_specific_config, init_segment,
    split_annexb,
)
from ._mux_rules import MuxRules

__all__ = [
    "VIDEO_TIMESCALE",
    "DEFAULT_VIDEO_TICKS",
    "VIDEO_TRACK_ID",
    "AUDIO_TRACK_ID",
    "NAL_SPS",
    "NAL_PPS",
    "MAX_FRAGMENT_BYTES",
    "SAMPLE_FLAGS_SYNC",
    "SAMPLE_FLAGS_NON_SYNC",
    "TFHD_DEFAULT_BASE_IS_MOOF",
    "TRUN_VIDEO",
    "TRUN_CTO",
    "TRUN_AUDIO",
    "START_CODE",
    "MuxError",
    "AnnexBError",
    "ParameterSetError",
    "AudioConfigError",
    "MuxTimestampError",
    "MuxClosedError",
    "MuxedFragment",
    "annexb_error",
    "missing_parameter_sets_error",
    "timestamp_error",
    "pts_before_dts_error",
    "audio_to_video_only_error",
    "stream_error",
    "closed_error",
    "fragment_too_large_error",
    "check_construction",
    "SpsInfo",
    "parse_sps",
    "AudioInfo",
    "parse_audio_specific_config",
    "init_segment",
    "split_annexb",
    "FragmentedMp4Muxer",
]


class FragmentedMp4Muxer(MuxRules):
    """Turns access units into standalone fragmented-MP4 segments (see the module docstring).

    ``audio_config``: the AAC AudioSpecificConfig (encoder extradata), or None for video only.
    ``segment_seconds``: a segment is cut at the first keyframe after this long.
    ``fragment_seconds``: a fragment is split after this long even inside a GOP.

    The rules (cuts, timestamps, init segments) are `MuxRules`, shared with the native twin;
    this class keeps the pending fragment's samples and writes its bytes.
    """

    def __init__(self, audio_config: bytes | None = None, *, segment_seconds: float = 30.0,
                 fragment_seconds: float = 2.0) -> None:
        super().__init__(audio_config, segment_seconds=segment_seconds,
                         fragment_seconds=fragment_seconds)
        self._nals: list[tuple[int, int]] = []
        self._v_parts: list[bytes | memoryview] = []
        self._v_bytes = 0
        self._v_ticks: list[int] = []
        self._v_cto: list[int] = []
        self._v_sizes: list[int] = []
        self._v_keys: list[bool] = []
        self._a_parts: list[bytes | memoryview] = []
        self._a_bytes = 0
        self._a_ticks: list[int] = []
        self._a_sizes: list[int] = []

    def _scan(self, payload: bytes, pts_us: int, key: bool, sps: list[bytes],
              pps: list[bytes]) -> None:
        nals = self._nals = split_annexb(payload, pts_us)
        if key:
            sps += [payload[s:e] for s, e in nals if payload[s] & 0x1F == NAL_SPS]
            pps += [payload[s:e] for s, e in nals if payload[s] & 0x1F == NAL_PPS]

    def _video_count(self) -> int:
        return len(self._v_ticks)

    def _add_video(self, payload: bytes, ticks: int, cto: int, key: bool) -> None:
        size = 0
        parts = self._v_parts
        view = memoryview(payload)
        for start, end in self._nals:
            parts.append((end - start).to_bytes(4, "big"))
            parts.append(view[start:end])
            size += 4 + end - start
        self._v_bytes += size
        self._v_ticks.append(ticks)
        self._v_cto.append(cto)
        self._v_sizes.append(size)
        self._v_keys.append(key)

    def _add_audio(self, payload: bytes, ticks: int) -> None:
        self._a_parts.append(payload)
        self._a_bytes += len(payload)
        self._a_ticks.append(ticks)
        self._a_sizes.append(len(payload))

    def _write_fragment(self, head: bytes, sequence: int, last_video_ticks: int) -> bytes:
        v_count, a_count = len(self._v_ticks), len(self._a_ticks)
        v_cto = any(self._v_cto)
        v_trun = 20 + v_count * (16 if v_cto else 12)
        a_trun = 20 + a_count * 8
        traf_v = 8 + 16 + 20 + v_trun + self._traf_tail_size(VIDEO_TRACK_ID)
        traf_a = 8 + 16 + 20 + a_trun + self._traf_tail_size(AUDIO_TRACK_ID) if a_count else 0
        moof_size = 8 + 16 + traf_v + traf_a
        mdat_size = 8 + self._v_bytes + self._a_bytes
        if mdat_size > MAX_FRAGMENT_BYTES:
            raise fragment_too_large_error(mdat_size)
        boxes = [struct.pack(">I4sI4sII", moof_size, b"moof", 16, b"mfhd", 0, sequence)]
        ticks = self._v_ticks
        durations = [b - a for a, b in zip(ticks, ticks[1:])]
        durations.append(last_video_ticks)
        flags = [SAMPLE_FLAGS_SYNC if k else SAMPLE_FLAGS_NON_SYNC for k in self._v_keys]
        boxes.append(struct.pack(">I4sI4sIII4sIQI4sIII", traf_v, b"traf", 16, b"tfhd",
                                 TFHD_DEFAULT_BASE_IS_MOOF, VIDEO_TRACK_ID, 20, b"tfdt",
                                 1 << 24, ticks[0], v_trun, b"trun",
                                 TRUN_VIDEO | TRUN_CTO if v_cto else TRUN_VIDEO, v_count,
                                 moof_size + 8))
        if v_cto:
            entries = [x for row in zip(durations, self._v_sizes, flags, self._v_cto) for x in row]
        else:
            entries = [x for row in zip(durations, self._v_sizes, flags) for x in row]
        boxes.append(struct.pack(f">{len(entries)}I", *entries))
        boxes.append(self._traf_tail(VIDEO_TRACK_ID, 8 + 16 + 8 + 16 + 20 + v_trun))
        if a_count:
            ticks = self._a_ticks
            durations = [b - a for a, b in zip(ticks, ticks[1:])]
            durations.append(self._audio_frame)
            boxes.append(struct.pack(">I4sI4sIII4sIQI4sIII", traf_a, b"traf", 16, b"tfhd",
                                     TFHD_DEFAULT_BASE_IS_MOOF, AUDIO_TRACK_ID, 20, b"tfdt",
                                     1 << 24, ticks[0], a_trun, b"trun", TRUN_AUDIO, a_count,
                                     moof_size + 8 + self._v_bytes))
            entries = [x for row in zip(durations, self._a_sizes) for x in row]
            boxes.append(struct.pack(f">{len(entries)}I", *entries))
            boxes.append(self._traf_tail(AUDIO_TRACK_ID,
                                         8 + 16 + traf_v + 8 + 16 + 20 + a_trun))
        boxes.append(struct.pack(">I4s", mdat_size, b"mdat"))
        data = b"".join([head, *boxes, *self._v_parts, *self._a_parts])
        self._start_fragment()
        return data

    def _traf_tail_size(self, track_id: int) -> int:
        """Bytes of the boxes that end a track's traf after its trun: none in the clear (the
        encrypting muxer's saiz, saio and senc, _mux_cenc)."""
        return 0

    def _traf_tail(self, track_id: int, at: int) -> bytes:
        """Those boxes, the first of them ``at`` bytes from the start of the moof."""
        return b""

    def _start_fragment(self) -> None:
        """Forget the samples of the fragment just written."""
        self._v_parts = []
        self._v_bytes = 0
        self._v_ticks = []
        self._v_cto = []
        self._v_sizes = []
        self._v_keys = []
        self._a_parts = []
        self._a_bytes = 0
        self._a_ticks = []
        self._a_sizes = []
