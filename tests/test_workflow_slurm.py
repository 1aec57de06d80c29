"""`--profile slurm` with the real SLURM executor plugin against fake sbatch/sacct/srun/... that run each job
here and log their argv: the train job is submitted with the GPUs, time, memory and CPUs the rule asks for and
the partition and account of the profile."""
import json

import pytest
import yaml

from test_workflow_helpers import (REPO, copy_workflow, environment, install_fake_mgrpo, install_fake_slurm,
                                   snakemake, tiny_config, write_config)

RUN = "results/runs/toy/srt/G4_T1.0_s0"


def test_profile_is_where_snakemake_looks_for_it():
    # `--profile slurm` resolves ./slurm first; Snakemake 9 reads config.v9+.yaml there.
    profile = yaml.safe_load((REPO / "slurm" / "config.v9+.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert {"slurm_partition", "slurm_account", "runtime", "mem_mb"} <= set(profile["default-resources"])
    assert "software-deployment-method" not in profile  # an empty list there is rejected by Snakemake


@pytest.mark.slow
def test_train_job_is_submitted_with_the_rules_resources_and_the_profiles_partition(tmp_path):
    workdir = copy_workflow(tmp_path / "clone")
    config = tiny_config(methods=("srt",))
    config["resources"] = {"train": {"gpu": 2, "runtime": 90, "mem_mb": 4000, "cpus_per_task": 2}}
    write_config(workdir / "tiny.yaml", config)
    state = tmp_path / "slurm"
    state.mkdir()
    env = environment(install_fake_mgrpo(tmp_path / "bin"), install_fake_slurm(tmp_path / "slurm-bin"),
                      FAKE_MGRPO_LOG=str(tmp_path / "mgrpo.jsonl"), FAKE_SLURM_DIR=str(state),
                      MGRPO_SLURM_PARTITION="gpu-test", MGRPO_SLURM_ACCOUNT="testacct")
    # Data and base model locally first, so that the cluster run submits the train job alone.
    local = snakemake(workdir, "results/base_models/toy", "--cores", "1", "--configfile", "tiny.yaml", env=env)
    assert local.returncode == 0, local.stdout[-3000:]

    result = snakemake(workdir, f"{RUN}/metrics.jsonl", "--cores", "all", "--profile", "slurm",
                       "--configfile", "tiny.yaml", "--slurm-init-seconds-before-status-checks", "1",
                       "--seconds-between-status-checks", "1", env=env)
    assert result.returncode == 0, result.stdout[-4000:]
    submissions = [json.loads(line) for line in (state / "sbatch.jsonl").read_text().splitlines()]
    assert len(submissions) == 1
    argv = submissions[0]
    assert "--comment" in argv and argv[argv.index("--comment") + 1].startswith("rule_train_wildcards_toy_srt")
    assert argv[argv.index("-p") + 1] == "gpu-test"
    assert argv[argv.index("-A") + 1] == "testacct"
    assert argv[argv.index("-t") + 1] == "90"
    assert argv[argv.index("--mem") + 1] == "4000"
    assert "--gpus=2" in argv and "--cpus-per-task=2" in argv
    # Inside the allocation the rule's command ran in one srun step with the same GPUs.
    srun = (state / "srun.log").read_text()
    assert "--gpus=2" in srun
    assert (workdir / RUN / "final").is_dir()
