"""`bwv station ...` as a user meets it on a fresh machine, in real subprocesses: every command a
station message suggests exists with the flags it names, a mistyped --data never becomes a new,
empty station (only serve and enroll create one), and without the station extra each command
says what to install in one line (exit 2) while `bwv --help` and `bwv station --help` still work.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.station import make_recording, make_store
from support import warm

from recorder.cli import station as commands
from recorder.integrity.keys import DeviceKey

REPO = Path(__file__).resolve().parents[1]
STATION_SOURCES = sorted((REPO / "recorder" / "station").glob("*.py"))
SUGGESTION = re.compile(r"`bwv ([^`]+)`")
RID = "20261123T070000Z-cam7"
# A finder that makes the station extra's packages look uninstalled (as in a base install).
BLOCKER = '''\
import sys

class BlockStationExtra:
    blocked = {"sqlalchemy", "starlette", "uvicorn"}

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, BlockStationExtra())
'''


def bwv(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`bwv ARGS` in a subprocess, against the installed package (cwd="/")."""
    environ = {**os.environ, "RECORDER_NATIVE": "off", **(env or {})}
    environ.pop(commands.DATA_ENV_VAR, None)
    environ.pop(commands.DB_ENV_VAR, None)
    return warm.run([*args], cwd="/", env=environ, timeout=60)


def suggestions() -> list[tuple[str, str]]:
    """(file, command) for every `bwv ...` in backquotes in the station's code: messages,
    f-strings (each placeholder read as X) and docstrings."""
    found = set()
    for path in STATION_SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            elif isinstance(node, ast.JoinedStr):
                text = "".join(part.value if isinstance(part, ast.Constant) else "X"
                               for part in node.values)
            else:
                continue
            found.update((path.name, match.group(1)) for match in SUGGESTION.finditer(text))
    return sorted(found)


def test_the_station_code_suggests_commands() -> None:
    commands_found = {command for _, command in suggestions()}
    assert "station list --data DIR" in commands_found  # the hint of an unknown recording
    assert len(commands_found) >= 5


@pytest.mark.parametrize(("source", "suggested"), suggestions())
def test_every_suggested_command_and_flag_exists(source: str, suggested: str) -> None:
    words = suggested.split()
    path = []
    for word in words:
        if not re.fullmatch(r"[a-z]+", word):
            break
        path.append(word)
    result = bwv(*path, "--help")
    assert result.returncode == 0, f"{source}: `bwv {suggested}`: {result.stderr}"
    usage = result.stdout.split("\n\n")[0]
    assert f"bwv {' '.join(path)}" in usage, f"{source}: `bwv {suggested}` is not a command"
    for flag in (word for word in words if word.startswith("--")):
        assert re.search(rf"(^|\s|\[){re.escape(flag)}\b", result.stdout), \
            f"{source}: `bwv {suggested}`: bwv {' '.join(path)} has no {flag}"


def test_an_unknown_recording_suggests_a_command_that_lists_them(tmp_path: Path) -> None:
    station = tmp_path / "station"
    make_store(station)
    result = bwv("station", "hold", "NOPE", "--data", str(station), "--reason", "r", "--case",
                 "c")
    assert result.returncode == 1
    suggested = SUGGESTION.search(result.stderr)
    assert suggested is not None, result.stderr
    listing = bwv(*suggested.group(1).replace("DIR", str(station)).split())
    assert listing.returncode == 0, listing.stderr


READ_ONLY_COMMANDS = {
    "audit": [],
    "hold": [RID, "--reason", "r", "--case", "c"],
    "release": [RID],
    "sweep": [],
    "stats": [],
    "export": [RID, "--out", "OUT/x.zip", "--purpose", "court"],
    "redact": [RID, "--out", "OUT/x.mp4"],
    "request": ["--ref", "R", "--requester", "x", "--from", "2026-11-23T06:00:00Z", "--to",
                "2026-11-23T08:00:00Z"],
    "list": [],
    "devices": [],
    "revoke": ["--device-id", "cam7", "--reason", "lost"],
    "rotate": ["--device-id", "cam7", "--public-key", "0" * 64],
    "assign": ["--device-id", "cam7", "--officer", "PC 1"],
    "key": [],
    "migrate": [],
}


# commands with subcommands of their own: tests/test_station_users_cli.py shows that each of
# `user add|list|disable|reset` refuses a mistyped --data and creates nothing
NESTED_COMMANDS = {"user"}


def _read_only_args(command: str, tmp_path: Path) -> list[str]:
    return [arg.replace("OUT", str(tmp_path)) for arg in READ_ONLY_COMMANDS[command]]


def test_every_command_is_either_creating_or_read_only() -> None:
    listed = set(READ_ONLY_COMMANDS) | set(commands.CREATING_COMMANDS) | NESTED_COMMANDS
    help_text = bwv("station", "--help").stdout
    offered = set(re.findall(r"^    ([a-z]+)\s", help_text, flags=re.MULTILINE))
    assert offered == listed


@pytest.mark.parametrize("command", sorted(READ_ONLY_COMMANDS))
def test_a_mistyped_data_directory_is_refused_and_not_created(command: str,
                                                              tmp_path: Path) -> None:
    mistyped = tmp_path / "statoin"
    result = bwv("station", command, "--data", str(mistyped), *_read_only_args(command, tmp_path))
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"bwv station {command}: no station in {mistyped}: the directory "
                             "does not exist (check --data or $BWV_STATION_DATA; only `bwv "
                             "station serve` and `bwv station enroll` create a station)\n")
    assert not mistyped.exists()


@pytest.mark.parametrize("command", sorted(READ_ONLY_COMMANDS))
def test_a_directory_without_a_catalogue_is_refused_and_left_alone(command: str,
                                                                   tmp_path: Path) -> None:
    other = tmp_path / "somewhere-else"
    other.mkdir()
    result = bwv("station", command, "--data", str(other), *_read_only_args(command, tmp_path))
    assert result.returncode == 2, result.stderr
    assert (f"no station in {other}: the catalogue {other / 'catalogue.sqlite3'} does not exist"
            in result.stderr)
    assert list(other.iterdir()) == []


def test_a_database_without_the_station_tables_is_refused(tmp_path: Path) -> None:
    import sqlite3

    data = tmp_path / "data"
    data.mkdir()
    sqlite3.connect(data / "other.sqlite3").close()
    result = bwv("station", "stats", "--data", str(data), "--db",
                 f"sqlite:///{data / 'other.sqlite3'}")
    assert result.returncode == 2
    assert "has no station tables" in result.stderr and str(data) in result.stderr


@pytest.mark.parametrize("command", sorted(commands.CREATING_COMMANDS))
def test_the_help_says_which_commands_create_a_station(command: str) -> None:
    assert "A new station is made" in " ".join(bwv("station", command, "--help").stdout.split())


def test_enroll_creates_a_station_that_the_other_commands_then_use(tmp_path: Path) -> None:
    station = tmp_path / "new-station"
    key = DeviceKey.load_or_create(tmp_path / "camera")
    result = bwv("station", "enroll", "--data", str(station), "--device-id", "cam7",
                 "--public-key", key.public_key_raw.hex())
    assert result.returncode == 0, result.stderr
    assert (station / "catalogue.sqlite3").is_file()
    stats = bwv("station", "stats", "--data", str(station), "--json")
    assert stats.returncode == 0 and '"recorded": 0' in stats.stdout
    audit = bwv("station", "audit", "--data", str(station), "--verify")
    assert audit.returncode == 0 and audit.stdout.startswith("audit chain OK: 1 entries")


def test_read_only_commands_work_on_an_existing_station(tmp_path: Path) -> None:
    station = tmp_path / "station"
    key = DeviceKey.load_or_create(tmp_path / "camera")
    store = make_store(station)
    store.enroll("cam7", key.public_key, by="admin")
    from support.station import ingest

    ingest(store, make_recording(tmp_path / "recordings", key))
    for command in READ_ONLY_COMMANDS:
        result = bwv("station", command, "--data", str(station),
                     *_read_only_args(command, tmp_path))
        assert result.returncode in (0, 1), (command, result.stderr)  # release: no hold, 1
        assert "no station" not in result.stderr


# --- a base install: no starlette, uvicorn or sqlalchemy


@pytest.fixture(scope="module")
def base_install(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment variables under which the station extra's packages cannot be imported. One
    directory for the module: the environment is then the same for every test, so its `bwv`
    processes fork from one warm process (support.warm) instead of starting one each."""
    blocker = tmp_path_factory.mktemp("blocker")
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    return {"PYTHONPATH": str(blocker)}


def test_the_blocker_blocks(base_install: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-c", "import sqlalchemy"], capture_output=True,
                            text=True, env={**os.environ, **base_install}, cwd="/")
    assert result.returncode == 1 and "No module named 'sqlalchemy'" in result.stderr


@pytest.mark.parametrize("args", [["--help"], ["station", "--help"], ["station", "list", "--help"],
                                  ["station", "serve", "--help"], ["upload", "--help"]])
def test_help_works_without_the_station_extra(args: list[str],
                                              base_install: dict[str, str]) -> None:
    result = bwv(*args, env=base_install)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.startswith("usage: bwv")


@pytest.mark.parametrize("args", [
    ["list", "--data", "DATA"], ["stats", "--data", "DATA"], ["audit", "--data", "DATA"],
    ["serve", "--data", "DATA", "--listen", "127.0.0.1:9"],
    ["enroll", "--data", "DATA", "--device-id", "cam7", "--public-key", "00" * 32],
    ["hold", RID, "--data", "DATA", "--reason", "r", "--case", "c"],
])
def test_a_station_command_without_the_extra_says_what_to_install(
        args: list[str], base_install: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "station"
    make_store(data)
    result = bwv("station", *(str(data) if arg == "DATA" else arg for arg in args),
                 env=base_install)
    assert result.returncode == 2
    assert re.fullmatch(rf"bwv station {args[0]}: the evidence station needs the station extra "
                        r"\((sqlalchemy|starlette|uvicorn) is not installed\): pip install "
                        r"'bwv-recorder\[station\]'\n", result.stderr), result.stderr
    assert result.stdout == ""
