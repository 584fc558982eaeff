"""The README stays a front page: short, its test command is CI's, and its links resolve."""

import re

from tests.cli import ROOT


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_is_at_most_200_lines():
    assert len(_readme().splitlines()) <= 200


def test_ci_runs_exactly_the_readme_test_command():
    blocks = re.findall(r"```bash\n(.*?)```", _readme(), flags=re.S)
    command = next(b.strip() for b in blocks if "pytest" in b and "pip install" in b)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command in [line.strip() for line in ci]


def test_relative_links_of_readme_and_docs_resolve():
    missing = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                missing.append(f"{page.name} -> {target}")
    assert not missing, missing
