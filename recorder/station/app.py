"""The station's ASGI app (Starlette): the signed device API the camera's uploader speaks, and the
periodic retention sweep. Serve it with uvicorn (``bwv station serve``).

Device API (every request signed, see recorder.integrity.request_signing):

* ``GET /api/v1/recordings/{id}``: what the station holds of a recording (resume from this).
* ``PUT /api/v1/recordings/{id}/segments/{file}``: one segment's bytes; the declared
  X-BWV-Content-SHA256 is the segment's SHA-256 and is checked on arrival. Idempotent.
* ``PUT /api/v1/recordings/{id}/manifest``: the manifest; the station verifies the recording
  and answers with the result and every segment hash it holds.

Errors answer ``{"error": code, "message": text}`` with 400, 401, 404, 409, 410, 411, 413,
415, 422 or 507 (the limits: recorder.station.limits).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from ..integrity.receipts import Receipt, sign_receipt
from ..integrity.request_signing import EMPTY_SHA256, SignedRequest
from . import audit, retention
from .blobs import BlobWriter
from .errors import HashMismatchError, RequestAuthError, StationError
from .evidence_store import EvidenceStore, Holdings
from .limits import Limits, check_ftyp, check_quota, check_received, declared_length
from .request_headers import parse_headers

API = "/api/v1"
WRITE_BATCH_BYTES = 1 << 20
WRITE_BATCHES_AHEAD = 4
FTYP_CHECK_BYTES = 16
log = logging.getLogger("recorder.station")


def _write_all(writer: BlobWriter, chunks: list[bytes]) -> None:
    for chunk in chunks:
        writer.write(chunk)


async def _segment_chunks(request: Request, declared: int) -> AsyncIterator[bytes]:
    """The body's chunks, checked as they arrive: the first bytes must be an ``ftyp`` box
    (held back until there are enough to tell), and no more than ``declared`` bytes may come."""
    head: bytes | None = b""
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        check_received(received, declared)
        if head is not None:
            head += chunk
            if len(head) < FTYP_CHECK_BYTES and received < declared:
                continue
            check_ftyp(head, declared)
            chunk, head = head, None
        if chunk:
            yield chunk
    if head is not None:
        check_ftyp(head, declared)  # the body ended before its first box did


async def _read_capped(request: Request, cap: int, what: str) -> bytes:
    """A small body (a manifest) read whole, after its declared length passed ``cap``."""
    declared = declared_length(request.headers, cap, what)
    parts: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        check_received(received, declared)
        parts.append(chunk)
    return b"".join(parts)


async def _receive(request: Request, writer: BlobWriter, declared: int) -> None:
    """Stream the body into ``writer``. Hashing and writing run on a thread of their own, a
    batch behind the network (hashlib and file writes release the GIL), so the event loop keeps
    receiving while the previous megabyte is hashed: the checks cost little throughput."""
    loop = asyncio.get_running_loop()
    pending: collections.deque[asyncio.Future[None]] = collections.deque()
    batch: list[bytes] = []
    size = 0
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bwv-blob") as pool:
        try:
            async for chunk in _segment_chunks(request, declared):
                batch.append(chunk)
                size += len(chunk)
                if size >= WRITE_BATCH_BYTES:
                    pending.append(loop.run_in_executor(pool, _write_all, writer, batch))
                    batch, size = [], 0
                    if len(pending) > WRITE_BATCHES_AHEAD:
                        await pending.popleft()
            if batch:
                pending.append(loop.run_in_executor(pool, _write_all, writer, batch))
            while pending:
                await pending.popleft()
        except BaseException:
            for future in pending:  # let queued writes end before the partial file goes
                with contextlib.suppress(BaseException):
                    await future
            writer.abort()
            raise


def _error(exc: StationError) -> JSONResponse:
    return JSONResponse({"error": exc.code, "message": str(exc)}, status_code=exc.status)


def receipted(store: EvidenceStore, holdings: Holdings, device_id: str,
              nonce: str) -> dict[str, Any]:
    """The holdings answer with its signed receipt (recorder.integrity.receipts): the station's
    word on what it holds, bound to the request's nonce, which is all a camera deletes on."""
    receipt = Receipt(store.identity.station_id, holdings.recording_id, device_id,
                      holdings.manifest_sha256, holdings.segments, holdings.verified,
                      holdings.status, holdings.verify_summary, store.clock(), nonce)
    return dict(holdings.to_json(), receipt=sign_receipt(receipt, store.identity.sign))


# what a station process starting removes of the partial blobs in its blob directory: those not
# written to for this many body timeouts, and never younger than the floor (a sibling process may
# run with a longer body timeout than this one's)
PARTIAL_AGE_TIMEOUTS = 10
PARTIAL_AGE_FLOOR_S = 600.0


def startup_partial_age_s(limits: Limits) -> float:
    """The age (seconds since the last write) past which a partial blob is a leftover."""
    return max(PARTIAL_AGE_TIMEOUTS * limits.body_timeout_s, PARTIAL_AGE_FLOOR_S)


def create_app(store: EvidenceStore, sweep_interval_s: float | None = None,
               limits: Limits | None = None) -> Starlette:
    """The device API over ``store``; with ``sweep_interval_s`` it also sweeps retention that
    often. ``limits``: the caps on bodies and the device quota (recorder.station.limits; its
    defaults when None). The staff pages are another app on another listener
    (recorder.station.web): nothing here serves a page."""
    caps = limits if limits is not None else Limits()

    async def check_device_quota(device: str, incoming: int) -> None:
        held: int = await run_in_threadpool(store.device_bytes, device)
        check_quota(held, incoming, caps.device_quota_bytes, device)

    async def authenticate(request: Request) -> tuple[str, SignedRequest]:
        """The device and headers of a signed request, checked from the headers alone: no body
        byte is read before this passes."""
        signed = parse_headers(dict(request.headers))
        device: str = await run_in_threadpool(store.authenticate, signed, request.method,
                                              request.url.path, request.url.query)
        return device, signed

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "version": __version__,
                             "station_id": store.identity.station_id})

    async def get_recording(request: Request) -> Response:
        device, signed = await authenticate(request)
        if signed.body_sha256 != EMPTY_SHA256:
            raise HashMismatchError("X-BWV-Content-SHA256 is not the SHA-256 of the body")
        recording_id = request.path_params["recording_id"]
        holdings = await run_in_threadpool(store.holdings, recording_id, device)
        return JSONResponse(receipted(store, holdings, device, signed.nonce))

    async def put_segment(request: Request) -> Response:
        device, signed = await authenticate(request)
        recording_id = request.path_params["recording_id"]
        file = request.path_params["file"]
        declared = signed.body_sha256
        length = declared_length(request.headers, caps.segment_bytes, "segment")
        already = await run_in_threadpool(store.precheck_segment, device, recording_id, file,
                                          declared)
        if already:
            async for _ in request.stream():
                pass
            return JSONResponse({"stored": False, "already_held": True, "sha256": declared})
        await check_device_quota(device, length)
        writer = store.blobs.begin(declared)
        await _receive(request, writer, length)
        stored = await run_in_threadpool(store.commit_segment, device, recording_id, file,
                                         writer, declared)
        return JSONResponse({"stored": stored, "already_held": not stored, "sha256": declared},
                            status_code=201 if stored else 200)

    async def put_manifest(request: Request) -> Response:
        device, signed = await authenticate(request)  # before any byte of the body
        await check_device_quota(device, declared_length(request.headers, caps.manifest_bytes,
                                                         "manifest"))
        data = await _read_capped(request, caps.manifest_bytes, "manifest")
        if hashlib.sha256(data).hexdigest() != signed.body_sha256:
            raise HashMismatchError("X-BWV-Content-SHA256 is not the SHA-256 of the body")
        recording_id = request.path_params["recording_id"]
        holdings = await run_in_threadpool(store.ingest_manifest, device, recording_id, data)
        return JSONResponse(receipted(store, holdings, device, signed.nonce))

    async def station_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StationError)
        if isinstance(exc, RequestAuthError):  # the reason is for the log, never the answer
            client = request.client.host if request.client else "?"
            log.warning("refused %s %s from %s: %s: %s", request.method, request.url.path,
                        client, exc.reason, exc.detail)
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        response = _error(exc)
        if request.method == "PUT":  # a refused body may be unread: do not wait for the rest
            response.headers["Connection"] = "close"
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # only the leftovers: a sibling process on the same blob directory may be writing a
        # partial right now, touching it at least every body timeout (or it is cut off)
        removed = await run_in_threadpool(store.blobs.remove_partials,
                                          startup_partial_age_s(caps))
        if removed:
            log.info("removed %d partial blobs left by interrupted uploads", removed)
        task = None
        if sweep_interval_s is not None:
            task = asyncio.create_task(sweeper(sweep_interval_s))
        signing = asyncio.create_task(checkpointer(audit.CHECKPOINT_INTERVAL_US / 1e6))
        try:
            yield
        finally:
            signing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await signing
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def sweeper(interval_s: float) -> None:
        while True:
            try:
                result = await run_in_threadpool(retention.sweep, store)
                if result.deleted:
                    log.info("retention sweep deleted %d recordings", len(result.deleted))
            except Exception:  # keep sweeping; the next run retries
                log.exception("retention sweep failed")
            await asyncio.sleep(interval_s)

    async def checkpointer(interval_s: float) -> None:
        """Sign the newest audit entry every few minutes when the log moved, so the tail of
        the log is never long without a signed checkpoint (see recorder.station.audit)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await run_in_threadpool(audit.checkpoint, store.engine, store.identity,
                                        store.clock(), True)
            except Exception:  # keep trying; the next run retries
                log.exception("audit checkpoint failed")

    routes = [
        Route(f"{API}/health", health, methods=["GET"]),
        Route(API + "/recordings/{recording_id}", get_recording, methods=["GET"]),
        Route(API + "/recordings/{recording_id}/segments/{file}", put_segment, methods=["PUT"]),
        Route(API + "/recordings/{recording_id}/manifest", put_manifest, methods=["PUT"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        """Starlette's own refusals (no such route, a method a route does not take): in the
        device API the JSON every other error is, so the camera reads them alike."""
        assert isinstance(exc, HTTPException)
        if request.url.path != API and not request.url.path.startswith(API + "/"):
            return Response(exc.detail, status_code=exc.status_code, headers=exc.headers)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "message": str(exc.detail)},
                            status_code=exc.status_code, headers=exc.headers)

    handlers: dict[Any, Any] = {StationError: station_error, HTTPException: http_error}
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    # a path with a slash too many is not found, not redirected (307) to one without: the API
    # answers what its documentation says, and a redirect is nowhere in it
    app.router.redirect_slashes = False
    return app
