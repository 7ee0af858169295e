"""Synthetic fragmented MP4 files, built box by box: every layout the BMFF reader must understand
(``synthetic_files`` draws them for hypothesis), for the reader's tests and the readers' twins."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from recorder.integrity import bmff


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


@dataclass(frozen=True)
class SynthTrack:
    track_id: int
    handler: bytes
    timescale: int
    trex_duration: int


@dataclass(frozen=True)
class SynthRun:
    track_id: int
    decode_time: int
    durations: tuple[int, ...]
    sizes: tuple[int, ...]
    offsets: tuple[int, ...]


def synth_moov(tracks: list[SynthTrack]) -> bytes:
    traks = []
    for track in tracks:
        entry = b"avc1" if track.handler == b"vide" else b"mp4a"
        traks.append(box(
            b"trak",
            full_box(b"tkhd", 0, 3, struct.pack(">III", 0, 0, track.track_id), bytes(68)),
            box(b"mdia",
                full_box(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, track.timescale, 0),
                         bytes(4)),
                full_box(b"hdlr", 0, 0, bytes(4), track.handler, bytes(13)),
                box(b"minf", box(b"stbl", full_box(b"stsd", 0, 0, struct.pack(">I", 1),
                                                    box(entry, bytes(8))))))))
    trexes = [full_box(b"trex", 0, 0, struct.pack(">IIIII", t.track_id, 1, t.trex_duration,
                                                  0, 0)) for t in tracks]
    return box(b"moov", full_box(b"mvhd", 0, 0, bytes(96)), *traks, box(b"mvex", *trexes))


def synth_fragment(sequence: int, runs: list[SynthRun], file_offset: int, options: dict[str, Any],
                   tracks: dict[int, SynthTrack]) -> bytes:
    payloads = [bytes((run.track_id * 16 + i) % 256 for i in range(sum(run.sizes)))
                for run in runs]

    def build_moof(data_start: int) -> bytes:
        trafs, position = [], data_start
        for run, payload in zip(runs, payloads):
            flags, fields = 0, b""
            if options["base"] == "explicit":
                flags |= bmff.TFHD_BASE_DATA_OFFSET
                fields += struct.pack(">Q", position)
            else:
                flags |= bmff.TFHD_DEFAULT_BASE_IS_MOOF
            uniform = len(set(run.durations)) <= 1
            where = options["durations"] if uniform else "trun"
            if where == "tfhd" and run.durations:
                flags |= bmff.TFHD_DEFAULT_SAMPLE_DURATION
                fields += struct.pack(">I", run.durations[0])
            if where == "trex" and run.durations and \
                    run.durations[0] != tracks[run.track_id].trex_duration:
                where = "trun"
            trun_flags = bmff.TRUN_SAMPLE_SIZE | bmff.TRUN_SAMPLE_COMPOSITION_OFFSET
            if options["base"] == "moof":
                trun_flags |= bmff.TRUN_DATA_OFFSET
            if where == "trun":
                trun_flags |= bmff.TRUN_SAMPLE_DURATION
            entries = b""
            for duration, size, offset in zip(run.durations, run.sizes, run.offsets):
                if where == "trun":
                    entries += struct.pack(">I", duration)
                entries += struct.pack(">I", size)
                entries += struct.pack(">i" if options["trun_version"] else ">I", offset)
            data_offset = struct.pack(">i", position - file_offset) \
                if options["base"] == "moof" else b""
            tfdt_version = options["tfdt_version"]
            trafs.append(box(
                b"traf",
                full_box(b"tfhd", 0, flags, struct.pack(">I", run.track_id), fields),
                full_box(b"tfdt", tfdt_version, 0,
                         struct.pack(">Q" if tfdt_version else ">I", run.decode_time)),
                full_box(b"trun", options["trun_version"], trun_flags,
                         struct.pack(">I", len(run.durations)), data_offset, entries)))
            position += len(payload)
        return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), *trafs)

    moof_size = len(build_moof(0))
    mdat_header = 16 if options["large_mdat"] else 8
    moof = build_moof(file_offset + moof_size + mdat_header)
    body = b"".join(payloads)
    if options["large_mdat"]:
        mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + len(body)) + body
    else:
        mdat = box(b"mdat", body)
    return moof + mdat


# Strategies are built once, here: hypothesis validates and labels a strategy each time one is
# made, which inside the draw loops below cost more than the drawing.
_TRACK_COUNTS = st.integers(1, 2)
_TIMESCALES = st.sampled_from([1000, 15360, 48000, 90000])
_TREX_DURATIONS = st.integers(0, 3000)
_BASES = st.sampled_from(["moof", "explicit"])
_DURATION_PLACES = st.sampled_from(["trun", "tfhd", "trex"])
_VERSIONS = st.integers(0, 1)
_BOOLEANS = st.booleans()
_DECODE_TIMES = {0: st.integers(0, 2**31), 1: st.integers(0, 2**33)}
_FRAGMENT_COUNTS = st.integers(1, 4)
_SAMPLE_COUNTS = st.integers(1, 6)
_DURATIONS = st.integers(1, 3000)
_SIZES = st.integers(0, 40)
_OFFSETS = {0: st.integers(0, 1000), 1: st.integers(-1000, 1000)}


@st.composite
def synthetic_files(draw: st.DrawFn) -> tuple[bytes, list[SynthTrack], list[list[SynthRun]]]:
    track_count = draw(_TRACK_COUNTS)
    tracks = [SynthTrack(i + 1, b"vide" if i == 0 else b"soun", draw(_TIMESCALES),
                         draw(_TREX_DURATIONS)) for i in range(track_count)]
    options = {"base": draw(_BASES),
               "durations": draw(_DURATION_PLACES),
               "trun_version": draw(_VERSIONS),
               "tfdt_version": draw(_VERSIONS),
               "large_mdat": draw(_BOOLEANS)}
    by_id = {track.track_id: track for track in tracks}
    data = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6cmfc") + synth_moov(tracks)
    decode = {track.track_id: draw(_DECODE_TIMES[options["tfdt_version"]]) for track in tracks}
    offsets = _OFFSETS[options["trun_version"]]  # version 1 composition offsets are signed
    fragments = []
    for sequence in range(1, draw(_FRAGMENT_COUNTS) + 1):
        runs = []
        for track in tracks:
            count = draw(_SAMPLE_COUNTS)
            uniform = draw(_BOOLEANS)
            first = draw(_DURATIONS)
            durations = tuple(first if uniform else draw(_DURATIONS) for _ in range(count))
            if options["durations"] == "trex" and uniform:
                durations = (track.trex_duration or first,) * count
            runs.append(SynthRun(track.track_id, decode[track.track_id], durations,
                                 tuple(draw(_SIZES) for _ in range(count)),
                                 tuple(draw(offsets) for _ in range(count))))
            decode[track.track_id] += sum(durations)
        data += synth_fragment(sequence, runs, len(data), options, by_id)
        fragments.append(runs)
    return data, tracks, fragments
