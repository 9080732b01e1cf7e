"""The `make fidelity` harness itself, on a throwaway git repository (seconds, no real check runs)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rehearsal.fidelity import REPO_ROOT, Check, Edit, Mutation, MutationError, apply_edits, evaluate, main
from rehearsal.fidelity_mutations import MUTATIONS

RULE = "the rule that AWS enforces"
# A check that fails naming the rule exactly when rule.txt says "broken".
CHECK = (sys.executable, "-c", f"import sys; t = open('rule.txt').read(); sys.exit('{RULE}' if 'broken' in t else 0)")


@pytest.fixture
def repo(tmp_path):
    source = tmp_path / "repo"
    source.mkdir()
    (source / "rule.txt").write_text("kept\n")
    (source / "untracked.txt").write_text("not copied\n")
    subprocess.run(["git", "init", "-q", str(source)], check=True)
    subprocess.run(["git", "-C", str(source), "add", "rule.txt"], check=True)
    return source


def mutation(old: str, new: str, pattern: str = RULE, command=CHECK) -> Mutation:
    return Mutation("m", "a rule", (Edit("rule.txt", old, new),), (Check(command, (pattern,)),))


def test_a_check_that_fails_naming_the_rule_catches_the_mutation_and_the_source_is_untouched(repo):
    outcome = evaluate(mutation("kept", "broken"), source=repo)
    assert outcome.verdict == "caught", outcome.detail
    assert (repo / "rule.txt").read_text() == "kept\n"


def test_a_check_that_passes_lets_the_mutation_survive(repo):
    outcome = evaluate(mutation("kept", "still fine"), source=repo)
    assert outcome.verdict == "survived" and "check passed" in outcome.detail


def test_a_check_that_fails_for_another_reason_lets_the_mutation_survive(repo):
    outcome = evaluate(mutation("kept", "broken", pattern="a message nobody prints"), source=repo)
    assert outcome.verdict == "survived" and "without /a message nobody prints/" in outcome.detail


def test_an_old_text_that_is_missing_or_repeated_is_an_error(repo):
    missing = evaluate(mutation("gone", "broken"), source=repo)
    assert missing.verdict == "error" and "old text not found" in missing.detail
    (repo / "rule.txt").write_text("kept kept\n")
    repeated = evaluate(mutation("kept", "broken"), source=repo)
    assert repeated.verdict == "error" and "found 2 times" in repeated.detail


def test_the_scratch_copy_holds_the_tracked_files_only(repo):
    only_tracked = (
        sys.executable,
        "-c",
        "import os, sys; sys.exit('untracked copied' if os.path.exists('untracked.txt') else 0)",
    )
    outcome = evaluate(mutation("kept", "broken", pattern="untracked copied", command=only_tracked), source=repo)
    assert outcome.verdict == "survived"


def test_every_mutation_of_the_catalogue_applies_to_this_checkout():
    # What `make fidelity` would report as an error (old text moved or gone), found without running any check.
    names = [m.name for m in MUTATIONS]
    assert len(MUTATIONS) >= 10 and len(set(names)) == len(names)
    for each in MUTATIONS:
        try:
            apply_edits(REPO_ROOT, each.edits, write=False)
        except MutationError as error:
            pytest.fail(f"{each.name}: {error}")


def test_an_unknown_mutation_name_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["no-such-mutation"])
    assert "unknown mutation(s) no-such-mutation" in capsys.readouterr().err
