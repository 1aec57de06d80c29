"""A backend that is not installed stops its jobs with a clear message; nothing is faked."""
import importlib.util

import pytest

from test_workflow_helpers import copy_workflow, environment, install_fake_mgrpo, snakemake, tiny_config, write_config


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_evaluation_without_vllm_fails_saying_so(tmp_path):
    workdir = copy_workflow(tmp_path / "clone")
    config = tiny_config(methods=("srt",))
    config["evaluation"]["backend"] = "vllm"
    config["resources"] = {"evaluate": {"gpu": 1}}  # required with vllm; a local run does not count GPUs
    write_config(workdir / "vllm.yaml", config)
    env = environment(install_fake_mgrpo(tmp_path / "bin"), FAKE_MGRPO_LOG=str(tmp_path / "log.jsonl"))
    result = snakemake(workdir, "results/eval/toy/base/toy.json", "--cores", "1", "--configfile", "vllm.yaml",
                       env=env)
    assert result.returncode != 0
    log = (workdir / "results" / "logs" / "eval" / "toy" / "base.log").read_text()
    assert "vllm (evaluation backend) is not installed" in log + result.stdout
    assert "conda env create -f environment.yml" in log + result.stdout
    assert not (workdir / "results" / "eval" / "toy" / "base" / "toy.json").exists()
    # The stand-in evaluator was never called.
    assert "evaluate" not in (tmp_path / "log.jsonl").read_text()
