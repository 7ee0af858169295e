"""The ``bwv station`` subcommands: serve, enroll, migrate, key, audit, hold, release, sweep,
stats, export, redact, request, list.

Only the standard library is imported at module level, so `bwv --help` and `bwv station --help`
work without the station's dependencies (SQLAlchemy, Starlette, uvicorn): they load when a
station command runs, and a command run without them says which extra to install.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from ..integrity.content_key import Kem
    from ..station.evidence_store import EvidenceStore
    from ..station.limits import Limits
    from ..station.web.sso_settings import OidcSettings, ProxySettings
    from sqlalchemy import Engine

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DATA_ENV_VAR = "BWV_STATION_DATA"
DB_ENV_VAR = "BWV_STATION_DB"
BLOBS_ENV_VAR = "BWV_STATION_BLOBS"
DEFAULT_LISTEN = "127.0.0.1:8470"
# top-level modules of the extras a station command may need, and how to install each
EXTRA_OF_MODULE = {"sqlalchemy": "station", "starlette": "station", "uvicorn": "station",
                   "argon2": "station", "cv2": "station", "boto3": "station",
                   "botocore": "station", "alembic": "station", "psycopg": "postgres"}
MIN_RETENTION_DAYS = 31
CREATING_COMMANDS = ("serve", "enroll")  # the only commands that may start a new station


class StationUsageError(Exception):
    """A station command given arguments it cannot use."""


def _data_dir(args: argparse.Namespace) -> Path:
    value = args.data or os.environ.get(DATA_ENV_VAR)
    if not value:
        raise StationUsageError(f"give the station's data directory with --data DIR (or set "
                                f"${DATA_ENV_VAR})")
    return Path(value).expanduser()


def open_store(args: argparse.Namespace, *, create: bool = False) -> EvidenceStore:
    """The EvidenceStore of ``--data`` / ``--db``. With ``create`` (serve, enroll) a new station
    is made when there is none; otherwise there must already be one there, so that a mistyped
    ``--data`` is a usage error naming the path rather than a new, empty station."""
    from ..station.blobs import open_blob_store
    from ..station.catalogue import missing_catalogue, sqlite_url
    from ..station.evidence_store import EvidenceStore
    from ..station.identity import STATION_KEY_FILE, StationIdentity

    data = _data_dir(args)
    url = args.db or os.environ.get(DB_ENV_VAR) or sqlite_url(data)
    where = getattr(args, "blobs", None) or os.environ.get(BLOBS_ENV_VAR, "")
    blobs = None
    if "://" in where:  # checked before anything is made: an unusable store makes nothing
        try:
            blobs = open_blob_store(where, data)
        except ValueError as exc:
            raise StationUsageError(f"--blobs: {exc}") from None
    if not create and not data.is_dir():
        raise StationUsageError(f"no station in {data}: the directory does not exist "
                                f"({_where_stations_come_from()})")
    problem = missing_catalogue(url) if data.is_dir() else "a new station"
    if problem is not None and not create:
        raise StationUsageError(f"no station in {data}: {problem} "
                                f"({_where_stations_come_from()})")
    if create:
        data.mkdir(parents=True, exist_ok=True)
    engine = _open_catalogue(url)  # before anything is written: a catalogue behind is refused
    identity = StationIdentity.find(data)
    if identity is None:
        if problem is None and not getattr(args, "new_key", False):
            # never silently: a new key is a new station id that every camera must pin again,
            # and the audit checkpoints signed so far would no longer be this station's
            raise StationUsageError(
                f"the station in {data} has lost its key ({STATION_KEY_FILE}): restore it from "
                "backup. A new key makes a new station that every camera must pin again; to "
                f"make one all the same: `bwv station key --data {data} --new-key`")
        identity = StationIdentity.load_or_create(data, _encryption_kem(args))
    elif identity.encryption is None:  # a station made before encryption: give it its key now
        from ..station import encryption_key

        if encryption_key.lost(data) and not getattr(args, "new_key", False):
            raise StationUsageError(
                f"the station in {data} has lost its encryption key "
                f"({encryption_key.ENCRYPTION_KEY_FILE}): restore it from backup. Without it "
                "the recordings encrypted for this station cannot be played or exported, and "
                "cameras pinned to it go on encrypting for it. To make a new one all the same "
                f"(and pin every camera again): `bwv station key --data {data} --new-key`")
        identity = identity.with_encryption_key(_encryption_kem(args))
    wanted = getattr(args, "encryption_kem", None)
    if wanted is not None and identity.encryption is not None \
            and identity.encryption.kem.value != wanted:
        raise StationUsageError(
            f"this station's encryption key is {identity.encryption.kem.value}, not {wanted}: "
            "the KEM is chosen when the key is made, and recordings already made for it need "
            "it to be unwrapped")
    if blobs is None:  # a directory, made with the station
        blobs = open_blob_store(where, data)
    return EvidenceStore(engine, blobs, identity,
                         retention_days=getattr(args, "retention_days", 31))


def _open_catalogue(url: str) -> Engine:
    """open_catalogue, with a catalogue behind or ahead of this version's schema a usage error
    saying what to do (one line, exit 2)."""
    from ..station.catalogue import CatalogueSchemaError, open_catalogue

    try:
        return open_catalogue(url)
    except CatalogueSchemaError as exc:
        raise StationUsageError(str(exc)) from None


def _migrate(args: argparse.Namespace) -> int:
    """Bring an existing station's catalogue to this version's schema (one explicit step)."""
    from ..station.catalogue import CatalogueSchemaError, migrate, missing_catalogue, sqlite_url

    data = _data_dir(args)
    url = args.db or os.environ.get(DB_ENV_VAR) or sqlite_url(data)
    if not data.is_dir():
        raise StationUsageError(f"no station in {data}: the directory does not exist "
                                f"({_where_stations_come_from()})")
    problem = missing_catalogue(url)
    if problem is not None:
        raise StationUsageError(f"no station in {data}: {problem} "
                                f"({_where_stations_come_from()})")
    from sqlalchemy.exc import SQLAlchemyError

    try:
        migrate(url, say=lambda line: print(line, flush=True))
    except CatalogueSchemaError as exc:
        raise StationUsageError(str(exc)) from None
    except SQLAlchemyError as exc:  # one transaction: nothing of it stays
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"bwv station migrate: failed and rolled back, the catalogue is as it was: "
              f"{cause}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _encryption_kem(args: argparse.Namespace) -> Kem:
    """``--encryption-kem`` of `bwv station key`, X25519 otherwise."""
    from ..integrity.content_key import Kem

    return Kem(getattr(args, "encryption_kem", None) or Kem.X25519.value)


def _retention_days(text: str) -> int:
    """``--retention-days``: whole days, never under the 31 the camera's deletion counts on."""
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if not MIN_RETENTION_DAYS <= days <= 36_500:
        raise argparse.ArgumentTypeError(
            f"{days} days: footage is kept at least {MIN_RETENTION_DAYS} days after the station "
            "verified it (the camera deletes its copy on that), and at most 100 years")
    return days


def _where_stations_come_from() -> str:
    return (f"check --data or ${DATA_ENV_VAR}; only `bwv station serve` and `bwv station enroll` "
            "create a station")


def _actor(args: argparse.Namespace) -> str:
    return str(getattr(args, "by", None) or f"user:{getpass.getuser()}")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key given on the command line: a file (PEM, DER, one-line, hex), the one-line
    base64 `bwv doctor` prints, or 64 hex digits."""
    from ..integrity import keys

    path = Path(text).expanduser()
    if path.is_file():
        return keys.load_public_key(path)
    stripped = text.strip()
    if len(stripped) == 64:
        try:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            return Ed25519PublicKey.from_public_bytes(bytes.fromhex(stripped))
        except ValueError:
            pass
    return keys.public_key_from_spki_b64(stripped)


def _given_public_key(text: str) -> Ed25519PublicKey:
    """``--public-key``, or a usage error saying what is wrong with it."""
    from ..integrity.keys import PublicKeyFormatError

    try:
        return parse_public_key(text)
    except PublicKeyFormatError as exc:
        raise StationUsageError(str(exc)) from None


def _limits(args: argparse.Namespace) -> Limits:
    """The station's limits from the `serve` options (recorder.station.limits)."""
    from ..station.limits import GIB, MIB, Limits, default_max_connections

    if args.max_connections is None:
        args.max_connections = default_max_connections()
    for option in ("max_manifest_mib", "max_segment_mib", "header_timeout", "body_timeout",
                   "keep_alive", "max_connections"):
        if getattr(args, option) <= 0:
            raise StationUsageError(f"--{option.replace('_', '-')} must be more than 0")
    for option in ("device_quota_gib", "max_connections_per_client"):
        if getattr(args, option) < 0:
            raise StationUsageError(f"--{option.replace('_', '-')} must be 0 (none) or more")
    return Limits(manifest_bytes=int(args.max_manifest_mib * MIB),
                  segment_bytes=int(args.max_segment_mib * MIB),
                  device_quota_bytes=int(args.device_quota_gib * GIB),
                  header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout,
                  keep_alive_s=args.keep_alive, max_connections=args.max_connections,
                  max_connections_per_client=args.max_connections_per_client)


def _host_port(text: str, option: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise StationUsageError(f"{option} {text!r} is not HOST:PORT")
    return host, int(port)


def _loopback(host: str) -> bool:
    return host.strip("[]") in ("127.0.0.1", "::1", "localhost")


def _serve(args: argparse.Namespace) -> int:
    from ..station.app import create_app
    from ..station.server import run_servers, server_config

    if args.web:
        raise StationUsageError("the staff pages have a listener of their own now, with a login: "
                                "--web-listen HOST:PORT (and `bwv station user add` for "
                                "accounts)")
    host, port = _host_port(args.listen, "--listen")
    web = _host_port(args.web_listen, "--web-listen") if args.web_listen else None
    if web is not None and web == (host, port):
        raise StationUsageError("--web-listen must differ from --listen: the device API's "
                                "port serves no staff page")
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        raise StationUsageError("give both --ssl-certfile and --ssl-keyfile for TLS")
    if web is not None and not args.ssl_certfile and not _loopback(web[0]):
        raise StationUsageError(f"--web-listen {args.web_listen}: staff pages off this machine "
                                "need TLS (--ssl-certfile and --ssl-keyfile): passwords and "
                                "session cookies must not cross a network in the clear, and "
                                "browsers send the Secure session cookie only over https")
    if web is None and args.web_proxy_secret_file:
        raise StationUsageError("--web-proxy-secret-file is for the staff pages: give "
                                "--web-listen HOST:PORT too")
    oidc_given = [name for name in ("issuer", "client_id", "client_secret_file", "redirect_url")
                  if getattr(args, f"web_oidc_{name}")]
    if web is None and oidc_given:
        raise StationUsageError("--web-oidc-* are for the staff pages: give --web-listen "
                                "HOST:PORT too")
    proxy = _proxy_settings(args)
    oidc = _oidc_settings(args, oidc_given)
    if proxy is not None and oidc is not None:
        raise StationUsageError("choose one: behind a sign-on proxy (--web-proxy-secret-file) "
                                "the proxy logs staff in, so OpenID Connect is not used")
    if oidc is not None and web is not None:
        _check_redirect_host(oidc.redirect_url, web[0], args.web_host or ())
    limits = _limits(args)
    store = open_store(args, create=True)
    tls = {"ssl_certfile": args.ssl_certfile, "ssl_keyfile": args.ssl_keyfile,
           "log_level": args.log_level}
    configs = [server_config(
        create_app(store, sweep_interval_s=args.sweep_every if args.sweep_every > 0 else None,
                   limits=limits), limits, host=host.strip("[]"), port=port, **tls)]
    scheme = "https" if args.ssl_certfile else "http"
    print(f"bwv station: serving {_data_dir(args)} on {scheme}://{host}:{port} "
          f"(catalogue {store.engine.dialect.name})", file=sys.stderr, flush=True)
    if web is not None:
        from ..station.web import create_web_app
        from ..station.web.security import WebSettings, default_hosts

        settings = WebSettings(hosts=default_hosts(web[0], args.web_host or ()),
                               tls=bool(args.ssl_certfile), proxy=proxy, oidc=oidc)
        configs.append(server_config(create_web_app(store, settings), limits,
                                     host=web[0].strip("[]"), port=web[1], **tls))
        print(f"bwv station: staff pages on {scheme}://{web[0]}:{web[1]} (answering to "
              f"{', '.join(settings.hosts)})", file=sys.stderr, flush=True)
        if proxy is not None:
            print(f"bwv station: staff are named by the proxy in {proxy.user_header}, which "
                  f"must send the shared secret in {proxy.secret_header}", file=sys.stderr,
                  flush=True)
        if oidc is not None:
            print(f"bwv station: staff may log in through {oidc.issuer} (OpenID Connect, "
                  f"accounts named by {oidc.user_claim})", file=sys.stderr, flush=True)
    run_servers(configs)
    return EXIT_OK


def _proxy_settings(args: argparse.Namespace) -> ProxySettings | None:
    """The trusted reverse-proxy mode's settings, None when no secret file is given."""
    from ..station.web.proxy_auth import load_proxy_secret
    from ..station.web.sso_settings import ProxySettings
    from ..station.web.secret_file import SecretFileError

    if not args.web_proxy_secret_file:
        return None
    try:
        secret = load_proxy_secret(Path(args.web_proxy_secret_file))
    except SecretFileError as exc:
        raise StationUsageError(str(exc)) from None
    for option, header in (("--web-proxy-user-header", args.web_proxy_user_header),
                           ("--web-proxy-secret-header", args.web_proxy_secret_header)):
        if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", header) or header.lower() in (
                "cookie", "host", "authorization", "content-type", "content-length"):
            raise StationUsageError(f"{option} {header!r} is not a header name a proxy can "
                                    "set for the station (letters, digits, dashes)")
    if args.web_proxy_user_header.lower() == args.web_proxy_secret_header.lower():
        raise StationUsageError("the proxy's user and secret headers must differ")
    return ProxySettings(secret, args.web_proxy_user_header, args.web_proxy_secret_header)


def _check_redirect_host(redirect_url: str, listen_host: str, names: Sequence[str]) -> None:
    """StationUsageError unless the staff pages answer to the redirect URL's host: the
    provider's redirect would otherwise be refused at the Host check."""
    from urllib.parse import urlsplit

    from ..station.web.security import default_hosts

    host = urlsplit(redirect_url).hostname or ""
    shown = f"[{host}]" if ":" in host else host
    if shown.lower() not in default_hosts(listen_host, names):
        raise StationUsageError(f"--web-oidc-redirect-url names {shown}, a host the staff "
                                f"pages do not answer to: add --web-host {shown}")


def _oidc_settings(args: argparse.Namespace, given: list[str]) -> OidcSettings | None:
    """OpenID Connect login's settings, None when no --web-oidc-* option is given."""
    from ..station.web.sso_settings import OidcConfigError, OidcSettings
    from ..station.web.secret_file import SecretFileError, read_secret_file

    if not given:
        return None
    missing = [f"--web-oidc-{name.replace('_', '-')}" for name in
               ("issuer", "client_id", "client_secret_file", "redirect_url") if name not in given]
    if missing:
        raise StationUsageError(f"OpenID Connect login also needs {', '.join(missing)}")
    try:
        secret = read_secret_file(Path(args.web_oidc_client_secret_file), "OIDC client secret",
                                  16, " (as the identity provider issued it)")
        return OidcSettings(
            issuer=args.web_oidc_issuer, client_id=args.web_oidc_client_id,
            client_secret=secret.decode("ascii"), redirect_url=args.web_oidc_redirect_url,
            user_claim=args.web_oidc_user_claim, acr_values=tuple(args.web_oidc_acr or ()),
            amr_values=tuple(args.web_oidc_amr or ()), cafile=args.web_oidc_cafile)
    except (SecretFileError, OidcConfigError) as exc:
        raise StationUsageError(str(exc)) from None


def _enroll(args: argparse.Namespace) -> int:
    from ..station.errors import EnrollmentError

    key = _given_public_key(args.public_key)
    store = open_store(args, create=True)
    try:
        fingerprint = store.enroll(args.device_id, key, by=_actor(args))
    except EnrollmentError as exc:
        print(f"bwv station enroll: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"enrolled {args.device_id}: key sha256 {fingerprint}")
    print("set this station's key on the camera (station.public_key in its settings, or "
          "`bwv upload --station-key`), so that it deletes only on this station's signed "
          "receipts:")
    print(store.identity.pin_line())
    return EXIT_OK


def _key(args: argparse.Namespace) -> int:
    """Print the line a camera pins: on its own on stdout, so it can be piped or copied."""
    identity = open_store(args).identity
    print(identity.pin_line())
    if not args.quiet:
        print(f"station {identity.station_id}, key sha256 {identity.fingerprint}: compare it "
              "with what the camera is given, out of band", file=sys.stderr)
    return EXIT_OK


def _audit(args: argparse.Namespace) -> int:
    from ..station import audit

    store = open_store(args)
    if args.checkpoint:
        made = audit.checkpoint(store.engine, store.identity, store.clock())
        assert made is not None
        print(made.export_line())
        return EXIT_OK
    if args.verify:
        return _audit_verify(store, args.against)
    if args.against is not None:
        raise StationUsageError("--against FILE goes with --verify")
    for entry in audit.entries(store.engine, args.recording):
        print(entry.line)
    return EXIT_OK


def _audit_verify(store: EvidenceStore, against: Path | None) -> int:
    """Check the chain and the signed checkpoints, and those exported to ``against``."""
    from ..station import audit

    check = audit.verify(store.engine, store.identity)
    problems = list(check.problems)
    exported = 0
    if against is not None:
        try:
            lines = against.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise StationUsageError(f"--against {against}: cannot read it ({exc})") from None
        outside = audit.verify_against(store.engine, store.identity, lines)
        if outside.checkpoints == 0 and not outside.problems:
            raise StationUsageError(f"--against {against}: it holds no checkpoint (give what "
                                    "`bwv station audit --checkpoint` printed)")
        problems.extend(outside.problems)
        exported = outside.checkpoints
    if not problems:
        print(f"audit chain OK: {check.entries} entries, every hash and link holds; "
              f"{check.checkpoints} signed checkpoints verify"
              + (f"; {exported} exported checkpoints still on the chain" if against else ""))
        return EXIT_OK
    print(f"audit chain BROKEN: {len(problems)} problems in {check.entries} entries",
          file=sys.stderr)
    for problem in problems[:50]:
        print(f"  {problem}", file=sys.stderr)
    return EXIT_FAILED


def _hold(args: argparse.Namespace) -> int:
    from ..station import retention

    hold = retention.place_hold(open_store(args), args.recording, args.reason, args.case,
                                by=_actor(args))
    print(f"held {hold.recording_id} (hold {hold.id}, case {hold.case_ref}): kept until released")
    return EXIT_OK


def _release(args: argparse.Namespace) -> int:
    from ..station import retention

    count = retention.release_holds(open_store(args), args.recording, by=_actor(args),
                                    reason=args.reason or "", case_ref=args.case)
    if count == 0:
        print(f"bwv station release: {args.recording} has no active hold"
              + (f" for case {args.case}" if args.case else ""), file=sys.stderr)
        return EXIT_FAILED
    print(f"released {count} hold(s) on {args.recording}; the next sweep deletes it if its "
          "retention has passed")
    return EXIT_OK


def _sweep(args: argparse.Namespace) -> int:
    from ..station import retention

    result = retention.sweep(open_store(args), by=_actor(args))
    if result.skipped:
        print("another station process on this catalogue is sweeping now: nothing done here")
        return EXIT_OK
    print(f"deleted {len(result.deleted)} recordings ({result.bytes_removed} bytes); "
          f"{len(result.kept_on_hold)} past retention kept on hold")
    for recording_id in result.deleted:
        print(f"  deleted {recording_id}")
    return EXIT_OK


def _stats(args: argparse.Namespace) -> int:
    from ..station import retention

    counts = retention.stats(open_store(args))
    if args.json:
        print(json.dumps(counts, sort_keys=True))
    else:
        for name, value in counts.items():
            print(f"{name.replace('_', ' '):<22}{value}")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from ..station.export import export_recording

    result = export_recording(open_store(args), args.recording, args.out, by=_actor(args),
                              purpose=args.purpose, decrypted=args.decrypted)
    print(f"wrote {result.path} ({result.files} files, sha256 {result.sha256}); "
          f"verification {'OK' if result.verified else 'FAILED'}")
    return EXIT_OK if result.verified else EXIT_FAILED


def _audio_range(text: str) -> object:
    from ..station.redact.plan import parse_range

    try:
        return parse_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _box(text: str) -> object:
    from ..station.redact.plan import parse_box

    try:
        return parse_box(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _track_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a track id (1, 2, ...)")
    return int(text)


def _every(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 4:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of frames from 1 to 4")
    return int(text)


def _redact(args: argparse.Namespace) -> int:
    from ..station.content_ca import CA_CERT_FILE
    from ..station.redact import Plan, redact_recording
    from ..station.redact.plan import BadBoxError
    from ..station.redact.render import DETECT_EVERY

    store = open_store(args)
    plan = Plan(args.recording, mask=args.mask, exclude_tracks=tuple(args.exclude_track),
                mute=tuple(args.mute), bleep=tuple(args.bleep), boxes=tuple(args.box))
    phases: list[str] = []

    def progress(phase: str, done: int, total: int | None) -> None:
        """One line per phase on stderr, rewritten in place (its frames so far)."""
        if not (args.progress or sys.stderr.isatty()):
            return
        if phases and phases[-1] != phase:
            print(file=sys.stderr)
        if not phases or phases[-1] != phase:
            phases.append(phase)
        print(f"\rbwv station redact: {phase} {done}{f'/{total}' if total else ''} frames",
              end="", file=sys.stderr, flush=True)

    try:
        result = redact_recording(store, plan, args.out, by=_actor(args),
                                  stride=args.detect_every or DETECT_EVERY,
                                  progress=progress)
    except BadBoxError as exc:  # a box outside the frame: a mistyped option, as a bad range
        raise StationUsageError(str(exc)) from None
    finally:
        if phases:
            print(file=sys.stderr)
    rendered = result.rendered
    masked = [track for track in rendered.tracks if track.id not in plan.exclude_tracks]
    print(f"wrote {result.path} ({rendered.frames} frames, {rendered.duration_s:.1f} s, sha256 "
          f"{result.sha256}); {len(masked)} face tracks masked ({args.mask})"
          + (f", {len(plan.exclude_tracks)} left visible" if plan.exclude_tracks else ""))
    for track in rendered.tracks:
        state = "visible" if track.id in plan.exclude_tracks else "masked"
        print(f"  track {track.id}: frames {track.first}-{track.last} "
              f"({len(track.detections)} detections), {state}")
    report = result.report
    print(f"report {report.path} (sha256 {report.sha256}), signed by station "
          f"{store.identity.station_id} in {report.signature}")
    made = result.credentials
    if made["added"]:
        ca = store.identity.key.path.parent / CA_CERT_FILE
        print(f"content credentials: C2PA manifest in {result.path}, signed with a certificate "
              f"of the station's CA {ca} (sha256 {made['ca_sha256']})")
    else:
        print("content credentials: none (see stderr)")
        print(f"bwv station redact: no content credentials added to {result.path}: "
              f"{made['reason']}", file=sys.stderr)
    return EXIT_OK


def _utc_us(text: str, option: str) -> int:
    from ..station.catalogue import parse_utc

    try:
        return parse_utc(text if text.endswith("Z") or "+" in text else text + "Z")
    except ValueError:
        raise StationUsageError(f"{option} {text!r} is not a UTC time such as "
                                "2026-11-23T07:00:00Z") from None


def _request(args: argparse.Namespace) -> int:
    from ..station.public_requests import export_request, record_request

    store = open_store(args)
    request = record_request(store, args.ref, args.requester, args.description,
                             _utc_us(args.start, "--from"), _utc_us(args.end, "--to"),
                             by=_actor(args), device_id=args.device, officer_id=args.officer)
    print(f"recorded request {request.reference}: {len(request.matches)} recordings held")
    for recording_id in request.matches:
        print(f"  held {recording_id}")
    for recording_id in request.gone:
        print(f"  gone {recording_id} (deleted on retention before the request)")
    if args.export is not None:
        for result in export_request(store, request.reference, args.export, by=_actor(args)):
            print(f"  exported {result.path} (verification "
                  f"{'OK' if result.verified else 'FAILED'})")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from ..station.catalogue import shown
    from ..station.device_records import officer_note

    store = open_store(args)
    for row in store.list_recordings():
        until = shown(row.retain_until_us, 10)
        flag = f"  camera clock: {row.clock_flag}" if row.clock_flag else ""
        print(f"{row.recording_id:<40} {row.device_id:<12} {row.status:<10} "
              f"{row.segment_count:>4} seg {row.total_bytes:>12} B  keep until {until}{flag}"
              f"  officer {officer_note(row)}"
              + (f"  FLAGGED: {row.device_flag}" if row.device_flag else ""))
    return EXIT_OK


def _devices(args: argparse.Namespace) -> int:
    from ..station.catalogue import iso
    from ..station.devices import list_devices

    for info in list_devices(open_store(args)):
        revoked = ("-" if info.revoked_us is None
                   else f"REVOKED {iso(info.revoked_us)[:19]}Z ({info.revoke_reason})")
        print(f"{info.device_id:<16} key {info.fingerprint[:16]}  enrolled "
              f"{iso(info.enrolled_us)[:10]}  keys {info.keys_held}  officer "
              f"{info.officer_id or '-'}  {revoked}")
    return EXIT_OK


def _revoke(args: argparse.Namespace) -> int:
    from ..station.devices import revoke

    since = None if args.since is None else _utc_us(args.since, "--since")
    flagged = revoke(open_store(args), args.device_id, args.reason, by=_actor(args),
                     since_us=since)
    print(f"revoked {args.device_id}: its requests are refused from now on; {flagged} "
          "recordings made or received since then are flagged")
    return EXIT_OK


def _rotate(args: argparse.Namespace) -> int:
    from ..station.devices import rotate

    key = _given_public_key(args.public_key)
    fingerprint = rotate(open_store(args), args.device_id, key, by=_actor(args))
    print(f"rotated {args.device_id} to key sha256 {fingerprint}; the old key is refused from "
          "now on and kept to verify what it signed")
    return EXIT_OK


def _assign(args: argparse.Namespace) -> int:
    from ..station.devices import assign

    start = None if args.start is None else _utc_us(args.start, "--from")
    end = None if args.end is None else _utc_us(args.end, "--to")
    restamped = assign(open_store(args), args.device_id, args.officer, by=_actor(args),
                       from_us=start, to_us=end)
    print(f"assigned {args.device_id} to officer {args.officer}; {restamped} recordings "
          "stamped again")
    return EXIT_OK


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The one-line message for a station dependency that is not installed, or None when the
    missing module is not one of them."""
    module = (exc.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    what = ("the evidence station" if extra == "station"
            else "a catalogue on PostgreSQL (--db postgresql+psycopg://...)")
    return f"{what} needs the {extra} extra ({module} is not installed): pip install " \
           f"'bwv-recorder[{extra}]'"


def run(args: argparse.Namespace) -> int:
    """Run the chosen station subcommand; usage errors (a missing extra too) print one line and
    return 2."""
    from ..station.errors import StationError

    if args.station_command is None:
        args.station_parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        result: int = args.station_func(args)
    except ModuleNotFoundError as exc:
        message = missing_extra(exc)
        if message is None:
            raise
        print(f"bwv station {args.station_command}: {message}", file=sys.stderr)
        return EXIT_USAGE
    except StationUsageError as exc:
        print(f"bwv station {args.station_command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StationError as exc:
        print(f"bwv station {args.station_command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return result


STATION_DESCRIPTION = """\
The evidence station: receives uploads from enrolled cameras, verifies every recording
(the same checks as `bwv verify`, against the enrolled key), keeps it for the retention
period (31 days after it was recorded) unless it is held as evidence, and records every
ingest, view, export, hold, release and deletion in a hash-chained audit log.

State lives in --data DIR (or $BWV_STATION_DATA): the SQLite catalogue and the blobs.
A fleet puts the catalogue on PostgreSQL with --db postgresql+psycopg://USER@HOST/DB.

Only `serve` and `enroll` start a new station (a station begins by being served, or
by enrolling its first camera). Every other command works on recordings a station
already holds: given a --data or --db that holds no station, it stops with exit
status 2 and names the path, so a mistyped path never creates an empty station.

The station needs the station extra: pip install 'bwv-recorder[station]'.
"""


def _store_options(data_help: str) -> argparse.ArgumentParser:
    """The --data and --db options, as a parent parser."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--data", metavar="DIR", help=data_help)
    options.add_argument("--db", metavar="URL", help=f"catalogue URL (default ${DB_ENV_VAR}, "
                         "else SQLite in DIR; e.g. postgresql+psycopg://bwv@db.example/bwv)")
    options.add_argument("--blobs", metavar="WHERE",
                         help=f"where the blobs are (default ${BLOBS_ENV_VAR}, else DIR/blobs): "
                              "a directory, or s3://BUCKET/PREFIX with the endpoint and "
                              "credentials from the environment (BWV_S3_ENDPOINT, AWS_*), never "
                              "on the command line (docs/station.md, \"Blobs in S3\")")
    options.add_argument("--encryption-kem", choices=["x25519", "mlkem768-x25519"],
                         help="the KEM of the station's encryption key when it is made (default "
                              "x25519; mlkem768-x25519 is the post-quantum hybrid, for footage "
                              "that must stay secret for decades); a station keeps the KEM it "
                              "was made with, and refuses another")
    return options


def _add_limit_options(serve: argparse.ArgumentParser) -> None:
    """The `serve` options of the station's hard limits (docs/station.md, "Limits")."""
    limits = serve.add_argument_group("limits", "what one client or camera may take; checked "
                                      "before a body is read")
    limits.add_argument("--max-manifest-mib", type=float, default=4.0, metavar="MIB",
                        help="largest manifest accepted (default 4)")
    limits.add_argument("--max-segment-mib", type=float, default=512.0, metavar="MIB",
                        help="largest segment accepted (default 512)")
    limits.add_argument("--device-quota-gib", type=float, default=512.0, metavar="GIB",
                        help="bytes one camera's recordings may hold here, deleted ones not "
                             "counted (default 512; 0: no quota)")
    limits.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="time a client has to send a request's headers (default 10)")
    limits.add_argument("--body-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="longest pause while a body arrives (default 30)")
    limits.add_argument("--keep-alive", type=int, default=5, metavar="SECONDS",
                        help="idle time before a kept-alive connection is closed (default 5)")
    limits.add_argument("--max-connections", type=int, default=None, metavar="N",
                        help="open connections in all (default 1000, fewer when the open-file "
                             "limit is lower)")
    limits.add_argument("--max-connections-per-client", type=int, default=64, metavar="N",
                        help="open connections from one address (default 64; 0: no limit, "
                             "e.g. behind a reverse proxy that limits them itself)")


def add_station_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``bwv station ...`` to the `bwv` parser."""
    station = commands.add_parser(
        "station", help="run and manage the evidence station (serve, enroll, hold, sweep ...)",
        description=STATION_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    station.set_defaults(func=run, station_parser=station)
    common = _store_options(f"the data directory of an existing station (default "
                            f"${DATA_ENV_VAR}); exit 2 if it holds none")
    creating = _store_options(f"the station's data directory (default ${DATA_ENV_VAR}); a new "
                              "station is made there if there is none")
    who = argparse.ArgumentParser(add_help=False)
    who.add_argument("--by", metavar="NAME", help="who does this, for the audit log (default: "
                     "your login name)")
    sub = station.add_subparsers(dest="station_command", metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[creating], help="serve the station (uvicorn)",
                           description="Serve the station's device API with uvicorn, and sweep "
                           "retention every --sweep-every seconds. A new station is made in "
                           "--data when there is none (a station begins by being served). "
                           "For TLS give "
                           "--ssl-certfile and --ssl-keyfile (uvicorn's options); cameras then "
                           "use https:// and, for a private CA or a self-signed certificate, "
                           "`bwv upload --cafile` or the station.cafile setting.")
    serve.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                       help=f"address to listen on (default {DEFAULT_LISTEN})")
    serve.add_argument("--sweep-every", type=float, default=3600.0, metavar="SECONDS",
                       help="run the retention sweep this often (default 3600; 0: never)")
    serve.add_argument("--retention-days", type=_retention_days, default=31, metavar="DAYS",
                       help="delete recordings this many days after the station verified them "
                            "(or after they were recorded, when the camera's clock is believed "
                            "and that is later) unless held; at least 31 (default 31)")
    serve.add_argument("--ssl-certfile", metavar="PEM")
    serve.add_argument("--ssl-keyfile", metavar="PEM")
    serve.add_argument("--web-listen", metavar="HOST:PORT",
                       help="also serve the staff pages (login with password and TOTP code, "
                            "see `bwv station user`) on this address, never the device API's")
    serve.add_argument("--web-host", action="append", metavar="NAME",
                       help="a host name the staff pages answer to (repeat for more; default: "
                            "the --web-listen address, and localhost when it is loopback); a "
                            "request naming another host is refused")
    serve.add_argument("--web-proxy-secret-file", metavar="FILE",
                       help="trusted reverse-proxy mode: the staff pages believe the user "
                            "named in --web-proxy-user-header only on a request that carries "
                            "this file's secret in --web-proxy-secret-header (the file: one "
                            "line of 32+ characters, mode 600); every other request is refused. "
                            "The account must exist here and be enabled; its role is the "
                            "station's. Off by default")
    serve.add_argument("--web-proxy-user-header", default="X-Remote-User", metavar="NAME",
                       help="the header the proxy names the user in (default X-Remote-User)")
    serve.add_argument("--web-proxy-secret-header", default="X-BWV-Proxy-Secret",
                       metavar="NAME", help="the header the proxy sends the shared secret in "
                       "(default X-BWV-Proxy-Secret)")
    serve.add_argument("--web-oidc-issuer", metavar="URL",
                       help="OpenID Connect login: the identity provider's issuer URL (https; "
                            "its /.well-known/openid-configuration is read). With "
                            "--web-oidc-client-id, --web-oidc-client-secret-file and "
                            "--web-oidc-redirect-url, the login page offers the force's sign-in "
                            "beside the password form")
    serve.add_argument("--web-oidc-client-id", metavar="ID",
                       help="the station's client id at the identity provider")
    serve.add_argument("--web-oidc-client-secret-file", metavar="FILE",
                       help="a file (mode 600) holding the client secret, one line")
    serve.add_argument("--web-oidc-redirect-url", metavar="URL",
                       help="the URL the provider sends staff back to, as registered there: "
                            "https://STATION-NAME[:PORT]/oidc/callback")
    serve.add_argument("--web-oidc-user-claim", default="preferred_username", metavar="CLAIM",
                       help="the ID token claim that is the station account's name (default "
                            "preferred_username; or sub). No account is ever made from a token")
    serve.add_argument("--web-oidc-acr", action="append", metavar="VALUE",
                       help="accept only an ID token whose acr is this (repeat for more): how "
                            "the station insists the provider did MFA")
    serve.add_argument("--web-oidc-amr", action="append", metavar="VALUE",
                       help="accept only an ID token whose amr holds this method, e.g. mfa, "
                            "otp or hwk (repeat: any one of them)")
    serve.add_argument("--web-oidc-cafile", metavar="PEM",
                       help="the CA certificates that sign the identity provider's TLS "
                            "certificate (default: the system's)")
    serve.add_argument("--web", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument("--log-level", default="info",
                       choices=("critical", "error", "warning", "info", "debug"))
    _add_limit_options(serve)
    serve.set_defaults(station_func=_serve)

    enroll = sub.add_parser("enroll", parents=[creating, who], help="allow a camera to upload",
                            description="Enroll a camera's public key: only enrolled cameras "
                            "may upload, and their recordings are verified against this key. A "
                            "new station is made in --data when there is none (enrolling the "
                            "first camera may come before serving).")
    enroll.add_argument("--device-id", required=True, metavar="ID")
    enroll.add_argument("--public-key", required=True, metavar="KEY",
                        help="a key file (PEM), or the one-line key `bwv doctor` prints on the "
                             "camera, or 64 hex digits")
    enroll.set_defaults(station_func=_enroll)

    migrate = sub.add_parser(
        "migrate", parents=[common], help="bring the catalogue to this version's schema",
        description="Upgrade an existing station's catalogue to the schema this version "
        "needs, in one transaction (on PostgreSQL under a lock: a second migrate waits, then "
        "finds nothing to do); prints the revisions it goes from and to. Run it after "
        "installing a new version, with every station process stopped and a backup taken: "
        "the other commands refuse a catalogue that is behind (or ahead of) this version. "
        "Running it again does nothing. A new station needs no migrate.")
    migrate.set_defaults(station_func=_migrate)

    key = sub.add_parser("key", parents=[common], help="print the line a camera pins",
                         description="Print, on one line, what a camera needs to trust this "
                         "station: bwv-station/1:STATION-ID:PUBLIC-KEY:KEM:ENCRYPTION-KEY:SIGNATURE. "
                         "Give it to the camera as "
                         "the station.public_key setting or `bwv upload --station-key`. The "
                         "station's key (station_key.pem, 0600) is made with the station; "
                         "if it was lost, --new-key makes another (a new station id). A camera "
                         "given this line encrypts every recording for this station; the "
                         "station's encryption key (station_encryption_key, 0600) unwraps them.")
    key.add_argument("--quiet", action="store_true", help="print only the line")
    key.add_argument("--new-key", action="store_true",
                     help="make a new key when the station's signing key or encryption key "
                          "is lost (never replaces one): every camera must then pin the new line")
    key.set_defaults(station_func=_key)

    audit = sub.add_parser("audit", parents=[common], help="print or check the audit log",
                           description="Print the audit log as JSON lines (each line's prev is "
                           "the SHA-256 of the line before, as in the manifest), or check the "
                           "whole chain and the station's signed checkpoints with --verify "
                           "(exit 1 when broken). --checkpoint prints a fresh signed checkpoint "
                           "to keep elsewhere; --verify --against FILE then proves the log "
                           "was not rewritten before it.")
    audit.add_argument("--verify", action="store_true",
                       help="check the chain and every signed checkpoint (exit 1 when broken)")
    audit.add_argument("--against", type=Path, metavar="FILE",
                       help="with --verify: also check that the log still holds the "
                            "checkpoints in FILE (lines `--checkpoint` printed earlier)")
    audit.add_argument("--checkpoint", action="store_true",
                       help="sign the newest entry now and print the checkpoint as one JSON "
                            "line, to keep off the station (write-once storage, a second party)")
    audit.add_argument("--recording", metavar="ID", help="only entries about this recording")
    audit.set_defaults(station_func=_audit)

    hold = sub.add_parser("hold", parents=[common, who], help="keep a recording as evidence",
                          description="Place an evidence hold: the sweep keeps the recording "
                          "until every hold on it is released.")
    hold.add_argument("recording", metavar="RECORDING")
    hold.add_argument("--reason", required=True)
    hold.add_argument("--case", required=True, metavar="REF", help="case reference")
    hold.set_defaults(station_func=_hold)

    release = sub.add_parser("release", parents=[common, who], help="release evidence holds",
                             description="Release the holds on a recording (only those of "
                             "--case when given).")
    release.add_argument("recording", metavar="RECORDING")
    release.add_argument("--case", metavar="REF")
    release.add_argument("--reason", default="")
    release.set_defaults(station_func=_release)

    sweep = sub.add_parser("sweep", parents=[common, who], help="delete what retention allows",
                           description="Delete recordings whose retention has passed and that "
                           "are not held: blobs removed, tombstone and audit entry kept.")
    sweep.set_defaults(station_func=_sweep)

    stats = sub.add_parser("stats", parents=[common], help="recorded, uploaded, deleted, held",
                           description="Counts like the figures forces publish.")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(station_func=_stats)

    export = sub.add_parser("export", parents=[common, who], help="write an export package",
                            description="Write a recording's export package (zip): the "
                            "recording as the camera wrote it, the enrolled key, a verification "
                            "report, its audit entries and SHA256SUMS; for an encrypted "
                            "recording, its content key too. Audited.")
    export.add_argument("recording", metavar="RECORDING")
    export.add_argument("--out", required=True, type=Path, metavar="FILE.zip")
    export.add_argument("--purpose", required=True, help="why, for the audit log")
    export.add_argument("--decrypted", action="store_true",
                        help="an encrypted recording: add clear copies of its segments and "
                        "both hashes of each (decrypted.json)")
    export.set_defaults(station_func=_export)

    redact = sub.add_parser(
        "redact", parents=[common, who], help="write a redacted copy (faces masked)",
        description="Write a redacted copy of a recording as one MP4 (H.264 and AAC): every face "
        "the detector finds is tracked and masked, except the tracks given with "
        "--exclude-track; audio ranges are muted or bleeped. The track ids are printed; run "
        "again with --exclude-track to leave the requester visible. An encrypted recording is "
        "decrypted with the station's key. A report signed by the station is written beside "
        "it (FILE.mp4.report.json and FILE.mp4.report.json.sig) and, where c2pa-python is "
        "installed, C2PA Content Credentials signed by the station's own CA go into it. Never "
        "overwrites a file. Audited.")
    redact.add_argument("recording", metavar="RECORDING")
    redact.add_argument("--out", required=True, type=Path, metavar="FILE.mp4",
                        help="the redacted file (it and its report must not exist)")
    redact.add_argument("--mask", choices=["pixelate", "solid"], default="pixelate",
                        help="pixelate (coarse blocks plus noise; default) or solid (grey fill)")
    redact.add_argument("--mute", action="append", default=[], type=_audio_range,
                        metavar="START-END", help="silence this range of the audio, in seconds "
                        "from the first frame (e.g. 12.5-20 or 1:02-1:10; repeat for more)")
    redact.add_argument("--bleep", action="append", default=[], type=_audio_range,
                        metavar="START-END", help="replace this range with a 1 kHz tone")
    redact.add_argument("--box", action="append", default=[], type=_box,
                        metavar="T:X,Y,W,H[;T:X,Y,W,H...]",
                        help="also mask a box drawn by hand (a number plate, a screen): "
                        "keyframes, T in seconds as for --mute, X, Y, W, H in pixels of the "
                        "footage; the box moves linearly between keyframes and is masked from "
                        "the first keyframe's time to the last's (repeat for more)")
    redact.add_argument("--exclude-track", action="append", default=[], type=_track_id,
                        metavar="N", help="leave face track N visible (repeat for more)")
    redact.add_argument("--detect-every", type=_every, default=None, metavar="N",
                        help="run the face detector on every Nth frame, 1 to 4 (default 3; the "
                        "tracker fills the frames between); 1 is slower, and finds a face a "
                        "frame sooner")
    redact.add_argument("--progress", action="store_true",
                        help="show progress on stderr even when it is not a terminal")
    redact.set_defaults(station_func=_redact)

    public = sub.add_parser("request", parents=[common, who],
                            help="record a request from the public; hold matching footage",
                            description="Record a written request from a member of the public "
                            "for footage of themselves: every recording overlapping the time "
                            "window (and device/officer, when given) is held under the "
                            "request's reference; --export writes their packages.")
    public.add_argument("--ref", required=True, help="the request's reference")
    public.add_argument("--requester", required=True, help="who asked")
    public.add_argument("--from", dest="start", required=True, metavar="UTC")
    public.add_argument("--to", dest="end", required=True, metavar="UTC")
    public.add_argument("--device", metavar="ID")
    public.add_argument("--officer", metavar="ID")
    public.add_argument("--description", default="", help="place, what happened")
    public.add_argument("--export", type=Path, metavar="DIR",
                        help="also write the original export packages into DIR, for the "
                             "force's own file (a requester receives redacted copies: bwv "
                             "station redact)")
    public.set_defaults(station_func=_request)

    listing = sub.add_parser("list", parents=[common], help="list the recordings",
                             description="One line per recording, tombstones included.")
    listing.set_defaults(station_func=_list)

    devices = sub.add_parser("devices", parents=[common], help="list the enrolled cameras",
                             description="One line per enrolled camera: key fingerprint, "
                             "enrolled, keys held, officer assigned now, revoked.")
    devices.set_defaults(station_func=_devices)

    revoke = sub.add_parser("revoke", parents=[common, who], help="stop trusting a camera",
                            description="Revoke a lost, stolen or retired camera: every request "
                            "signed by it is refused from now on, and the recordings it made or "
                            "sent since --since (default now) are flagged. Final: a found camera "
                            "is enrolled again under a new device id.")
    revoke.add_argument("--device-id", required=True, metavar="ID")
    revoke.add_argument("--reason", required=True, metavar="TEXT")
    revoke.add_argument("--since", metavar="UTC", help="when it may have left your hands "
                        "(default now), e.g. 2026-11-23T07:00:00Z")
    revoke.set_defaults(station_func=_revoke)

    rotate = sub.add_parser("rotate", parents=[common, who], help="give a camera a new key",
                            description="Replace a camera's key for future uploads (the old key "
                            "is refused from now on, and kept to verify what it signed).")
    rotate.add_argument("--device-id", required=True, metavar="ID")
    rotate.add_argument("--public-key", required=True, metavar="KEY",
                        help="the new key: a PEM file, the one-line key `bwv doctor` prints, "
                             "or 64 hex digits")
    rotate.set_defaults(station_func=_rotate)

    assignment = sub.add_parser("assign", parents=[common, who],
                                help="record which officer wears a camera",
                                description="Record that an officer wears a camera from --from "
                                "(default now) to --to (default until further notice). Each "
                                "recording is stamped with this officer beside the one the "
                                "camera claims; a difference is flagged.")
    assignment.add_argument("--device-id", required=True, metavar="ID")
    assignment.add_argument("--officer", required=True, metavar="ID")
    assignment.add_argument("--from", dest="start", metavar="UTC")
    assignment.add_argument("--to", dest="end", metavar="UTC")
    assignment.set_defaults(station_func=_assign)

    from .station_users import StationTools, add_user_parser

    add_user_parser(sub, common, who, StationTools(open_store, _actor, StationUsageError))
