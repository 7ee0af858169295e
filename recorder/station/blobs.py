"""Where the station keeps bytes: a content-addressed blob store interface and its local directory
backend. Blobs are named by their SHA-256, so a second upload of the same bytes stores nothing new.

A write goes to a partial file, is hashed as it arrives, and only a blob whose hash equals the
declared one is fsynced and renamed into place: a cut or a wrong hash never leaves a blob behind.
An S3-compatible backend implements the same interface (recorder.station.blobs_s3; docs/station.md,
"Blobs in S3"); ``open_blob_store`` picks one by URL.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import BinaryIO, Protocol

from .. import durability
from ..private_files import make_private_dir, open_private
from .errors import BlobMissingError, StorageFullError, hash_refused


class BlobWriter(Protocol):
    """One blob being received: ``write`` the chunks, then ``commit`` or ``abort``."""

    def write(self, chunk: bytes) -> None: ...

    def commit(self) -> int:
        """Check the hash and store the blob; returns its size in bytes.
        Raises HashMismatchError (nothing stored) or StorageFullError."""
        ...

    def abort(self) -> None: ...


class BlobStore(Protocol):
    """The operations the station needs from its byte storage."""

    def begin(self, expected_sha256: str) -> BlobWriter: ...

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int: ...

    def open(self, sha256: str) -> BinaryIO:
        """The blob for reading. Raises BlobMissingError when the store has lost it."""
        ...

    def local_path(self, sha256: str) -> Path | None:
        """The blob's file when it is on a local file system (served with range requests),
        else None (an object store: the blob is streamed through ``open``). Raises
        BlobMissingError when the store has lost it."""
        ...

    def place(self, sha256: str, destination: Path) -> None:
        """Make the blob readable at ``destination`` (a hard link where possible). Raises
        BlobMissingError when the store has lost it."""
        ...

    def delete(self, sha256: str) -> bool:
        """Remove the blob; False when it was not there."""
        ...

    def remove_partials(self, older_than_s: float = 0.0) -> int:
        """Remove what interrupted writes left, only what was not written to in the last
        ``older_than_s`` seconds (0: all of it, when no write can be under way; a station
        process starting beside live siblings passes an age no live upload reaches); returns
        how many."""
        ...

    def set_legal_hold(self, sha256: str, on: bool) -> None:
        """Ask the storage itself to refuse deleting the blob (``on``) or no longer (an S3
        legal hold); nothing where the storage has no such lock (a local directory)."""
        ...


def open_blob_store(where: str, data_dir: Path) -> BlobStore:
    """The store of ``--blobs``: an ``s3://BUCKET/PREFIX`` URL (configured from the environment,
    recorder.station.blobs_s3), else the local directory (``blobs`` in the station's data
    directory when ``where`` is empty). Raises ValueError for a URL it refuses."""
    if where.startswith("s3://"):
        from .blobs_s3 import S3BlobStore

        return S3BlobStore.from_url(where)
    if "://" in where:
        raise ValueError(f"{where!r}: --blobs is a directory or s3://BUCKET/PREFIX")
    return LocalBlobStore(Path(where).expanduser() if where else data_dir / "blobs")


def _missing(sha256: str) -> BlobMissingError:
    return BlobMissingError(f"blob {sha256} is held in the catalogue but missing from the blob "
                            "store; restore it from the backup")


def _full_error(path: Path, exc: OSError) -> StorageFullError:
    return StorageFullError(exc.errno or errno.ENOSPC,
                            f"the station's blob store at {path} is full ({exc.strerror}); "
                            "nothing was stored and the camera keeps its copy: free space or "
                            "add storage, then dock again")


class LocalBlobWriter:
    """Receives one blob into ``.partial/`` of a LocalBlobStore, hashing every chunk."""

    def __init__(self, store: LocalBlobStore, expected_sha256: str) -> None:
        self._store = store
        self.expected_sha256 = expected_sha256
        self._digest = hashlib.sha256()
        self._size = 0
        self._partial = store.root / ".partial" / f"{expected_sha256[:16]}.{secrets.token_hex(8)}"
        self._file: BinaryIO | None = os.fdopen(
            open_private(self._partial, os.O_WRONLY | os.O_EXCL), "wb")

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise ValueError("write after commit or abort")
        self._digest.update(chunk)
        self._size += len(chunk)
        try:
            self._file.write(chunk)
        except OSError as exc:
            self.abort()
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _full_error(self._store.root, exc) from exc
            raise

    def commit(self) -> int:
        if self._file is None:
            raise ValueError("commit after commit or abort")
        actual = self._digest.hexdigest()
        if actual != self.expected_sha256:
            self.abort()
            raise hash_refused(self._size, actual, self.expected_sha256)
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            final = self._store.path_of(actual)
            make_private_dir(final.parent)
            os.replace(self._partial, final)
            self._store.fsync_directory(final.parent)
        except OSError as exc:
            self.abort()
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _full_error(self._store.root, exc) from exc
            raise
        return self._size

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        try:
            os.unlink(self._partial)
        except FileNotFoundError:
            pass


class LocalBlobStore:
    """Blobs as files ``ROOT/ab/cd/<sha256>`` on a local file system."""

    def __init__(self, root: Path) -> None:
        self.root = root
        make_private_dir(root / ".partial")
        make_private_dir(root)

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def begin(self, expected_sha256: str) -> LocalBlobWriter:
        return LocalBlobWriter(self, expected_sha256)

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def size(self, sha256: str) -> int:
        return self.path_of(sha256).stat().st_size

    def open(self, sha256: str) -> BinaryIO:
        try:
            return open(self.path_of(sha256), "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise _missing(sha256) from None

    def local_path(self, sha256: str) -> Path | None:
        path = self.path_of(sha256)
        if not path.is_file():
            raise _missing(sha256)
        return path

    def place(self, sha256: str, destination: Path) -> None:
        source = self.path_of(sha256)
        try:
            os.link(source, destination)
        except FileNotFoundError:
            if not source.is_file():
                raise _missing(sha256) from None
            raise
        except OSError:
            try:
                shutil.copyfile(source, destination)
            except FileNotFoundError:
                raise _missing(sha256) from None

    def delete(self, sha256: str) -> bool:
        path = self.path_of(sha256)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        self.fsync_directory(path.parent)
        return True

    def set_legal_hold(self, sha256: str, on: bool) -> None:
        del sha256, on  # a directory has no lock of its own: the catalogue's hold keeps it

    def remove_partials(self, older_than_s: float = 0.0) -> int:
        """A partial's age is that of its last write (its mtime): a live upload writes at least
        every body timeout, or the server cuts it off."""
        cutoff = time.time() - older_than_s
        removed = 0
        for entry in (self.root / ".partial").iterdir():
            try:
                if older_than_s > 0 and entry.stat().st_mtime > cutoff:
                    continue  # being written, maybe by another process on this directory
                entry.unlink()
            except FileNotFoundError:
                continue  # committed or aborted meanwhile by the process writing it
            removed += 1
        return removed

    @staticmethod
    def fsync_directory(directory: Path) -> None:
        durability.fsync_directory(directory)
