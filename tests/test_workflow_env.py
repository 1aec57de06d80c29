"""environment.yml (GPU cluster, conda) stays in step with pyproject.toml (pip, CI)."""
import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(==\s*([^\s;,]+))?")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(requirement: str):
    match = REQUIREMENT.match(requirement)
    return normalise(match.group(1)), match.group(4)


def pyproject():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = data.get("optional-dependencies", {})
    return data, extras


def environment_pins():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    lines = [line for line in pip if not line.startswith("-")]
    return dict(parse(line) for line in lines), pip, env


def test_shared_pins_agree():
    data, extras = pyproject()
    conda_pins, _, _ = environment_pins()
    # The `cpu` extra pins the CPU build of torch on purpose; the cluster takes vllm's CUDA torch.
    requirements = list(data["dependencies"]) + [r for name, reqs in extras.items() if name != "cpu" for r in reqs]
    mismatches = []
    for requirement in requirements:
        name, version = parse(requirement)
        if version and name in conda_pins and conda_pins[name] not in (None, version):
            mismatches.append(f"{name}: pyproject {version}, environment.yml {conda_pins[name]}")
    assert mismatches == []


def test_every_pinned_project_dependency_is_in_the_cluster_environment():
    data, extras = pyproject()
    conda_pins, pip, env = environment_pins()
    pinned = [parse(r) for r in data["dependencies"] + extras.get("verl", []) + extras.get("eval", [])]
    missing = [name for name, version in pinned if version and name not in conda_pins]
    assert missing == []
    # The project itself, installed from the checkout with the extras the cluster needs.
    install = [line for line in pip if line.startswith("-e .")]
    assert install and all(extra in install[0] for extra in ("eval", "verl"))
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"] if isinstance(d, str))


def test_the_gpu_stack_is_pinned():
    conda_pins, _, _ = environment_pins()
    for name, version in {"verl": "0.9.1", "vllm": "0.24.0", "torch": "2.11.0", "transformers": "5.9.0",
                          "lm-eval": "0.4.13", "evalplus": "0.3.1", "snakemake": "9.27.1",
                          "snakemake-executor-plugin-slurm": "2.8.0"}.items():
        assert conda_pins.get(name) == version, name


def test_torch_is_the_cuda13_build_that_vllm_links():
    # vllm 0.24.0's wheel needs libcudart.so.13; PyPI's torch 2.11.0 is that build (it requires nvidia-*-cu13),
    # while a cu12x index's "2.11.0+cu12x" would outrank it and break vLLM's kernels.
    _, pip, _ = environment_pins()
    assert not [line for line in pip if line.startswith("--") and re.search(r"/cu1[0-2]\d\b", line)]
