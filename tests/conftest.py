"""Shared test helpers."""
import importlib.util
import os
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    # `-n auto`: one worker per core, at most 4. The SLURM file alone takes ~40 % of a serial run, so more
    # workers than that would wait on it, and each worker holds its own torch and verl imports.
    return max(1, min(4, os.cpu_count() or 1))


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
