"""Finding 4 of issue 12, the attack and its defence: an operator who removes view and export
entries and recomputes the hash chain passed `bwv station audit --verify`. Now the station signs
checkpoints of the chain with its key: the rewrite is caught by the stored checkpoints, a
checkpoint forged without the station key is caught by its signature, and an operator who holds
the key and re-signs the stored checkpoints is caught by a checkpoint exported earlier
(`--checkpoint`, then `--verify --against FILE`). Real `bwv` subprocesses; the periodic
checkpoint runs in a served station; openssl and jq check an exported checkpoint by hand."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update
from support.station import bwv, FakeClock, camera_key, ingest, make_recording, make_store, serve

from recorder.integrity import keys, manifest
from recorder.integrity.keys import DeviceKey
from recorder.station import audit, catalogue
from recorder.station.audit import Action
from recorder.station.catalogue import GENESIS_HASH, audit_checkpoints, audit_head
from recorder.station.evidence_store import EvidenceStore
from recorder.station.identity import StationIdentity

pytestmark = pytest.mark.usefixtures("no_fsync")

__all__ = ["camera_key"]



def station_with_history(tmp_path: Path, camera_key: DeviceKey) -> tuple[Path, EvidenceStore]:
    """A station that ingested a recording that was then viewed and exported by several
    people (the entries an operator would want gone)."""
    data = tmp_path / "station"
    store = make_store(data)
    store.enroll("cam7", camera_key.public_key, by="admin")
    recording = make_recording(tmp_path / "recordings", camera_key)
    assert ingest(store, recording).verified
    for who in ("web:sgt.a@10.0.0.5", "web:pc.b@10.0.0.6", "web:pc.c@10.0.0.7"):
        store.record_access(who, Action.VIEW, recording.name, {"page": "recording"})
    store.record_access("web:pc.c@10.0.0.7", Action.EXPORT, recording.name,
                        {"purpose": "curiosity"})
    return data, store


def rewrite_without(store: EvidenceStore, actions: set[str],
                    resign_with: StationIdentity | None = None) -> int:
    """What a dishonest operator does with write access to the catalogue: drop the entries with
    these actions, renumber and re-hash the rest so every link holds, move the head; with the
    station's key, also replace the stored checkpoints with fresh ones wherever the station
    would have made one (here: at every entry, the most thorough forger). Returns entries
    dropped."""
    kept: list[tuple[int, str, int]] = []  # seq, hash, at_us of the rewritten entries
    with store.engine.begin() as conn:
        rows = list(conn.execute(select(catalogue.audit).order_by(catalogue.audit.c.seq)))
        conn.execute(delete(catalogue.audit))
        previous, seq, dropped = GENESIS_HASH, 0, 0
        for row in rows:
            if row.action in actions:
                dropped += 1
                continue
            seq += 1
            body = json.loads(row.line)
            body.update(seq=seq, prev=previous)
            line = manifest.canonical_bytes(body).decode("utf-8")
            previous = manifest.line_hash(line.encode("utf-8") + b"\n")
            conn.execute(insert(catalogue.audit).values(
                seq=seq, at_us=row.at_us, actor=row.actor, action=row.action,
                recording_id=row.recording_id, line=line, hash=previous))
            kept.append((seq, previous, int(row.at_us)))
        conn.execute(update(audit_head).values(seq=seq, hash=previous))
        if resign_with is not None:
            conn.execute(delete(audit_checkpoints))
            for entry_seq, digest, at_us in kept:
                audit._insert_checkpoint(conn, resign_with, entry_seq, digest, at_us)
    return dropped


def test_a_rewritten_chain_is_caught_by_the_stored_signed_checkpoints(
        tmp_path: Path, camera_key: DeviceKey) -> None:
    data, store = station_with_history(tmp_path, camera_key)
    assert bwv("station", "audit", "--data", str(data), "--verify").returncode == 0
    made = bwv("station", "audit", "--data", str(data), "--checkpoint")
    assert made.returncode == 0, made.stderr

    assert rewrite_without(store, {Action.VIEW, Action.EXPORT}) == 4
    assert audit.verify(store.engine).ok  # the bare chain is consistent again: the old hole

    result = bwv("station", "audit", "--data", str(data), "--verify")
    assert result.returncode == 1
    assert "audit chain BROKEN" in result.stderr
    assert "no longer has the hash the station signed" in result.stderr or \
        "the log has no entry" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_operator_with_the_station_key_is_caught_by_an_exported_checkpoint(
        tmp_path: Path, camera_key: DeviceKey) -> None:
    data, store = station_with_history(tmp_path, camera_key)
    made = bwv("station", "audit", "--data", str(data), "--checkpoint")
    assert made.returncode == 0, made.stderr
    line = made.stdout.strip()
    assert "\n" not in line
    kept = tmp_path / "worm" / "checkpoints.jsonl"  # write-once storage, off the station
    kept.parent.mkdir()
    kept.write_text(line + "\n")
    ok = bwv("station", "audit", "--data", str(data), "--verify", "--against", str(kept))
    assert ok.returncode == 0, ok.stderr
    assert "1 exported checkpoints still on the chain" in ok.stdout

    # the operator holds the data directory, so the key: rewrite and re-sign the stored ones
    rewrite_without(store, {Action.VIEW, Action.EXPORT},
                    resign_with=StationIdentity.load_or_create(data))
    alone = bwv("station", "audit", "--data", str(data), "--verify")
    assert alone.returncode == 0, alone.stderr  # the station's own records now agree ...
    caught = bwv("station", "audit", "--data", str(data), "--verify", "--against", str(kept))
    assert caught.returncode == 1  # ... but not with what was kept outside it
    assert "exported line 1" in caught.stderr
    assert ("no longer has the hash the station signed" in caught.stderr
            or "the log has no entry" in caught.stderr)


def test_removing_the_checkpoints_to_rewrite_the_log_is_caught_without_the_key(
        tmp_path: Path, camera_key: DeviceKey) -> None:
    """Someone with the catalogue but not the station key drops entries, recomputes the chain
    and deletes every checkpoint row so none can disagree: the checkpoints the station always
    makes (at entry 1, every 100th, after 5 quiet minutes) are missing, and `--verify` says so."""
    data, store = station_with_history(tmp_path, camera_key)
    assert rewrite_without(store, {Action.VIEW}) >= 1
    with store.engine.begin() as conn:
        conn.execute(delete(audit_checkpoints))
    assert audit.verify(store.engine).ok  # the bare chain holds again
    result = bwv("station", "audit", "--data", str(data), "--verify")
    assert result.returncode == 1, result.stdout
    assert "have no signed checkpoint where the station always makes one" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_checkpoint_forged_without_the_station_key_is_refused(
        tmp_path: Path, camera_key: DeviceKey) -> None:
    data, store = station_with_history(tmp_path, camera_key)
    rewrite_without(store, {Action.VIEW})
    # a database administrator without the station's data directory: signs with a key of
    # their own, naming this station
    impostor = StationIdentity(DeviceKey.load_or_create(tmp_path / "impostor"))
    with store.engine.begin() as conn:
        conn.execute(delete(audit_checkpoints))
        head = conn.execute(select(audit_head)).one()
        body = {"format": audit.CHECKPOINT_FORMAT, "seq": head.seq, "hash": head.hash,
                "station_id": store.identity.station_id, "at": catalogue.iso(store.clock())}
        line = manifest.canonical_bytes(body).decode()
        conn.execute(insert(audit_checkpoints).values(
            seq=head.seq, hash=head.hash, at_us=store.clock(), line=line,
            signature=base64.b64encode(impostor.sign(line.encode())).decode()))
    result = bwv("station", "audit", "--data", str(data), "--verify")
    assert result.returncode == 1
    assert "signature does not verify with this station's key" in result.stderr

    forged = dict(body, signature=base64.b64encode(impostor.sign(line.encode())).decode())
    outside = tmp_path / "forged.jsonl"
    outside.write_text(json.dumps(forged) + "\n")
    result = bwv("station", "audit", "--data", str(data), "--verify", "--against", str(outside))
    assert result.returncode == 1 and "exported line 1" in result.stderr


def test_against_a_file_without_checkpoints_is_a_usage_error(tmp_path: Path,
                                                              camera_key: DeviceKey) -> None:
    data, _ = station_with_history(tmp_path, camera_key)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    result = bwv("station", "audit", "--data", str(data), "--verify", "--against", str(empty))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    missing = bwv("station", "audit", "--data", str(data), "--verify", "--against",
                  str(tmp_path / "nope"))
    assert missing.returncode == 2 and "cannot read it" in missing.stderr
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\n")
    result = bwv("station", "audit", "--data", str(data), "--verify", "--against", str(garbage))
    assert result.returncode == 1 and "not a checkpoint" in result.stderr


def test_checkpoints_come_every_100_entries_and_after_five_quiet_minutes(
        tmp_path: Path, camera_key: DeviceKey) -> None:
    clock = FakeClock()
    store = make_store(tmp_path / "station", clock=clock)
    store.enroll("cam7", camera_key.public_key, by="admin")  # entry 1: the first checkpoint
    for number in range(2, 251):
        store.record_access("web:x@y", Action.VIEW, "r", {"n": number})
    clock.now_us += audit.CHECKPOINT_INTERVAL_US
    store.record_access("web:x@y", Action.VIEW, "r", {"n": 251})
    with store.engine.connect() as conn:
        seqs = list(conn.execute(select(audit_checkpoints.c.seq)
                                 .order_by(audit_checkpoints.c.id)).scalars())
    assert seqs == [1, 100, 200, 251]
    check = audit.verify(store.engine, store.identity)
    assert check.ok and check.checkpoints == 4, check.problems


def test_the_served_station_checkpoints_a_moved_log(tmp_path: Path, camera_key: DeviceKey,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "CHECKPOINT_INTERVAL_US", 200_000)  # the loop's period: 0.2 s
    monkeypatch.setattr(audit, "CHECKPOINT_EVERY", 10_000)
    clock = FakeClock()
    store = make_store(tmp_path / "station", clock=clock)
    store.enroll("cam7", camera_key.public_key, by="admin")
    served = serve(store)
    try:
        store.record_access("web:x@y", Action.VIEW, "r", {})  # entry 2: no checkpoint yet
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with store.engine.connect() as conn:
                newest = conn.execute(select(audit_checkpoints.c.seq)
                                      .order_by(audit_checkpoints.c.id.desc())).scalar()
            if newest == 2:
                break
            time.sleep(0.05)
        assert newest == 2
    finally:
        served.stop()
    assert audit.verify(store.engine, store.identity).ok


def test_openssl_and_jq_check_an_exported_checkpoint_by_hand(tmp_path: Path,
                                                             camera_key: DeviceKey) -> None:
    data, store = station_with_history(tmp_path, camera_key)
    made = bwv("station", "audit", "--data", str(data), "--checkpoint")
    exported = tmp_path / "checkpoint.json"
    exported.write_text(made.stdout)
    pem = tmp_path / "station.pub.pem"
    pem.write_text(keys.public_key_pem(store.identity.public_key))
    script = (f"jq -jcS 'del(.signature)' {exported} > {tmp_path}/msg && "
              f"jq -r .signature {exported} | base64 -d > {tmp_path}/sig && "
              f"openssl pkeyutl -verify -pubin -inkey {pem} -rawin -in {tmp_path}/msg "
              f"-sigfile {tmp_path}/sig")
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0 and "Signature Verified Successfully" in result.stdout
    edited = json.loads(made.stdout)
    edited["seq"] -= 1
    exported.write_text(json.dumps(edited))
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert result.returncode != 0
