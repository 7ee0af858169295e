"""Redaction of a recording for disclosure (a request from the public): every face the detector
finds is masked, tracked across frames, unless a track is excluded (the requester); audio
ranges are muted or bleeped; the result is one MP4 re-encoded with libx264 and AAC.

The data path, one module each: ``source`` (the recording's segments, decrypted as for an
export), ``detect`` (faces in a frame), ``track`` (detections linked across frames, gaps
bridged, boxes padded), ``plan`` (the operations, as data: what the audit log and the signed
report record), ``mask`` (what replaces a box's pixels), ``audio`` (mute, bleep), ``render``
(decode, mask, encode, write), ``credentials`` (C2PA Content Credentials on the copy) and
``report`` (the station-signed report beside it). ``redact`` (recorder.station.redact.job)
joins them for `bwv station redact` and audits the result.
"""

from __future__ import annotations

from .job import RedactionResult, redact_recording
from .plan import AudioRange, Plan, parse_range

__all__ = ["AudioRange", "Plan", "RedactionResult", "parse_range", "redact_recording"]
