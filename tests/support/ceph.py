"""A real S3 server for the tests: a single-node Ceph 16 cluster from Debian's packages (one
monitor, one OSD on memstore, one RADOS gateway) on loopback, in a temporary directory with its own
ceph.conf: nothing in /etc/ceph, no systemd, nothing listening beyond 127.0.0.1.

It is started once per test session by whichever worker needs it first (support.session, as the
PostgreSQL cluster is) and killed at the session's end. The cluster itself runs without cephx
XX, but the gateway checks
every S3 request's signature against the keys of the user made here.

Ceph's daemons are sized down to what one test session needs: memstore (the OSD keeps its
objects in memory, so no disk or block device is formatted), pools of one replica and one
placement group, no manager (pools are made by the monitor; nothing here needs the mgr's
statistics or dashboard), a small OSD memory target, and a monitor that proposes each map change
at once rather than after its default second (the gateway's pools are a dozen map changes):
4 to 7 s to start on an idle 2-core machine (14 to 21 s with 8 placement groups a pool and
the default propose interval). ``python -m support.ceph`` in tests/ starts one, prints its
figures (``startup_s``, ``phases_s``) and stops it.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from support import emulated, session

BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph-authtool",
            "ceph")
PACKAGES = "ceph-mon ceph-osd radosgw"
START_TIMEOUT_S = 120.0
# The OSD keeps objects in memory (memstore): 1 GiB for the tests; a bench storing more sets
# BWV_CEPH_MEMSTORE_MB before the cluster starts (a full OSD blocks writes, it does not fail them)
MEMSTORE_MB_ENV = "BWV_CEPH_MEMSTORE_MB"


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(root: Path, fsid: str, mon_port: int) -> str:
    return f"""[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{mon_port}]
public addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
auth allow insecure global id reclaim = false
run dir = {root}/run
admin socket = {root}/run/$name.asok
pid file = {root}/run/$name.pid
log file = {root}/log/$name.log
crash dir = {root}/crash
keyring = {root}/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 1
osd pool default pgp num = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon osd full ratio = 0.99
mon osd backfillfull ratio = 0.99
mon osd nearfull ratio = 0.99
mon data avail warn = 1
mon data avail crit = 0

[mon]
mon data = {root}/mon.$id
paxos propose interval = 0.01
paxos min wait = 0.001
mon cluster log file = {root}/log/cluster.log

[osd]
osd data = {root}/osd.$id
keyring = {root}/osd.$id/keyring
osd objectstore = memstore
memstore device bytes = {int(os.environ.get(MEMSTORE_MB_ENV, '1024')) << 20}
osd memory target = 939524096
osd op num shards = 1
osd op num threads per shard = 2
osd crush update on start = true
osd max object name len = 460
osd max object namespace len = 64

[client.rgw]
rgw data = {root}/rgw
keyring = {root}/rgw/keyring
rgw frontends = beast endpoint=127.0.0.1:{{rgw_port}}
rgw dns name = 127.0.0.1
rgw enable usage log = false
# deleted objects' data freed at once (memstore holds it in memory), not hours later
rgw gc obj min wait = 0
rgw gc processor period = 2
rgw thread pool size = 32
"""


def _run(root: Path, *argv: str, timeout: float = 60.0) -> str:
    done = subprocess.run([*argv, "-c", str(root / "ceph.conf")], capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): "
                           f"{done.stderr.strip()[-2000:]}")
    return done.stdout


def _daemon(root: Path, pids: Path, name: str, *argv: str) -> int:
    """Start one daemon, which forks itself away (no child of ours is left running) and writes
    its pid file; returns its pid, also recorded in ``pids`` for the session's end."""
    _run(root, *argv)
    pid_file = root / "run" / f"{name}.pid"
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text().strip():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Ceph: {name} wrote no pid file")
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    (pids / f"ceph-{root.name}-{name}.pid").write_text(str(pid))
    return pid


def _wait(what: str, root: Path, check: Any, deadline: float) -> Any:
    while True:
        try:
            result = check()
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}"
                             for log in sorted((root / "log").glob("*")))
            raise RuntimeError(f"Ceph: {what} did not come up in {START_TIMEOUT_S:.0f} s\n{logs}")
        time.sleep(0.2)


def start_cluster(pids: Path) -> dict[str, Any]:
    """Make and start the cluster; returns its directory, the gateway's endpoint, an S3 user's
    keys, the daemons' pids and the seconds it took. ``pids`` is where each daemon's pid file
    goes (the session's directory: whatever is there is killed at the session's end). When it
    fails, whatever it started is killed and its directory removed."""
    root = Path(tempfile.mkdtemp(prefix="bwv-ceph-"))
    pid_list: list[int] = []
    try:
        return _start(root, pids, pid_list)
    except BaseException:
        kill_now({"root": str(root), "pids": pid_list})
        for pid_file in pids.glob(f"ceph-{root.name}-*.pid"):
            pid_file.unlink()
        raise


def _start(root: Path, pids: Path, pid_list: list[int]) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + START_TIMEOUT_S
    for sub in ("run", "log", "crash", "mon.a", "osd.0", "rgw"):
        (root / sub).mkdir()
    fsid = str(uuid.uuid4())
    mon_port, rgw_port = _free_port(), _free_port()
    (root / "ceph.conf").write_text(_config(root, fsid, mon_port).replace("{rgw_port}",
                                                                           str(rgw_port)))
    # the monitor's map and keyring, then its store
    keyring = str(root / "keyring")
    subprocess.run(["ceph-authtool", "--create-keyring", keyring, "--gen-key", "-n", "mon.",
                    "--cap", "mon", "allow *"], check=True, capture_output=True)
    subprocess.run(["ceph-authtool", keyring, "--gen-key", "-n", "client.admin",
                    "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mgr",
                    "allow *"], check=True, capture_output=True)
    subprocess.run(["monmaptool", "--create", "--fsid", fsid, "--addv", "a",
                    f"[v2:127.0.0.1:{mon_port}]", str(root / "monmap")],
                   check=True, capture_output=True)
    _run(root, "ceph-mon", "--mkfs", "-i", "a", "--monmap", str(root / "monmap"),
         "--keyring", str(root / "keyring"))
    pid_list.append(_daemon(root, pids, "mon.a", "ceph-mon", "-i", "a"))
    phases = {"mkfs": time.monotonic() - started}
    _wait("the monitor", root, lambda: _run(root, "ceph", "mon", "stat", "--connect-timeout",
                                            "5", timeout=10), deadline)
    phases["monitor"] = time.monotonic() - started
    # one OSD on memstore
    osd_uuid = str(uuid.uuid4())
    osd_id = _run(root, "ceph", "osd", "new", osd_uuid).strip()
    _run(root, "ceph-osd", "-i", osd_id, "--mkfs", "--mkkey", "--osd-uuid", osd_uuid,
         "--no-mon-config")
    _run(root, "ceph", "auth", "add", f"osd.{osd_id}", "osd", "allow *", "mon",
         "allow profile osd", "-i", str(root / f"osd.{osd_id}" / "keyring"))
    pid_list.append(_daemon(root, pids, f"osd.{osd_id}", "ceph-osd", "-i", osd_id))
    _wait("the OSD", root, lambda: json.loads(_run(root, "ceph", "osd", "dump", "-f", "json"))[
        "osds"][0]["up"] == 1, deadline)
    phases["osd"] = time.monotonic() - started
    # the gateway, which makes its own pools on first start
    _run(root, "ceph", "auth", "get-or-create", "client.rgw", "mon", "allow rw", "osd",
         "allow rwx", "-o", str(root / "rgw" / "keyring"))
    pid_list.append(_daemon(root, pids, "client.rgw", "radosgw", "-n", "client.rgw"))
    endpoint = f"http://127.0.0.1:{rgw_port}"
    _wait("the RADOS gateway", root, lambda: _http_answers(endpoint), deadline)
    phases["gateway"] = time.monotonic() - started
    access_key, secret_key = secrets.token_hex(10).upper(), secrets.token_urlsafe(30)
    _run(root, "radosgw-admin", "user", "create", "--uid", "bwv-test", "--display-name",
         "bwv tests", "--access-key", access_key, "--secret-key", secret_key)
    return {"root": str(root), "endpoint": endpoint, "access_key": access_key,
            "secret_key": secret_key, "pids": pid_list,
            "startup_s": round(time.monotonic() - started, 2),
            "phases_s": {name: round(at, 2) for name, at in phases.items()}}


def _http_answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any S3 answer (403 for an anonymous request) means it is serving
    except OSError:
        return False


def stop_cluster(cluster: dict[str, Any]) -> list[list[str]]:
    """The commands that end the cluster: its daemons killed, its directory removed."""
    return [["kill", "-KILL", *map(str, cluster["pids"])], ["rm", "-rf", cluster["root"]]]


def kill_now(cluster: dict[str, Any]) -> None:
    for pid in cluster["pids"]:
        try:
            os.kill(int(pid), 9)
        except ProcessLookupError:
            pass
    shutil.rmtree(cluster["root"], ignore_errors=True)


@pytest.fixture(scope="session")
def ceph() -> dict[str, Any]:
    """The session's Ceph cluster (started by the first worker that asks, killed at the end):
    ``endpoint``, ``access_key``, ``secret_key``, ``startup_s``. Skipped without the packages,
    and under emulated aarch64 (the daemons would run under qemu too)."""
    if emulated.active():
        pytest.skip("emulated aarch64: Ceph's daemons would run under qemu too; the S3 store is "
                    "a station's, which runs on a server, not the camera's Pi")
    absent = missing_binaries()
    if absent:
        pytest.skip(f"Ceph is not installed (no {', '.join(absent)}): apt-get install "
                    f"{PACKAGES} to run the S3 blob store tests against a real gateway")
    return session.shared("ceph", lambda: start_cluster(session.directory()), stop_cluster)


_buckets = itertools.count(1)


@pytest.fixture()
def s3_bucket(ceph: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket with object lock on the session's gateway (workers share the gateway:
    buckets get names of their own), and the environment a station reads it from."""
    import boto3

    monkeypatch.setenv("BWV_S3_ENDPOINT", ceph["endpoint"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ceph["access_key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ceph["secret_key"])
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    bucket = f"bwv-test-{os.getpid()}-{next(_buckets)}"
    client = boto3.client("s3", endpoint_url=ceph["endpoint"], region_name="us-east-1",
                          aws_access_key_id=ceph["access_key"],
                          aws_secret_access_key=ceph["secret_key"])
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    return bucket


if __name__ == "__main__":  # python3 tests/support/ceph.py: start, print, stop
    here = Path(tempfile.mkdtemp(prefix="bwv-ceph-pids-"))
    try:
        cluster = start_cluster(here)
        print(json.dumps(cluster, indent=1))
        kill_now(cluster)
    finally:
        shutil.rmtree(here)
