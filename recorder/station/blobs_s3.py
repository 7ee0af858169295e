"""The station's blobs in an S3-compatible object store (a Ceph RADOS gateway, MinIO, AWS S3),
behind the same BlobStore interface as the local directory.

Keys are content addresses under the URL's prefix: ``PREFIX/ab/cd/<sha256>``. A blob is uploaded
as it arrives, in parts of ``part_size`` bytes (the memory a writer holds is at most one part):
a blob smaller than one part is one PUT, a larger one a multipart upload. Its SHA-256 is
computed here as the bytes pass, and a blob whose hash is not the declared one is never stored
(the PUT is not sent, or the multipart upload is aborted, which leaves no object). The server is
told the hash too, ``x-amz-checksum-sha256`` on a PUT (per part on a multipart upload), for the
servers that check it; Ceph 16's gateway ignores it (it stores a PUT with a wrong one), so the
check here is the one that counts there. A stored object is never overwritten: the
store asks whether it is there before sending anything, and sends ``If-None-Match: *`` for the
servers that honour it (Ceph 16's gateway does not on a versioned bucket).

Holds: on a bucket created with object lock, ``set_legal_hold`` puts an S3 legal hold on a held
recording's objects, so that the server itself refuses to delete them (``delete`` removes every
version of a key, which a legal hold forbids). The store creates no bucket: see docs/station.md,
"Blobs in S3".

Configuration never comes from the command line: the endpoint from ``BWV_S3_ENDPOINT`` (else
``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``), the region from ``AWS_REGION``/
``AWS_DEFAULT_REGION``, credentials from boto3's usual chain (``AWS_ACCESS_KEY_ID``/
``AWS_SECRET_ACCESS_KEY``, or a credentials file named by ``AWS_SHARED_CREDENTIALS_FILE`` with
``AWS_PROFILE``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from .errors import BlobMissingError, StationError, hash_refused

ENDPOINT_ENV = "BWV_S3_ENDPOINT"
PART_SIZE = 8 << 20  # S3's smallest part is 5 MiB; 8 MiB keeps a 1-minute segment to a few parts
READ_CHUNK = 1 << 20


class BlobStoreError(StationError):
    """The object store cannot be used: unreachable, credentials refused, no such bucket, or a
    request refused (a delete of an object under a legal hold)."""

    status = 503
    code = "blob_store"


class BlobLockedError(BlobStoreError):
    """The object store refused to delete an object: it is under a legal hold."""

    status = 409
    code = "blob_locked"


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at either end). Credentials in
    the URL are refused: they would be seen in ``ps`` and shell histories."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ValueError(f"{url!r}: a blob store URL is s3://BUCKET/PREFIX")
    if "@" in parts.netloc or parts.password is not None:
        raise ValueError("credentials in the --blobs URL are refused (the command line is seen "
                         "by every user of the machine): set AWS_ACCESS_KEY_ID/"
                         "AWS_SECRET_ACCESS_KEY or AWS_SHARED_CREDENTIALS_FILE instead")
    if parts.query or parts.fragment or parts.port is not None or not parts.hostname:
        raise ValueError(f"{url!r}: a blob store URL is s3://BUCKET/PREFIX (the endpoint comes "
                         f"from ${ENDPOINT_ENV})")
    return parts.netloc, parts.path.strip("/")


def client_from_environment() -> Any:
    """A boto3 S3 client configured from the environment only."""
    import boto3
    from botocore.config import Config

    endpoint = (os.environ.get(ENDPOINT_ENV) or os.environ.get("AWS_ENDPOINT_URL_S3")
                or os.environ.get("AWS_ENDPOINT_URL") or None)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(
        # a gateway is addressed by path (no wildcard DNS for bucket names on a station's LAN)
        s3={"addressing_style": "path"},
        # checksums only where sent explicitly (the SHA-256 below): the CRC32 trailers newer
        # botocore adds by default are not understood by older gateways (Ceph 16)
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5, read_timeout=60)
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region,
                                           config=config)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _status(exc: Exception) -> int:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return 0


def _b64(sha256_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


class S3BlobWriter:
    """One blob on its way to the bucket: parts leave as they fill, the hash is checked at
    ``commit``."""

    def __init__(self, store: S3BlobStore, expected_sha256: str) -> None:
        self._store = store
        self.expected_sha256 = expected_sha256
        self._key = store.key_of(expected_sha256)
        self._digest = hashlib.sha256()
        self._size = 0
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._already_there = False  # the object exists: hash the bytes, send nothing
        self._open = True

    def write(self, chunk: bytes) -> None:
        if not self._open:
            raise ValueError("write after commit or abort")
        self._digest.update(chunk)
        self._size += len(chunk)
        if self._already_there:
            return
        self._buffer += chunk
        part_size = self._store.part_size
        while len(self._buffer) >= part_size and not self._already_there:
            self._send_part(bytes(self._buffer[:part_size]))
            del self._buffer[:part_size]

    def _send_part(self, data: bytes) -> None:
        client, bucket = self._store.client, self._store.bucket
        try:
            if self._upload_id is None:
                if self._store.exists(self.expected_sha256):
                    self._already_there = True
                    self._buffer.clear()
                    return
                self._upload_id = str(client.create_multipart_upload(
                    Bucket=bucket, Key=self._key, ChecksumAlgorithm="SHA256")["UploadId"])
            number = len(self._parts) + 1
            answer = client.upload_part(
                Bucket=bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number,
                Body=data, ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest())
                .decode("ascii"))
        except Exception as exc:
            self.abort()
            raise self._store.failed("upload", exc) from exc
        part = {"PartNumber": number, "ETag": answer["ETag"]}
        if answer.get("ChecksumSHA256"):
            part["ChecksumSHA256"] = answer["ChecksumSHA256"]
        self._parts.append(part)

    def commit(self) -> int:
        if not self._open:
            raise ValueError("commit after commit or abort")
        actual = self._digest.hexdigest()
        if actual != self.expected_sha256:
            self.abort()
            raise hash_refused(self._size, actual, self.expected_sha256)
        client, bucket = self._store.client, self._store.bucket
        try:
            if self._already_there:
                pass
            elif self._upload_id is None:
                self._put_whole(bytes(self._buffer))
            else:
                if self._buffer:
                    self._send_part(bytes(self._buffer))
                    self._buffer.clear()
                client.complete_multipart_upload(
                    Bucket=bucket, Key=self._key, UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts})
                self._upload_id = None
        except Exception as exc:
            self.abort()
            if isinstance(exc, StationError):
                raise
            raise self._store.failed("upload", exc) from exc
        self._open = False
        return self._size

    def _put_whole(self, data: bytes) -> None:
        # Ceph 16's gateway ignores If-None-Match on a versioned bucket (it stores a second
        # version): ask first; the header still guards on servers that honour it
        if self._store.exists(self.expected_sha256):
            return
        try:
            self._store.client.put_object(
                Bucket=self._store.bucket, Key=self._key, Body=data,
                ChecksumSHA256=_b64(self.expected_sha256), IfNoneMatch="*")
        except Exception as exc:
            if _status(exc) == 412 or _error_code(exc) == "PreconditionFailed":
                return  # held already: the same bytes, since the key is their hash
            raise

    def abort(self) -> None:
        self._open = False
        self._buffer.clear()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                self._store.client.abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._key, UploadId=upload_id)
            except Exception:  # noqa: BLE001 - remove_partials aborts what is left
                pass


class S3Reader:
    """A blob (or a range of it) as a readable file, streamed from the server."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._body.read(None if size < 0 else size)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> S3Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(READ_CHUNK):
            yield chunk


class S3BlobStore:
    """Blobs as objects ``PREFIX/ab/cd/<sha256>`` of one bucket."""

    def __init__(self, client: Any, bucket: str, prefix: str = "",
                 part_size: int = PART_SIZE) -> None:
        if part_size < 5 << 20:
            raise ValueError("S3 parts are at least 5 MiB")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = part_size
        self._locking: bool | None = None

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        """The store of ``s3://bucket/prefix``, configured from the environment, checked: the
        bucket must answer (BlobStoreError otherwise, with the reason in one line)."""
        bucket, prefix = parse_url(url)
        store = cls(client_from_environment(), bucket, prefix)
        store.check()
        return store

    def __repr__(self) -> str:
        return f"S3BlobStore(s3://{self.bucket}/{self.prefix})"

    def failed(self, what: str, exc: Exception) -> BlobStoreError:
        """One line for what went wrong with the object store."""
        from botocore.exceptions import (
            ClientError, EndpointConnectionError, NoCredentialsError)

        where = f"s3://{self.bucket}/{self.prefix}"
        endpoint = getattr(getattr(self.client, "meta", None), "endpoint_url", "?")
        if isinstance(exc, EndpointConnectionError):
            return BlobStoreError(f"the object store at {endpoint} cannot be reached ({what} "
                                  f"of {where}): check ${ENDPOINT_ENV} and the network")
        if isinstance(exc, NoCredentialsError):
            return BlobStoreError(f"no credentials for the object store ({where}): set "
                                  "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
                                  "AWS_SHARED_CREDENTIALS_FILE")
        if isinstance(exc, ClientError):
            code = _error_code(exc)
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AccessDenied"):
                return BlobStoreError(f"the object store at {endpoint} refused the credentials "
                                      f"for {where} ({code})")
            if code in ("NoSuchBucket", "404"):
                return BlobStoreError(f"no bucket {self.bucket!r} at {endpoint}: create it "
                                      "(with object lock, docs/station.md \"Blobs in S3\")")
            return BlobStoreError(f"the object store refused the {what} of {where} ({code}: "
                                  f"{exc})")
        return BlobStoreError(f"the object store at {endpoint} failed the {what} of {where}: "
                              f"{type(exc).__name__}: {exc}")

    def check(self) -> None:
        """The bucket is there and these credentials may use it."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise self.failed("check", exc) from exc

    def key_of(self, sha256: str) -> str:
        name = f"{sha256[:2]}/{sha256[2:4]}/{sha256}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def begin(self, expected_sha256: str) -> S3BlobWriter:
        return S3BlobWriter(self, expected_sha256)

    def _head(self, sha256: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket,
                                                           Key=self.key_of(sha256))
            return head
        except Exception as exc:
            if _status(exc) == 404:
                return None
            raise self.failed("lookup", exc) from exc

    def exists(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def size(self, sha256: str) -> int:
        head = self._head(sha256)
        if head is None:
            raise _missing(sha256)
        return int(head["ContentLength"])

    def open(self, sha256: str) -> BinaryIO:
        reader, _ = self.open_range(sha256, None)
        return reader

    def open_range(self, sha256: str, first_last: tuple[int, int] | None) -> tuple[BinaryIO, int]:
        """The blob, or bytes ``first..last`` of it (inclusive, as HTTP ranges are), streamed;
        and the blob's whole size."""
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key_of(sha256)}
        if first_last is not None:
            arguments["Range"] = f"bytes={first_last[0]}-{first_last[1]}"
        try:
            answer = self.client.get_object(**arguments)
        except Exception as exc:
            if _status(exc) == 404:
                raise _missing(sha256) from None
            raise self.failed("read", exc) from exc
        total = int(answer["ContentLength"])
        content_range = answer.get("ContentRange")
        if content_range and "/" in content_range:
            total = int(content_range.rsplit("/", 1)[1])
        reader: Any = S3Reader(answer["Body"])
        return reader, total

    def local_path(self, sha256: str) -> Path | None:
        del sha256
        return None

    def place(self, sha256: str, destination: Path) -> None:
        with self.open(sha256) as source, open(destination, "xb") as sink:
            shutil.copyfileobj(source, sink, READ_CHUNK)

    def _versions(self, key: str) -> list[str | None]:
        """Every version id of ``key`` (delete markers too); [None] on a bucket that never had
        versioning, where a plain delete removes the object."""
        try:
            answer = self.client.list_object_versions(Bucket=self.bucket, Prefix=key)
        except Exception as exc:
            raise self.failed("listing", exc) from exc
        found: list[str | None] = [
            entry["VersionId"] for kind in ("Versions", "DeleteMarkers")
            for entry in answer.get(kind, []) if entry["Key"] == key]
        return found

    def delete(self, sha256: str) -> bool:
        """Remove every version of the blob's object (on a versioned bucket, a plain delete
        would only hide it behind a delete marker). Raises BlobLockedError when the server
        refuses: a legal hold is on it."""
        key = self.key_of(sha256)
        versions = self._versions(key)
        if not versions:
            return False
        for version in versions:
            arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
            if version not in (None, "null"):
                arguments["VersionId"] = version
            try:
                self.client.delete_object(**arguments)
            except Exception as exc:
                if _error_code(exc) == "AccessDenied" or _status(exc) == 403:
                    raise BlobLockedError(
                        f"the object store refused to delete {key} (a legal hold is on it: "
                        "the recording is held)") from exc
                raise self.failed("delete", exc) from exc
        return True

    def locking(self) -> bool:
        """Whether the bucket has object lock (legal holds are placed only then)."""
        if self._locking is None:
            try:
                answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
                self._locking = answer.get("ObjectLockConfiguration", {}).get(
                    "ObjectLockEnabled") == "Enabled"
            except Exception as exc:
                if _status(exc) in (400, 404):
                    self._locking = False
                else:
                    raise self.failed("object lock lookup", exc) from exc
        return self._locking

    def set_legal_hold(self, sha256: str, on: bool) -> None:
        """Put (or lift) a legal hold on every version of the blob's object, where the bucket
        has object lock; nothing otherwise."""
        if not self.locking():
            return
        key = self.key_of(sha256)
        for version in self._versions(key):
            arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": key,
                                         "LegalHold": {"Status": "ON" if on else "OFF"}}
            if version not in (None, "null"):
                arguments["VersionId"] = version
            try:
                self.client.put_object_legal_hold(**arguments)
            except Exception as exc:
                if _status(exc) == 404 or _error_code(exc) == "MethodNotAllowed":
                    continue  # a delete marker: nothing to hold
                raise self.failed("legal hold", exc) from exc

    def remove_partials(self, older_than_s: float = 0.0) -> int:
        """Abort the multipart uploads under the prefix that were started over a day ago, or
        ``older_than_s`` if longer (an interrupted upload of this or another station process;
        a younger one may be another process's upload in progress: S3 tells when an upload
        started, not when it was last written to)."""
        import datetime

        cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
            seconds=max(older_than_s, 86_400.0))
        removed = 0
        try:
            answer = self.client.list_multipart_uploads(
                Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else "")
            for upload in answer.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                       UploadId=upload["UploadId"])
                    removed += 1
        except Exception as exc:
            raise self.failed("clean-up", exc) from exc
        return removed


def _missing(sha256: str) -> BlobMissingError:
    return BlobMissingError(f"blob {sha256} is held in the catalogue but missing from the object "
                            "store; restore it from the backup")
