"""C2PA Content Credentials on a redacted copy: a manifest embedded in the MP4 (c2pa-python, on
the Content Authenticity Initiative's c2pa-rs) that says what the copy was made from and how,
signed with the station's C2PA certificate (recorder.station.content_ca).

The manifest (docs/redaction.md, "Content Credentials"):
  - claim generator: the station (its id) and bwv-recorder's version;
  - one ingredient, the original recording (relationship ``parentOf``): its pixels cannot be
    embedded, so the ingredient is named by its identity: the recording id as title, an
    instance id made of the manifest's SHA-256, and the manifest's and every segment's SHA-256
    in its metadata; the same, with the device, in an assertion of its own
    (``org.bwv-recorder.original``);
  - actions (``c2pa.actions.v2``): ``c2pa.opened`` (the ingredient), ``c2pa.edited`` (what was
    masked, muted, bleeped), ``c2pa.redacted`` (reason ``c2pa.PII.present``: other people's
    faces and words) and ``c2pa.transcoded`` (re-encoded H.264/AAC), each with the station as
    software agent;
  - the hard binding c2pa-rs makes for MP4 (``c2pa.hash.bmff``): change a byte of the file
    outside the manifest and a validator reports the hash mismatch.

c2pa-python ships wheels for a few platforms only (pyproject.toml's station extra names them):
where it cannot be imported the copy is written without credentials, and ``unavailable()`` says
why, for stderr and the report.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from ... import __version__
from .plan import Plan
from .report import Original

TRANSCODED = "re-encoded as one MP4: H.264 (libx264) video and AAC audio"


def unavailable() -> str | None:
    """Why no credentials can be added here, or None when c2pa-python is importable."""
    try:
        import c2pa  # noqa: F401
    except ImportError as exc:
        return (f"c2pa-python is not installed ({exc}); it has wheels for Linux (x86-64, "
                "aarch64), macOS and Windows only")
    except OSError as exc:  # its shared library failed to load
        return f"c2pa-python could not load its library ({exc})"
    return None


def manifest(station_id: str, original: Original, plan: Plan, title: str) -> dict[str, Any]:
    """The manifest definition c2pa-python's Builder takes."""
    agent = {"name": "bwv-recorder", "version": __version__}
    edits = []
    for op in plan.operations():
        if op["op"] == "mask_faces":
            edits.append(f"every face the detector found masked ({op['mask']})")
        elif op["op"] == "exclude_track":
            edits.append(f"face track {op['track']} left visible")
        elif op["op"] == "box":
            first, last = op["keyframes"][0], op["keyframes"][-1]
            edits.append(f"a box drawn by hand masked from {first['t_ms']} to {last['t_ms']} ms "
                         f"({len(op['keyframes'])} keyframes)")
        else:
            edits.append(f"audio {op['start_ms']}-{op['end_ms']} ms {op['op']}d")
    return {
        "claim_generator_info": [{"name": f"bwv-recorder station {station_id}",
                                  "version": __version__}],
        "title": title,
        "format": "video/mp4",
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [
                {"action": "c2pa.opened", "softwareAgent": agent,
                 "parameters": {"ingredientIds": ["original"]}},
                {"action": "c2pa.edited", "softwareAgent": agent,
                 "description": "; ".join(edits)},
                {"action": "c2pa.redacted", "softwareAgent": agent, "reason": "c2pa.PII.present",
                 "description": "other people's faces and words removed for disclosure"},
                {"action": "c2pa.transcoded", "softwareAgent": agent,
                 "description": TRANSCODED},
            ]}},
            {"label": "org.bwv-recorder.original", "data": original.to_json()},
        ],
    }


def ingredient(original: Original) -> dict[str, Any]:
    """The original recording as an ingredient: its identity, not its pixels."""
    return {
        "title": original.recording_id,
        "format": "application/octet-stream",
        "relationship": "parentOf",
        "label": "original",
        "instance_id": f"bwv:recording:{original.recording_id}:manifest-sha256:"
                       f"{original.manifest_sha256}",
        "metadata": {"org.bwv-recorder.recording": original.to_json()},
    }


def add_credentials(source: Path, dest: Path, station_id: str, original: Original, plan: Plan,
                    signer_cert_pem: bytes, signer_key_pem: bytes, title: str) -> None:
    """Write ``source`` (an MP4) to ``dest`` (a new file, 0600) with the signed manifest in it.
    Raises c2pa.C2paError, ImportError (see ``unavailable``)."""
    import c2pa

    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, signer_cert_pem, signer_key_pem, None)
    with c2pa.Signer.from_info(info) as signer, \
            c2pa.Builder(manifest(station_id, original, plan, title)) as builder:
        builder.add_ingredient(json.dumps(ingredient(original)), "application/octet-stream",
                               io.BytesIO(b""))
        fd = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        with open(source, "rb") as src, os.fdopen(fd, "w+b") as out:
            os.fchmod(out.fileno(), 0o600)
            builder.sign(signer, "video/mp4", src, out)
            out.flush()
            os.fsync(out.fileno())
