"""The README's two set-up commands stay true: CI runs the test command verbatim, every extra they name exists."""
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick_start)


def test_quick_start_has_exactly_the_two_commands():
    run, test = readme_commands()
    assert run.endswith("snakemake --cores all") and test.endswith("python -m pytest")


def test_ci_runs_the_readme_test_command():
    _, test = readme_commands()
    ci = (REPO / ".ci" / "run").read_text()
    assert test.replace("pip install", "python -m pip install -q") in ci


def test_every_extra_the_readme_installs_exists_and_pins_the_cpu_torch():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    installed = []
    for command in readme_commands():
        groups = re.findall(r"""pip install -e ["']?\.\[([a-z,]+)\]["']?""", command)
        assert len(groups) == 1, command  # each command installs the project once, with its extras
        installed.append(set(groups[0].split(",")))
    assert installed == [{"cpu"}, {"cpu", "eval", "verl", "test"}]
    assert all(group <= set(extras) for group in installed)
    assert "torch==2.13.0" in extras["cpu"]
