"""The Snakemake commands that README.md and docs/ show do what they say.

Every command is taken from the text itself (code blocks, inline code, comments), parsed with
Snakemake's own argument parser: each path it names as a target must be read as a target (not
as a second ``--configfile`` or a ``--forcerun`` rule). The configuration override commands
also run as a dry run.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def snakemake_commands(text: str) -> list[str]:
    """Every ``snakemake ...`` command line in a Markdown text."""
    commands = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL):
        for line in block.splitlines():
            line = line.strip()
            match = re.search(r"(?:^|&& |then: )(snakemake .*)$", line)
            if match:
                commands.append(match.group(1))
    outside = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    commands += [c for c in re.findall(r"`(snakemake [^`]*)`", outside)]
    return [re.split(r"\s+#\s", c)[0].strip() for c in commands]  # drop trailing comments


ALL = [(doc.name, c) for doc in DOCS for c in snakemake_commands(doc.read_text())]


def parse(command: str):
    from snakemake.cli import get_argument_parser

    tokens = shlex.split(command)
    assert tokens[0] == "snakemake"
    return tokens[1:], get_argument_parser().parse_args(tokens[1:])


def test_commands_are_found() -> None:
    readme = [c for name, c in ALL if name == "README.md"]
    assert len(readme) >= 8
    assert any("--configfile" in c for c in readme)
    assert any("--forcerun" in c for c in readme)
    assert any("--unlock" in c for c in readme)


@pytest.mark.parametrize(("doc", "command"), ALL, ids=[f"{d}:{c}" for d, c in ALL])
def test_targets_are_read_as_targets(doc: str, command: str) -> None:
    tokens, args = parse(command)
    report = {args.report} if getattr(args, "report", None) else set()
    wanted = {t for t in tokens if re.match(r"(results|work)/", t) and t not in report}
    assert set(args.targets) == wanted, (doc, command)
    for configfile in args.configfile or []:
        assert str(configfile).endswith((".yaml", ".yml")), (doc, command)
    for rule in args.forcerun or []:
        assert "/" not in rule, (doc, command)


def test_the_old_form_is_what_the_test_catches() -> None:
    """The form the README used to show reads the target as a config file."""
    _, args = parse("snakemake --cores 8 --configfile my.yaml results/x/cas_baseline/map.json")
    assert not args.targets
    _, args = parse("snakemake -R train results/demo/cas_baseline/map.json")
    assert not args.targets


def heredoc(text: str, name: str) -> str:
    match = re.search(rf"cat > {re.escape(name)} <<'EOF'\n(.*?)\n\s*EOF", text, flags=re.DOTALL)
    assert match, name
    return "\n".join(line.strip() for line in match.group(1).splitlines()) + "\n"


@pytest.mark.slow
def test_configuration_commands_dry_run(tmp_path: Path) -> None:
    text = (REPO / "README.md").read_text()
    (tmp_path / "my.yaml").write_text(heredoc(text, "my.yaml"))
    commands = [c for _, c in ALL if "--configfile" in c and "thumos14" in c]
    commands += [c for _, c in ALL if "--forcerun" in c]
    assert len(commands) >= 2
    for command in commands:
        tokens = shlex.split(command)[1:]
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", *tokens, "-n", "--snakefile",
             str(REPO / "Snakefile")], cwd=tmp_path, capture_output=True, text=True,
            timeout=600)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, (command, output[-3000:])
        target = next(t for t in tokens if t.startswith("results/"))
        model = target.split("/")[2]
        assert re.search(r"^evaluate\s+1\s*$", output, re.MULTILINE), (command, output)
        assert f"model={model}" in output or target in output, (command, output)
