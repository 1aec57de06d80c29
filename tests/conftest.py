"""Shared test helpers."""
import importlib.util
import os
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    # `-n auto`: one worker per core, at most 4. The longest files take minutes each, so more workers than that
    # would wait on them, and each worker holds its own torch and verl imports.
    return max(1, min(4, os.cpu_count() or 1))


# The files that take minutes, longest first (seconds in one serial run, 2026-12-07: SLURM ~145, DAG ~240, toy
# end-to-end ~180, reruns ~110). With `--dist loadfile` a worker runs whole files, in collection order
# (pyproject.toml turns off xdist's reordering by test count, which put these few-test files last): started first,
# the other files fill the other workers around them, instead of one of them running alone at the end.
LONG_FILES = ("test_workflow_dag.py", "test_workflow_toy_e2e.py", "test_workflow_slurm.py", "test_workflow_reruns.py")


def pytest_collection_modifyitems(config, items):
    first = {name: rank for rank, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: first.get(item.path.name, len(LONG_FILES)))  # stable: a file's order is kept


@pytest.fixture(scope="session")
def bench_script():
    """``bench_script("gpu_smoke")``: a bench/ script imported as a module (bench/ is not a package)."""
    loaded = {}

    def load(name: str):
        if name not in loaded:
            spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            loaded[name] = module
        return loaded[name]

    return load


@pytest.fixture()
def verl_inputs(tmp_path):
    """(model, data): the smallest inputs the verl backend's checks accept before Ray, a base model's config.json
    and two rows of each split as `mgrpo verl-prepare-data` writes them."""
    import json

    from mgrpo.verl_backend.data import prepare

    model, source, data = tmp_path / "model", tmp_path / "math", tmp_path / "data"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen3", "vocab_size": 64}))
    source.mkdir()
    rows = [{"problem": f"p{i}", "solution": f"\\boxed{{{i}}}"} for i in range(2)]
    for split in ("train", "test"):
        (source / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    prepare(source, data)
    return model, data
