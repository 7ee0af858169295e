"""The install matches the code: what a module imports when it is loaded is declared in
pyproject.toml (the base install for the camera, the `station` extra for the station), and in a
venv made with the base install only every camera module imports and `bwv` works.

The first test reads the source (quick, and names the module and the undeclared package); the
second builds a wheel, installs it without extras into a fresh venv and imports every module,
as a newcomer's `bash scripts/run` would.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from collections.abc import Mapping
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = canonicalize_name(PYPROJECT["project"]["name"])

# Where the package's modules come from: the import name's prefix and its folder in the source.
SOURCE_ROOTS = {"recorder": REPO / "recorder", "recorder.board": REPO / "board"}
STATION_PREFIX = "recorder.station."  # modules here may also use the `station` extra


def requirement_names(requirements: list[str]) -> set[str]:
    """Distribution names in a requirement list, with this project's own extras expanded."""
    names: set[str] = set()
    for text in requirements:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == PROJECT:
            for extra in requirement.extras:
                names |= requirement_names(PYPROJECT["project"]["optional-dependencies"][extra])
        else:
            names.add(canonicalize_name(requirement.name))
    return names


BASE = requirement_names(PYPROJECT["project"]["dependencies"])
STATION = requirement_names(PYPROJECT["project"]["optional-dependencies"]["station"])


def modules() -> dict[str, Path]:
    """Every module of the package, by import name, from the source tree."""
    found: dict[str, Path] = {}
    for prefix, root in SOURCE_ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join([prefix, *parts])
            if prefix == "recorder" and name.startswith("recorder.board"):
                continue
            found[name] = path
    return found


def load_time_imports(path: Path) -> set[str]:
    """Top-level names of the modules imported when ``path`` is loaded: statements outside
    functions and classes, without `if TYPE_CHECKING:` blocks and relative imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                # `try: import x / except ImportError:` is an optional import: not a dependency
                if not any(isinstance(h.type, ast.Name) and h.type.id in ("ImportError",
                                                                          "ModuleNotFoundError")
                           for h in node.handlers):
                    visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(tree.body)
    return names


@functools.cache
def _packages_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()  # reads every installed distribution


def distribution_of(import_name: str) -> set[str]:
    """The installed distributions providing ``import_name`` (empty: standard library or ours)."""
    if import_name in sys.stdlib_module_names or import_name == "recorder":
        return set()
    providers = _packages_distributions().get(import_name)
    assert providers, f"{import_name} is imported but no installed distribution provides it"
    return {canonicalize_name(name) for name in providers}


def test_what_each_module_imports_at_load_time_is_declared() -> None:
    undeclared = []
    for name, path in modules().items():
        allowed = BASE | STATION if name.startswith(STATION_PREFIX) else BASE
        for import_name in sorted(load_time_imports(path)):
            providers = distribution_of(import_name)
            if providers and not providers & allowed:
                undeclared.append(f"{name} imports {import_name} ({', '.join(sorted(providers))})")
    assert not undeclared, ("imported when the module loads, but not in its install's "
                            "dependencies:\n" + "\n".join(undeclared))


def own_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's own modules that module ``name`` imports anywhere in it, function bodies
    included (a lazy import is still an edge of the import graph)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package[:len(package) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)  # submodules
    return (targets & known) - {name}


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None when it has none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph[node]):
            if (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        if (cycle := visit(start)) is not None:
            return cycle
    return None


def test_imports_between_the_package_modules_run_one_way() -> None:
    """A base class sharing a module with the factory that imports its subclasses made cycles
    (sources -> picamera2_source -> sources): base classes live in modules of their own."""
    found = modules()
    graph = {name: own_imports(name, path, set(found)) for name, path in found.items()}
    assert sum(len(targets) for targets in graph.values()) > len(graph)  # not vacuous
    assert import_cycle(graph) is None, " -> ".join(import_cycle(graph) or [])
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]



# The package follows the data path: each layer imports only from itself and earlier layers
# (docs/architecture.md, "Package layout"). A module belongs to the layer of its longest prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("recorder._native", "recorder.errors", "recorder.durability",
                    "recorder.private_files", "recorder.settings", "recorder.board")),
    ("capture", ("recorder.capture",)),
    ("ring", ("recorder.ring",)),
    ("integrity", ("recorder.integrity",)),
    ("storage", ("recorder.storage",)),
    ("uploader", ("recorder.uploader",)),
    ("device", ("recorder.device",)),
    ("station", ("recorder.station",)),
    ("cli", ("recorder.cli", "recorder.__main__")),
]
# The front door: `recorder` re-exports the access unit and the errors and loads PreEventRing
# lazily; every layer may import it, and it may import anything. The cli, the top, may too.
UNLAYERED = {"recorder"}


def layer_of(name: str) -> int:
    """The index in LAYERS of module ``name``'s layer (by its longest matching prefix)."""
    best = (-1, -1)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), index)
    assert best[1] >= 0, f"{name} belongs to no layer: add it to LAYERS"
    return best[1]


def backward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every edge of ``graph`` that runs from a layer to a later one, as readable lines."""
    found = []
    for name, targets in sorted(graph.items()):
        if name in UNLAYERED:
            continue
        for target in sorted(targets - UNLAYERED):
            if layer_of(target) > layer_of(name):
                found.append(f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} "
                             f"({LAYERS[layer_of(target)][0]})")
    return found


def test_every_module_imports_only_from_its_own_or_earlier_layers() -> None:
    """capture -> ring -> integrity -> storage -> uploader -> device -> station -> cli, never
    back: function-level (lazy) imports count, as they are edges of the import graph too."""
    found = modules()
    graph = {name: own_imports(name, path, set(found)) for name, path in found.items()}
    assert {LAYERS[layer_of(name)][0] for name in found if name not in UNLAYERED} == {
        layer for layer, _ in LAYERS}  # every layer holds a module: the table is not stale
    assert not backward_imports(graph), "\n".join(backward_imports(graph))
    # the check itself catches a backward edge
    assert backward_imports({"recorder.storage.mux": {"recorder.device.controller"}}) == [
        "recorder.storage.mux (storage) imports recorder.device.controller (device)"]


def test_native_twins_live_in_their_layer_package() -> None:
    """Each native module and its pure twin sit side by side in the package of their layer."""
    from recorder._native import PIECES

    for piece in PIECES.values():
        native_package, pure_package = (piece.native_module.rsplit(".", 1)[0],
                                        piece.pure_module.rsplit(".", 1)[0])
        assert native_package == pure_package != "recorder", piece
        assert (REPO / pure_package.replace(".", "/") / "__init__.py").is_file(), piece

# A script run inside the base-only venv: imports every module, reports what failed and why.
IMPORT_ALL = """
import importlib, json, sys, warnings
warnings.simplefilter("error")
results = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        results[name] = None
    except ModuleNotFoundError as exc:
        results[name] = ["ModuleNotFoundError", exc.name]
    except Exception as exc:
        results[name] = [type(exc).__name__, str(exc)]
print(json.dumps(results))
"""


def base_distributions() -> list[importlib.metadata.Distribution]:
    """What a base install of this project holds besides itself: its dependencies without
    extras, and theirs, as they are installed in this venv (markers evaluated here)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    wanted = list(PYPROJECT["project"]["dependencies"])
    while wanted:
        requirement = Requirement(wanted.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name not in found:
            found[name] = importlib.metadata.distribution(name)
            wanted.extend(found[name].requires or [])
    return list(found.values())


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding a pure-Python wheel of this source with its base dependencies only.

    pip installs the wheel itself; the dependencies are this venv's own distributions, linked
    file by file (pip resolving and unpacking av, numpy and cryptography again took 12 s, and
    the quick start in CI already installs them from the index into a fresh venv)."""
    root = tmp_path_factory.mktemp("base-install")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "*.so", "__pycache__", ".hypothesis",
        "demo-recordings"))
    env = dict(os.environ, RECORDER_NATIVE="off")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps",
                    "-w", str(root / "wheels"), str(source)],
                   env=env, check=True, capture_output=True, timeout=600)
    target = root / "venv"
    # No pip of its own (ensurepip takes seconds): this venv's pip installs into it (--python),
    # without compiling every module (--no-compile: those imported compile then).
    venv.create(target, with_pip=False)
    [site] = (target / "lib").glob("python3.*/site-packages")
    for distribution in base_distributions():
        home = Path(str(distribution.locate_file("")))
        for file in distribution.files or ():
            path = Path(str(distribution.locate_file(file)))
            if not path.is_relative_to(home) or ".." in file.parts or "__pycache__" in file.parts:
                continue  # scripts in bin/, compiled bytecode
            (site / file).parent.mkdir(parents=True, exist_ok=True)
            (site / file).symlink_to(path)
    [wheel] = (root / "wheels").glob("bwv_recorder-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"),
                    "install", "-q", "--no-compile", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    check = subprocess.run([sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"),
                            "check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout  # every requirement of the base install is met
    return target


@pytest.mark.slow
def test_every_camera_module_imports_with_the_base_install_only(base_venv: Path) -> None:
    python = base_venv / "bin" / "python"
    names = sorted(name for name in modules() if not name.endswith(".__main__"))  # runs bwv
    run = subprocess.run([str(python), "-P", "-c", IMPORT_ALL, *names], cwd="/",
                         env={**os.environ, "RECORDER_NATIVE": "off"},
                         capture_output=True, text=True, timeout=300, check=True)
    results = json.loads(run.stdout)
    station_packages = {canonicalize_name(n) for n in STATION}
    failures = []
    for name, failure in results.items():
        if failure is None:
            continue
        top = failure[1].split(".")[0]
        # the import name's distribution, as installed here (argon2 is argon2-cffi's)
        providers = {canonicalize_name(d) for d in _packages_distributions().get(top, [top])}
        missing_station_package = (failure[0] == "ModuleNotFoundError"
                                   and bool(providers & station_packages))
        if not (name.startswith(STATION_PREFIX) and missing_station_package):
            failures.append(f"{name}: {failure[0]}: {failure[1]}")
    assert not failures, "\n".join(failures)
    # the station's own packages really are absent: the check above is not vacuous
    assert any(failure for failure in results.values())
    for name in ("recorder.cli", "recorder.integrity.verify", "recorder.uploader",
                 "recorder.device.assembly", "recorder.cli.station"):
        assert results[name] is None, (name, results[name])


@pytest.mark.slow
def test_bwv_help_works_with_the_base_install_only(base_venv: Path) -> None:
    bwv = [str(base_venv / "bin" / "bwv")]
    python_m = [str(base_venv / "bin" / "python"), "-m", "recorder"]
    for args in ([*bwv, "--help"], [*bwv, "station", "--help"], [*bwv, "record", "--help"],
                 [*bwv, "doctor"], [*bwv, "bench", "--quick"], [*python_m, "--help"]):
        run = subprocess.run(args, cwd="/",
                             env={**os.environ, "RECORDER_NATIVE": "off"},
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, (args, run.stderr)
        assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_station_commands_name_the_missing_extra_in_the_base_install(base_venv: Path,
                                                                     tmp_path: Path) -> None:
    for args in (["station", "list", "--data", str(tmp_path)],
                 ["station", "serve", "--data", str(tmp_path / "new")]):
        run = subprocess.run([str(base_venv / "bin" / "bwv"), *args], cwd="/",
                             env={**os.environ, "RECORDER_NATIVE": "off"},
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert "pip install 'bwv-recorder[station]'" in run.stderr
        assert "Traceback" not in run.stderr
    assert not (tmp_path / "new").exists()
