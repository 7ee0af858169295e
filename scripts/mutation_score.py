"""Scores a mutmut run per module, for scripts/mutation (docs/testing.md, "Mutation testing").

Run from the repository root after `mutmut run`, with the source paths to score as arguments.
Reads mutmut's results (mutants/<path>.meta) and the mutated files, and prints, per module,
every count mutmut keeps and the score

    killed / (total - skipped - message-only survivors)

A mutant mutmut reports as a timeout is NOT counted as killed: mutmut stopped it for using more
than its CPU budget, which is not a test failing. (A hang that a test's own timeout turns into a
failure is reported by mutmut as killed, and is counted so.) "No tests" mutants count as
survivors.

A survivor is *message-only* when the mutant changes nothing but string literals, and every
changed literal is part of a message: inside the exception of a ``raise``; inside the message
argument of ``LineProblem(line, code, message)`` or ``Problem(code, where, message, ...)``; or in
a ``return`` of a function whose name ends in ``_problem`` or ``_problems`` (these return the
message of a problem, or None). Such a mutant garbles what a person reads, never what is decided;
tests pin the meaning of messages with codes, lines and key phrases, not every word.
Everything else that survives is listed, with its diff, for a test to kill.
"""

from __future__ import annotations

import ast
import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.mutation.diff_apply import (
    get_diff_for_mutant,
    read_functions_from_index,
    read_mutant_function,
    read_mutants_module,
    read_original_function,
)
from mutmut.stats import status_by_exit_code

MESSAGE_CALLS = {"LineProblem": 2, "Problem": 2}  # constructor -> position of its message


def _functions(name: str, path: Path) -> tuple[ast.FunctionDef, ast.FunctionDef]:
    """The original and the mutated function of mutant ``name``, as Python ASTs."""
    pair = read_functions_from_index(name, path)
    if pair is None:
        module = read_mutants_module(path)
        pair = (read_original_function(module, name), read_mutant_function(module, name))
    import libcst as cst

    trees = [ast.parse(cst.Module([function]).code.strip()).body[0] for function in pair]
    assert isinstance(trees[0], ast.FunctionDef) and isinstance(trees[1], ast.FunctionDef)
    return trees[0], trees[1]


def _changed_strings(before: ast.AST, after: ast.AST) -> list[ast.Constant] | None:
    """The string constants of ``before`` that ``after`` changes, or None when it changes
    anything else (a node's kind, an operator, a number, the shape of the tree)."""
    changed: list[ast.Constant] = []
    stack = [(before, after)]
    while stack:
        one, two = stack.pop()
        if type(one) is not type(two):
            return None
        if isinstance(one, ast.Constant) and isinstance(two, ast.Constant):
            if one.value != two.value or type(one.value) is not type(two.value):
                if not (isinstance(one.value, str) and isinstance(two.value, str)):
                    return None
                changed.append(one)
            continue
        for name, value in ast.iter_fields(one):
            other = getattr(two, name)
            if isinstance(value, list):
                if not isinstance(other, list) or len(value) != len(other):
                    return None
                for item, item_other in zip(value, other):
                    if isinstance(item, ast.AST):
                        stack.append((item, item_other))
                    elif item != item_other:
                        return None
            elif isinstance(value, ast.AST):
                if not isinstance(other, ast.AST):
                    return None
                stack.append((value, other))
            elif name not in ("ctx",) and value != other:
                return None
    return changed


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr \
        if isinstance(func, ast.Attribute) else None


def _in_message(function: ast.FunctionDef, target: ast.Constant) -> bool:
    """Whether ``target`` lies in a message (see the module's docstring)."""
    def contains(node: ast.AST) -> bool:
        return any(child is target for child in ast.walk(node))

    for node in ast.walk(function):
        if isinstance(node, ast.Raise) and node.exc is not None and contains(node.exc):
            return True
        if isinstance(node, ast.Call) and _call_name(node) in MESSAGE_CALLS:
            position = MESSAGE_CALLS[_call_name(node) or ""]
            message = [node.args[position]] if len(node.args) > position else []
            message += [keyword.value for keyword in node.keywords if keyword.arg == "message"]
            if any(contains(item) for item in message):
                return True
        if isinstance(node, ast.Return) and node.value is not None and contains(node.value) \
                and function.name.endswith(("_problem", "_problems")):
            return True
    return False


def is_message_only(name: str, path: Path) -> bool:
    before, after = _functions(name, path)
    changed = _changed_strings(before, after)
    return bool(changed) and all(_in_message(before, constant) for constant in changed or [])


def score(path: Path, show: bool) -> tuple[int, int]:
    """Print one module's figures (and its survivors' diffs when ``show``); (killed, counted)."""
    meta = json.loads((Path("mutants") / f"{path}.meta").read_text())
    statuses = {name: status_by_exit_code[code] for name, code in meta["exit_code_by_key"].items()}
    counts = Counter(statuses.values())
    not_killed = sorted(name for name, status in statuses.items()
                        if status in ("survived", "no tests"))
    message_only = [name for name in not_killed if is_message_only(name, path)]
    real = [name for name in not_killed if name not in message_only]
    total, killed = len(statuses), counts["killed"]
    counted = total - counts["skipped"] - len(message_only)
    rate = 100.0 * killed / counted if counted else 100.0
    others = {status: count for status, count in sorted(counts.items())
              if status not in ("killed", "survived", "no tests", "skipped", "timeout")}
    print(f"{path}: {rate:.1f}%  killed {killed} of {counted} counted  (total {total}, "
          f"message-only survivors {len(message_only)}, other survivors {len(real)} "
          f"[no tests {counts['no tests']}], timeout {counts['timeout']}, "
          f"skipped {counts['skipped']}{''.join(f', {k} {v}' for k, v in others.items())})")
    if show:
        for name in real:
            print(f"\n# {name}: {statuses[name]}")
            print(get_diff_for_mutant(name, path=path))
    return killed, counted


def main(argv: list[str]) -> int:
    show = "--show" in argv
    paths = [Path(arg) for arg in argv if arg != "--show"]
    if not paths:
        print("usage: mutation_score.py [--show] SOURCE_PATH ...", file=sys.stderr)
        return 2
    for path in paths:
        score(path, show)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
