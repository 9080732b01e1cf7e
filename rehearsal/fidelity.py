"""`make fidelity`: re-introduce each blocker the reviews found, one at a time, in a scratch copy of the
repository, and show that the check modelling the AWS rule it breaks fails with a message naming that rule.

A mutation is one or more exact text edits. An edit whose old text is not in its file (or is there more
than once) is an error, so a mutation cannot rot silently when the code it targets changes. A mutation
"survives" when one of its checks passes, or fails without the message that names the rule (it then
failed for another reason and proves nothing). The catalogue is rehearsal/fidelity_mutations.py.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stacks.config import REPO_ROOT

# Untracked but needed by the checks: the virtualenvs and the pinned uv (Makefile); linked, not copied.
LINKED = (".venv", ".venv-emr", ".venv-checkov", ".tools")
CHECK_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class Edit:
    path: str  # relative to the repository root
    old: str
    new: str


@dataclass(frozen=True)
class Check:
    """A command run from the scratch copy's root ("{pytest}" becomes the venv's) and the patterns
    (regexes, searched in stdout + stderr) its failure must all contain."""

    command: tuple[str, ...]
    names_rule: tuple[str, ...]


@dataclass(frozen=True)
class Mutation:
    name: str
    rule: str  # the AWS rule the blocker breaks, in words
    edits: tuple[Edit, ...]
    checks: tuple[Check, ...]


@dataclass
class Outcome:
    mutation: Mutation
    verdict: str  # "caught", "survived" or "error"
    detail: str
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)

    @property
    def caught(self) -> bool:
        return self.verdict == "caught"

    def line(self) -> str:
        return f"{self.verdict:8} {self.mutation.name} ({self.seconds:.0f} s): {self.detail}"


class MutationError(Exception):
    """The mutation cannot be applied as written (its target moved or vanished)."""


def apply_edits(root: Path, edits: Sequence[Edit], *, write: bool = True) -> None:
    """Apply `edits` under `root` (or, with write=False, only check that each applies)."""
    for edit in edits:
        path = root / edit.path
        if not path.is_file():
            raise MutationError(f"{edit.path}: no such file")
        text = path.read_text()
        found = text.count(edit.old)
        if found != 1:
            where = "not found" if found == 0 else f"found {found} times (must be exactly once)"
            raise MutationError(f"{edit.path}: old text {where}: {edit.old[:80]!r}")
        if write:
            path.write_text(text.replace(edit.old, edit.new))


def scratch_copy(source: Path, target: Path) -> Path:
    """The tracked files of `source` as they are on disk (uncommitted edits included), plus links to its venvs."""
    listed = subprocess.run(["git", "-C", str(source), "ls-files", "-z", "--cached"], capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        origin = source / name
        if not origin.exists() and not origin.is_symlink():
            continue  # deleted in the work tree and not yet committed
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, destination, follow_symlinks=False)
    for name in LINKED:
        if (source / name).exists():
            (target / name).symlink_to((source / name).resolve())
    return target


def _command(check: Check, root: Path) -> list[str]:
    venv = root / ".venv" / "bin"
    return [part.format(pytest=venv / "pytest") for part in check.command]


def run_check(check: Check, root: Path, timeout: float = CHECK_TIMEOUT_SECONDS) -> tuple[int, str]:
    env = {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:{root / '.tools' / 'bin'}"}
    env.pop("PYTHONPATH", None)
    try:
        done = subprocess.run(
            _command(check, root), cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as expired:
        return -1, f"timed out after {timeout:.0f} s\n{expired.stdout or ''}{expired.stderr or ''}"
    return done.returncode, done.stdout + done.stderr


def judge(check: Check, returncode: int, output: str) -> tuple[bool, str]:
    """(caught, why) for one check's result."""
    if returncode == 0:
        skipped = re.search(r"(\d+) skipped", output)
        return False, f"check passed{f' ({skipped.group(0)})' if skipped else ''}: {' '.join(check.command)}"
    missing = [pattern for pattern in check.names_rule if not re.search(pattern, output)]
    if not missing:
        return True, "failed naming " + " and ".join(f"/{pattern}/" for pattern in check.names_rule)
    return False, f"check failed (exit {returncode}) without /{missing[0]}/: {_last_line(output)}"


def _last_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def evaluate(mutation: Mutation, source: Path = REPO_ROOT, timeout: float = CHECK_TIMEOUT_SECONDS) -> Outcome:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"fidelity-{mutation.name}-") as scratch:
        root = scratch_copy(source, Path(scratch))
        try:
            apply_edits(root, mutation.edits)
        except MutationError as error:
            return Outcome(mutation, "error", str(error), time.monotonic() - started)
        reasons, outputs = [], []
        for check in mutation.checks:
            returncode, output = run_check(check, root, timeout)
            outputs.append(output)
            caught, why = judge(check, returncode, output)
            if not caught:
                return Outcome(mutation, "survived", why, time.monotonic() - started, outputs)
            reasons.append(why)
    return Outcome(mutation, "caught", "; ".join(reasons), time.monotonic() - started, outputs)


def main(argv: Sequence[str] | None = None) -> int:
    from rehearsal.fidelity_mutations import MUTATIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only these mutations (default: all)")
    parser.add_argument("--list", action="store_true", help="print the mutations and the rule each breaks")
    parser.add_argument("--verbose", action="store_true", help="print a surviving mutation's check output")
    args = parser.parse_args(argv)
    unknown = set(args.names) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutation(s) {', '.join(sorted(unknown))}; see --list")
    selected = [m for m in MUTATIONS if not args.names or m.name in args.names]
    if args.list:
        for mutation in selected:
            print(f"{mutation.name}: {mutation.rule}")
        return 0
    started = time.monotonic()
    outcomes = []
    for mutation in selected:  # one at a time: the checks share ports, services and two cores
        outcome = evaluate(mutation)
        outcomes.append(outcome)
        print(outcome.line(), flush=True)
        if args.verbose and not outcome.caught:
            print("\n".join(output[-4000:] for output in outcome.outputs), flush=True)
    caught = sum(outcome.caught for outcome in outcomes)
    print(f"fidelity: caught {caught}/{len(outcomes)} in {time.monotonic() - started:.0f} s")
    return 0 if caught == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
