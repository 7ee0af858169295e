"""Run by tests/support/previous_release.py with an earlier release's `recorder` first on the
path: makes a station with that release's own code. Arguments: URL DATA PUBLIC-KEY-B64
RECORDING... Prints one JSON line: what it wrote. Uses only what every release since the
station's staff accounts has (features added later are used where present)."""

import hashlib
import json
import sys
from pathlib import Path

import recorder
from recorder.integrity import keys
from recorder.station import audit, retention
from recorder.station.blobs import LocalBlobStore
from recorder.station.catalogue import open_catalogue
from recorder.station.evidence_store import EvidenceStore
from recorder.station.identity import StationIdentity

url, data, public_key, *recordings = sys.argv[1:]
data_dir = Path(data)
data_dir.mkdir(parents=True, exist_ok=True)
store = EvidenceStore(open_catalogue(url), LocalBlobStore(data_dir / "blobs"),
                      StationIdentity.load_or_create(data_dir))
store.enroll("cam7", keys.public_key_from_spki_b64(public_key), by="admin")
ingested = []
for recording in map(Path, recordings):
    for segment in sorted(recording.glob("*.mp4")):
        content = segment.read_bytes()
        digest = hashlib.sha256(content).hexdigest()
        if store.precheck_segment("cam7", recording.name, segment.name, digest):
            continue
        writer = store.blobs.begin(digest)
        writer.write(content)
        store.commit_segment("cam7", recording.name, segment.name, writer, digest)
    holdings = store.ingest_manifest("cam7", recording.name,
                                     (recording / "manifest.jsonl").read_bytes())
    assert holdings.verified, holdings
    ingested.append(recording.name)
retention.place_hold(store, ingested[0], "assault in the street", "CASE-1", by="sgt")
retention.place_hold(store, ingested[-1], "complaint", "CASE-2", by="sgt")
retention.release_holds(store, ingested[-1], by="sgt", reason="complaint withdrawn",
                        case_ref="CASE-2")
made = {"recorder": recorder.__file__, "recordings": ingested, "notes": 0}
try:
    from recorder.station import notes
except ImportError:
    pass
else:
    notes.add_note(store, ingested[0], "officer's statement taken", "sgt")
    made["notes"] = 1
if hasattr(audit, "checkpoint"):
    audit.checkpoint(store.engine, store.identity, store.clock())
store.engine.dispose()
print(json.dumps(made))
