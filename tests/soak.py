"""Soak test: `bwv run` for a long time, buffering and recording in turn, watched from /proc.

A camera runs for a whole shift. A leak of a few kilobytes per recording, a descriptor or a thread
left behind by each stop, never shows in a test of seconds; it shows after hours, when the card
or the memory is gone. This drives the real program (`bwv run --board terminal`, keys on its
stdin, the status line on its stdout) with a small synthetic camera and synthetic audio through
cycles of buffering -> recording -> buffering at random intervals, with markers, and samples the
process's resident memory, open descriptors, threads and CPU time every few seconds.

The verdict, in the JSON report and the exit status (0 flat, 1 not, 2 usage):
- every recording made is sealed and passes `bwv verify`, and none is missing;
- the linear trend of RSS over the last 80% of the run is under ``--max-rss-kb-per-min``
  (the first 20% is warm-up: imports, the ring's arena faulting in, the allocator's pools);
- descriptors and threads, once back to buffering after each recording, return to the baseline
  of the first buffering (a stop that leaks one shows at once, not after an hour);
- the process exits 0 on SIGTERM with no traceback in its log.

    python tests/soak.py --minutes 60 --report soak.json
    python tests/soak.py --minutes 5 --report soak.json     # the CI version

Run from a checkout with the package installed (`scripts/setup --test`); it starts
``python -m recorder`` from "/" so the installed package, not ./recorder, is the one soaked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

BWV = [sys.executable, "-m", "recorder"]
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
STATE_TIMEOUT_S = 30.0  # a state change the camera takes longer than this for is a failure
SETTLE_S = 5.0  # after a stop, how long descriptors and threads may take to return to baseline


@dataclasses.dataclass
class Sample:
    """One look at the process in /proc."""

    t_s: float  # since the camera started buffering
    state: str  # "buffering" or "recording", as the status line last said
    rss_kb: int
    fds: int
    threads: int
    cpu_s: float  # user + system time so far


@dataclasses.dataclass
class Cycle:
    """One recording: when it started and stopped, and what the process held after it."""

    number: int
    started_s: float
    recorded_s: float
    markers: int
    fds_after: int
    threads_after: int
    settled_s: float  # how long after the stop both were back to baseline (-1: never)


class SoakError(Exception):
    """The camera did not do what the soak asked of it in time: a failure of the run."""


class Output:
    """A stream of the process, read by a thread; the last 64 KiB are kept (an hour of status
    lines must not grow the soak's own memory)."""

    KEEP = 65536

    def __init__(self, stream: IO[bytes], copy: IO[bytes] | None = None) -> None:
        self._stream = stream
        self._copy = copy
        self._tail = b""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._stream.fileno(), 65536)
            except OSError:
                return
            if not chunk:
                return
            if self._copy is not None:
                self._copy.write(chunk)
                self._copy.flush()
            with self._lock:
                self._tail = (self._tail + chunk)[-self.KEEP:]

    def text(self) -> str:
        with self._lock:
            return self._tail.decode("utf-8", "replace")

    def last_status(self) -> str:
        """The status words of the last status line drawn, e.g. "recording: ok"."""
        line = self.text().rsplit("\r", 1)[-1]
        return line.split("  ")[-1].split("\x1b", 1)[0].strip()

    def join(self) -> None:
        self._thread.join(timeout=10)


def first_traceback(log: str) -> str:
    """The exception line that ends the first traceback of ``log``."""
    after = log.split("Traceback (most recent call last):", 1)[1].splitlines()
    return next((line for line in after if line and not line.startswith(" ")), "?")[:300]


def read_proc(pid: int) -> tuple[int, int, int, float]:
    """(RSS in KiB, open descriptors, threads, CPU seconds) of ``pid`` from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = int(fields["VmRSS"].split()[0])
    threads = int(fields["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    stat = Path(f"/proc/{pid}/stat").read_text()
    after_name = stat.rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses
    cpu_s = (int(after_name[11]) + int(after_name[12])) / TICKS_PER_S  # utime, stime
    return rss_kb, fds, threads, cpu_s


def linear_trend(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of y over x (0 for fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx


def rss_trend_kb_per_min(samples: list[Sample], skip_fraction: float = 0.2,
                         state: str | None = None) -> float:
    """The RSS trend over the run after its first ``skip_fraction``, in KiB per minute; only
    the samples in ``state`` if given."""
    if not samples:
        return 0.0
    start = samples[0].t_s + (samples[-1].t_s - samples[0].t_s) * skip_fraction
    points = [(s.t_s / 60.0, float(s.rss_kb)) for s in samples
              if s.t_s >= start and (state is None or s.state == state)]
    return linear_trend(points)


def write_config(work: Path, fps: int) -> Path:
    """Settings for a small camera (320x240) with synthetic audio, data under ``work``."""
    config = work / "recorder.toml"
    config.write_text(f"""\
[device]
device_id = "soak"
[camera]
source = "synthetic"
width = 320
height = 240
fps = {fps}
bitrate_bps = 300000
keyframe_interval_s = 1.0
[audio]
source = "synthetic"
[recording]
pre_event_s = 5.0
segment_s = 10.0
[storage]
data_dir = "{work / 'data'}"
min_free_mb = 50.0
[board]
hold_s = 1.0
""")
    return config


class Soak:
    """One soak run: the process, the sampler, the cycles."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.rng = random.Random(args.seed)
        self.samples: list[Sample] = []
        self.cycles: list[Cycle] = []
        self.failures: list[str] = []
        self.state = "starting"
        self.exit_code: int | None = None
        self.t0 = time.monotonic()
        self._stop_sampling = threading.Event()
        self.log_file = open(work / "bwv-run.log", "wb")
        self.process = subprocess.Popen(
            [*BWV, "run", "--board", "terminal", "--config",
             str(write_config(work, args.fps))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd="/", env={k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"})
        assert self.process.stdout is not None and self.process.stderr is not None
        self.board = Output(self.process.stdout)
        self.log = Output(self.process.stderr, copy=self.log_file)

    # -- driving the camera ----------------------------------------------------------------------

    def keys(self, keys: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(keys)
        self.process.stdin.flush()

    def wait_status(self, words: str, timeout: float = STATE_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not self.board.last_status().startswith(words):
            if self.process.poll() is not None:
                raise SoakError(f"bwv run exited ({self.process.returncode}) while waiting for "
                                f"{words!r}; log:\n{self.log.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise SoakError(f"no {words!r} within {timeout:g} s; the board says "
                                f"{self.board.last_status()!r}")
            time.sleep(0.05)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def sample(self) -> Sample:
        rss_kb, fds, threads, cpu_s = read_proc(self.process.pid)
        return Sample(round(self.now(), 2), self.state, rss_kb, fds, threads, cpu_s)

    def _sampler(self) -> None:
        while not self._stop_sampling.wait(self.args.sample_s):
            try:
                self.samples.append(self.sample())
            except (OSError, KeyError, ValueError, IndexError):
                return  # the process is gone

    def settle(self, baseline: Sample) -> tuple[Sample, float]:
        """Wait (at most SETTLE_S) for descriptors and threads to be back at ``baseline``."""
        start = time.monotonic()
        while True:
            now = self.sample()
            if (now.fds, now.threads) == (baseline.fds, baseline.threads):
                return now, round(time.monotonic() - start, 2)
            if time.monotonic() - start > SETTLE_S:
                return now, -1.0
            time.sleep(0.1)

    def one_cycle(self, number: int, baseline: Sample, end: float) -> None:
        buffering = self.rng.uniform(*self.args.buffer_s)
        time.sleep(max(0.0, min(buffering, end - time.monotonic())))
        self.keys(b"  ")  # a double press: start
        self.wait_status("recording")
        self.state = "recording"
        started = self.now()
        length = self.rng.uniform(*self.args.record_s)
        markers = 0
        stop_at = time.monotonic() + length
        while time.monotonic() < stop_at:
            time.sleep(min(self.rng.uniform(1.5, 6.0), max(0.0, stop_at - time.monotonic())))
            if time.monotonic() < stop_at - 1.0 and self.rng.random() < 0.4:
                self.keys(b" ")  # a single press: a marker
                markers += 1
        self.keys(b"h")  # hold for hold_s: stop
        self.wait_status("buffering")
        self.state = "buffering"
        recorded = round(self.now() - started, 2)
        after, settled = self.settle(baseline)
        cycle = Cycle(number, round(started, 2), recorded, markers, after.fds, after.threads,
                      settled)
        self.cycles.append(cycle)
        if settled < 0:
            self.failures.append(
                f"cycle {number}: {after.fds} descriptors and {after.threads} threads "
                f"{SETTLE_S:g} s after the stop; baseline {baseline.fds} and {baseline.threads}")
        print(f"[{self.now() / 60:6.1f} min] cycle {number}: recorded {recorded:.1f} s, "
              f"{markers} markers; rss {after.rss_kb / 1024:.1f} MiB, fds {after.fds}, threads "
              f"{after.threads}, cpu {after.cpu_s:.0f} s", flush=True)

    def run(self) -> None:
        sampler = threading.Thread(target=self._sampler, daemon=True)
        try:
            self.wait_status("buffering", timeout=120)
            self.state = "buffering"
            self.t0 = time.monotonic()
            time.sleep(2.0)  # the sources settle
            baseline = self.sample()
            self.samples.append(baseline)
            sampler.start()
            end = time.monotonic() + self.args.minutes * 60
            number = 0
            while time.monotonic() < end - self.args.record_s[1] - self.args.buffer_s[1] - 10:
                number += 1
                self.one_cycle(number, baseline, end)
            time.sleep(max(0.0, end - time.monotonic()))  # the tail of the run, buffering
        finally:
            self._stop_sampling.set()
            if sampler.is_alive():
                sampler.join(timeout=self.args.sample_s + 5)
            self.finish()

    def finish(self) -> None:
        """SIGTERM (it seals whatever is open), then check the exit and the log."""
        code = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=10)
            self.failures.append("bwv run did not exit within 60 s of SIGTERM")
        self.board.join()
        self.log.join()
        self.log_file.close()
        if code != 0:
            self.failures.append(f"bwv run exited {code}")
        text = (self.work / "bwv-run.log").read_text(errors="replace")
        if "Traceback" in text:
            self.failures.append(f"{text.count('Traceback')} tracebacks in the log of bwv run "
                                 f"(first: {first_traceback(text)})")
        self.exit_code = code

    # -- the verdict -----------------------------------------------------------------------------

    def check_recordings(self) -> dict[str, Any]:
        recordings = sorted(p for p in (self.work / "data" / "recordings").glob("*") if p.is_dir())
        verified, problems = 0, []
        for recording in recordings:
            result = subprocess.run([*BWV, "verify", "--json", str(recording)], cwd="/",
                                    capture_output=True, text=True, timeout=300)
            ok, why = verified_ok(result)
            if ok:
                verified += 1
            else:
                problems.append(f"{recording.name}: {why}")
        if len(recordings) != len(self.cycles):
            self.failures.append(f"{len(self.cycles)} recordings made, "
                                 f"{len(recordings)} on disk")
        self.failures += [f"does not verify: {p}" for p in problems]
        return {"made": len(self.cycles), "on_disk": len(recordings), "verified": verified}

    def report(self, recordings: dict[str, Any]) -> dict[str, Any]:
        samples, args = self.samples, self.args
        if not samples:
            return {"verdict": "not flat", "failures": self.failures, "recordings": recordings,
                    "exit_code": self.exit_code}
        trend = rss_trend_kb_per_min(samples)
        if trend > args.max_rss_kb_per_min:
            self.failures.append(f"RSS grows {trend:.1f} KiB/min over the last 80% of the run "
                                 f"(limit {args.max_rss_kb_per_min:g})")
        first, last = samples[0], samples[-1]
        span = max(last.t_s - first.t_s, 1e-9)
        return {
            "command": " ".join(["python", "tests/soak.py", *sys.argv[1:]]),
            "seed": args.seed,
            "native": os.environ.get("RECORDER_NATIVE", "auto"),
            "minutes": round(span / 60, 2),
            "verdict": "flat" if not self.failures else "not flat",
            "failures": self.failures,
            "rss_kb": {"start": first.rss_kb, "end": last.rss_kb,
                       "min": min(s.rss_kb for s in samples),
                       "max": max(s.rss_kb for s in samples),
                       "trend_kb_per_min_last_80pct": round(trend, 2),
                       "trend_kb_per_min_last_80pct_buffering": round(
                           rss_trend_kb_per_min(samples, state="buffering"), 2),
                       "limit_kb_per_min": args.max_rss_kb_per_min},
            "fds": {"baseline": first.fds, "min": min(s.fds for s in samples),
                    "max": max(s.fds for s in samples), "end": last.fds},
            "threads": {"baseline": first.threads, "min": min(s.threads for s in samples),
                        "max": max(s.threads for s in samples), "end": last.threads},
            "cpu_percent_of_a_core": round(100 * (last.cpu_s - first.cpu_s) / span, 1),
            "recordings": recordings,
            "exit_code": self.exit_code,
            "cycles": [dataclasses.asdict(c) for c in self.cycles],
            "samples": [dataclasses.asdict(s) for s in samples],
        }


def verified_ok(result: subprocess.CompletedProcess[str]) -> tuple[bool, str]:
    """Whether `bwv verify --json` passed the recording, and if not its first problems."""
    try:
        report = json.loads(result.stdout)
        if result.returncode == 0 and report["ok"] is True:
            return True, ""
        return False, "; ".join(f"{p['where']}: {p['message']}" for p in report["problems"][:3])
    except (ValueError, KeyError, TypeError):
        return False, f"exit {result.returncode}: {(result.stdout + result.stderr)[-300:]}"


def seconds_range(text: str) -> tuple[float, float]:
    """"LOW,HIGH" seconds, for the random intervals."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not LOW,HIGH in seconds") from None
    if not 0 < low <= high < 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 < LOW <= HIGH < 3600")
    return low, high


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tests/soak.py", description="Soak `bwv run`: buffering/recording cycles for a "
        "long time, sampling RSS, descriptors, threads and CPU; exit 0 when flat.")
    parser.add_argument("--minutes", type=positive, default=60.0, help="default 60")
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument("--sample-s", type=positive, default=5.0,
                        help="seconds between samples (default 5)")
    parser.add_argument("--seed", type=int, default=None, help="for the random intervals")
    parser.add_argument("--fps", type=int, choices=range(10, 31), default=15, metavar="10-30")
    parser.add_argument("--buffer-s", type=seconds_range, default=(3.0, 20.0),
                        help="buffering between recordings, LOW,HIGH seconds (default 3,20)")
    parser.add_argument("--record-s", type=seconds_range, default=(5.0, 40.0),
                        help="length of a recording, LOW,HIGH seconds (default 5,40)")
    parser.add_argument("--max-rss-kb-per-min", type=positive, default=64.0,
                        help="the RSS trend allowed over the last 80%% (default 64 KiB/min)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="work in this new directory and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    if args.minutes * 60 < args.record_s[1] + args.buffer_s[1] + 30:
        parser.error(f"--minutes {args.minutes:g} leaves no room for one cycle")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.keep is not None:
        try:
            args.keep.mkdir(parents=True)
        except OSError as exc:
            print(f"soak: --keep {args.keep}: {exc.strerror}", file=sys.stderr)
            return 2
    work = args.keep if args.keep is not None else Path(tempfile.mkdtemp(prefix="bwv-soak-"))
    print(f"soak: {args.minutes:g} min of bwv run in {work}, seed {args.seed}", flush=True)
    soak = Soak(args, work)
    try:
        soak.run()
    except SoakError as exc:
        soak.failures.append(str(exc))
    except KeyboardInterrupt:
        soak.failures.append("interrupted")
    recordings = soak.check_recordings()
    report = soak.report(recordings)
    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=1) + "\n")
    summary = {k: report.get(k) for k in ("verdict", "minutes", "rss_kb", "fds", "threads",
                                      "cpu_percent_of_a_core", "recordings", "failures")}
    print(json.dumps(summary, indent=1), flush=True)
    if args.keep is None and not soak.failures:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if not soak.failures else 1


if __name__ == "__main__":
    sys.exit(main())
