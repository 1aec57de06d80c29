"""`--profile slurm` against a real one-node SLURM cluster (slurm_cluster.py): the real executor plugin submits
the train job, SLURM allocates it the rule's GPUs, CPUs, memory and time in the profile's partition and
account, and the real `mgrpo train` runs inside the allocation. Interrupted mid-run it resumes from its newest
checkpoint both ways a cluster interrupts it: SLURM requeues the job (what preemption with PreemptMode=REQUEUE
does) and the same job restarts, or the job ends (cancelled, timed out, node lost) and Snakemake submits it
again (the profile's `retries`). A controller restarted while its job still runs cannot start a second trainer
on the same work folder (mgrpo/work_lock.py).

Needs root and the SLURM/munge packages; skipped without them, unless MGRPO_REQUIRE_SLURM=1 (CI) makes that
a failure."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from mgrpo.work_lock import LOCK_NAME, WorkDirInUse, work_lock
from slurm_cluster import SlurmCluster, missing_requirement
from test_workflow_helpers import REPO, copy_workflow, environment, snakemake, tiny_config, write_config

RUN = "results/runs/toy/srt/G4_T1.0_s0"
WORK = "work/runs/toy/srt/G4_T1.0_s0"
RESOURCES = {"gpu": 2, "runtime": 90, "mem_mb": 4000, "cpus_per_task": 2}

# The Snakemake controller, with one change to the real plugin: it checks its jobs' status every
# --seconds-between-status-checks, as asked. The plugin adds 10 s to that wait after each check that finds no job
# ended (up to 180 s), so the controller noticed an ended job up to ~40 s late here, and a controller with no job
# left still slept out its last wait before exiting (~30 s): most of this file's time was spent waiting on it.
# What it submits, and how it reads each status, are the plugin's own.
CONTROLLER = """
import asyncio
from snakemake_executor_plugin_slurm import Executor

async def sleep(self):
    await asyncio.sleep(self.workflow.remote_execution_settings.seconds_between_status_checks)

Executor.sleep = sleep
from snakemake.cli import main
main()
"""

# The real CLI, behind a shim that records what each start of it saw of its allocation.
MGRPO_SHIM = """#!/bin/sh
echo "$SLURM_JOB_ID $CUDA_VISIBLE_DEVICES $*" >> "{log}"
exec "{mgrpo}" "$@"
"""


@pytest.fixture(scope="module")
def cluster():
    reason = missing_requirement()
    if reason:
        if os.environ.get("MGRPO_REQUIRE_SLURM") == "1":
            pytest.fail(f"MGRPO_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    with SlurmCluster(partition="gpu-test") as running:
        yield running


@pytest.fixture(scope="module")
def prepared_clone(cluster, tmp_path_factory):
    """A clone with the toy data and base model built locally, so that the cluster runs the train job alone.
    Built once: each test runs in a copy of it (Snakemake's metadata and the files' times copied with it)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm") / "clone")
    config = tiny_config(methods=("srt",))
    config["base_models"]["toy"]["pretrain"]["options"] = {"max_steps": 40, "target_acc": None}
    config["training"]["settings"] = {"steps": 30, "eval_every": 5, "save_every": 5, "eval_prompts": 20,
                                      "eval_samples": 2}
    config["analysis"] = {"tables": {}, "figures": {}}
    config["resources"] = {"train": RESOURCES}
    write_config(workdir / "one.yaml", config)
    local = snakemake(workdir, "results/base_models/toy", "--cores", "1", "--configfile", "one.yaml")
    assert local.returncode == 0, local.stdout[-3000:]
    return workdir


def test_profile_is_where_snakemake_looks_for_it():
    # `--profile slurm` resolves ./slurm first; Snakemake 9 reads config.v9+.yaml there.
    profile = yaml.safe_load((REPO / "slurm" / "config.v9+.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert {"slurm_partition", "slurm_account", "runtime", "mem_mb"} <= set(profile["default-resources"])
    assert "software-deployment-method" not in profile  # an empty list there is rejected by Snakemake


class ProfileRun:
    """The toy train job of one run under `--profile slurm`, watched from here."""

    def __init__(self, cluster, prepared_clone, tmp_path):
        self.cluster = cluster
        self.workdir = tmp_path / "clone"
        shutil.copytree(prepared_clone, self.workdir, symlinks=True)
        self.work = self.workdir / WORK
        self.starts = tmp_path / "mgrpo-starts.log"
        self.log = tmp_path / "snakemake.log"
        mgrpo = shutil.which("mgrpo")
        assert mgrpo, "the mgrpo command is not on PATH (pip install -e .)"
        shim = tmp_path / "bin" / "mgrpo"
        shim.parent.mkdir()
        shim.write_text(MGRPO_SHIM.format(log=self.starts, mgrpo=mgrpo))
        shim.chmod(0o755)
        self.env = cluster.env(PATH=f"{shim.parent}{os.pathsep}{environment()['PATH']}", WANDB_MODE="offline",
                               MGRPO_SLURM_PARTITION="gpu-test", MGRPO_SLURM_ACCOUNT="testacct")
        self.command = [sys.executable, "-c", CONTROLLER, f"{RUN}/metrics.jsonl", "--cores", "all",
                        "--profile", "slurm", "--configfile", "one.yaml",
                        "--slurm-status-command", "squeue",  # no accounting database here, so no sacct
                        "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]
        self.earlier_jobs = set(self._all_jobs())  # an earlier test's, still listed (MinJobAge)
        with self.log.open("w") as out:
            self.process = subprocess.Popen(self.command, cwd=self.workdir, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT)

    def running_job_after_checkpoint(self, step=10) -> str:
        deadline = time.time() + 300
        while not (self.work / f"step_{step:06d}").is_dir() and time.time() < deadline and self.process.poll() is None:
            time.sleep(0.2)
        assert (self.work / f"step_{step:06d}").is_dir(), f"no checkpoint {step}:\n{self.log.read_text()[-3000:]}"
        jobs = self.cluster.run("squeue", "-h", "-o", "%i %T").split()
        assert len(jobs) == 2 and jobs[1] == "RUNNING", jobs
        return jobs[0]

    def wait_until(self, job_id: str, states: set, seconds=120) -> None:
        deadline = time.time() + seconds
        while self.cluster.job(job_id)["JobState"] not in states and time.time() < deadline:
            time.sleep(0.2)
        assert self.cluster.job(job_id)["JobState"] in states, self.cluster.job(job_id)

    def interrupted(self) -> tuple[dict, int]:
        """What the first start left behind: its metrics by step, and the newest checkpoint's step."""
        before = {row["step"]: row for row in map(json.loads, (self.work / "metrics.jsonl").read_text().splitlines())}
        return before, int(max(self.work.glob("step_*")).name.split("_")[1])

    def finish(self) -> None:
        try:
            self.process.wait(timeout=400)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        assert self.process.returncode == 0, self.log.read_text()[-4000:]

    def _all_jobs(self) -> list[str]:
        return self.cluster.run("squeue", "-h", "-t", "all", "-o", "%i").split()

    def jobs(self) -> list[str]:
        """This run's SLURM jobs, in submission order."""
        return sorted(set(self._all_jobs()) - self.earlier_jobs, key=int)

    def train_starts(self) -> list[tuple[str, int]]:
        """(SLURM job, number of GPUs in CUDA_VISIBLE_DEVICES) of each start of `mgrpo train`."""
        lines = [line.split() for line in self.starts.read_text().splitlines()]
        return [(words[0], len(words[1].split(","))) for words in lines if "train" in words]

    def assert_resumed(self, before: dict, resumed_from: int) -> None:
        assert 10 <= resumed_from < 30
        after = [json.loads(line) for line in (self.workdir / RUN / "metrics.jsonl").read_text().splitlines()]
        assert [row["step"] for row in after] == list(range(31))  # every step exactly once
        # Steps up to the checkpoint were kept from the first start, not recomputed.
        for row in after[1:resumed_from + 1]:
            assert row["step_seconds"] == before[row["step"]]["step_seconds"]
        assert any(after[step]["step_seconds"] != before.get(step, {}).get("step_seconds")
                   for step in range(resumed_from + 1, 31))

    def assert_allocated_as_the_rule_asks(self, job_id: str) -> None:
        job = self.cluster.job(job_id)
        assert job["Comment"].startswith("rule_train_wildcards_toy_srt")
        assert (job["Partition"], job["Account"], job["TimeLimit"]) == ("gpu-test", "testacct", "01:30:00")
        assert job["TresPerJob"] == "gres:gpu:2"
        assert {"cpu=2", "mem=4000M"} <= set(job["TRES"].split(","))


def release_requeued(cluster, job_id: str) -> None:
    """Let a requeued job start again soon. SLURM holds it back (BeginTime) for a while; release it 2 s on, not at
    once: slurmd revokes the killed run's credential at one-second resolution, and a restart within that second is
    refused ("Job credential revoked": the job ends FAILED; 3 of 4 runs of this file on one VM on 2026-12-06,
    none of 3 since)."""
    cluster.run("scontrol", "update", f"jobid={job_id}", "StartTime=now+2")


@pytest.mark.slow
def test_train_job_gets_its_resources_and_resumes_after_slurm_requeues_it(cluster, prepared_clone, tmp_path):
    run = ProfileRun(cluster, prepared_clone, tmp_path)
    job_id = run.running_job_after_checkpoint()
    cluster.run("scontrol", "requeue", job_id)
    run.wait_until(job_id, {"PENDING"})
    before, resumed_from = run.interrupted()
    release_requeued(cluster, job_id)
    run.finish()

    assert run.jobs() == [job_id]  # requeued, not resubmitted
    job = cluster.job(job_id)
    assert (job["JobState"], job["Restarts"]) == ("COMPLETED", "1")
    run.assert_allocated_as_the_rule_asks(job_id)
    # `mgrpo train` started twice inside that job, each time seeing the two GPUs SLURM bound to it.
    assert run.train_starts() == [(job_id, 2), (job_id, 2)]
    run.assert_resumed(before, resumed_from)


@pytest.mark.slow
def test_a_train_job_that_ends_early_is_submitted_again_and_resumes(cluster, prepared_clone, tmp_path):
    run = ProfileRun(cluster, prepared_clone, tmp_path)
    first = run.running_job_after_checkpoint()
    # The partition is down while we look, so that the resubmitted job waits: running jobs go on, new ones pend.
    cluster.run("scontrol", "update", "partition=gpu-test", "state=down")
    cluster.run("scancel", first)
    run.wait_until(first, {"CANCELLED"})
    before, resumed_from = run.interrupted()
    cluster.run("scontrol", "update", "partition=gpu-test", "state=up")
    run.finish()

    first_job, second = run.jobs()
    assert first_job == first and cluster.job(second)["JobState"] == "COMPLETED"
    run.assert_allocated_as_the_rule_asks(second)
    assert run.train_starts() == [(first, 2), (second, 2)]
    run.assert_resumed(before, resumed_from)


def test_a_work_folder_lock_lasts_as_long_as_its_owners_slurm_job(cluster, tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    owner = cluster.run("sbatch", "--parsable", "-p", "gpu-test", f"--output={tmp_path}/owner.out",
                        "--wrap", "sleep 600").strip()
    lock = tmp_path / LOCK_NAME
    lock.write_text(json.dumps({"host": "another-node", "pid": 1, "slurm_job": owner}))
    for state in ("RUNNING", "SUSPENDED"):  # a suspended (preempted by suspension) job comes back
        deadline = time.time() + 60
        while cluster.job(owner)["JobState"] != state and time.time() < deadline:
            time.sleep(0.2)
        with pytest.raises(WorkDirInUse, match=f"SLURM job {owner} is still active"):
            with work_lock(tmp_path):
                pass
        if state == "RUNNING":
            cluster.run("scontrol", "suspend", owner)
    cluster.run("scancel", owner)
    deadline = time.time() + 60
    while cluster.run("squeue", "-h", "-j", owner, "-o", "%T").strip() and time.time() < deadline:
        time.sleep(0.2)
    with work_lock(tmp_path):  # its owner has ended: taken over
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_a_requeued_jobs_trainer_knows_its_restart_count_though_its_srun_lacks_slurm_restart_count(cluster,
                                                                                                     tmp_path):
    # SLURM sets SLURM_RESTART_COUNT in the batch step only, and the jobstep plugin strips it before its srun:
    # the work lock asks scontrol, or a requeued trainer would take its own earlier start for a live one.
    owners, job_out = tmp_path / "owners", tmp_path / "job.out"
    job_out.touch()
    script = tmp_path / "job.sh"
    script.write_text(f"""#!/bin/sh
env -u SLURM_RESTART_COUNT srun -n1 {sys.executable} -c \
  'import json; from mgrpo.work_lock import _owner; print(json.dumps(_owner()))' >> {owners}
sleep 600
""")

    def wait_for_starts(count):
        deadline = time.time() + 60
        while len(owners.read_text().splitlines() if owners.exists() else []) < count:
            assert time.time() < deadline, f"{count} starts expected; job output: {job_out.read_text()}"
            time.sleep(0.2)

    job = cluster.run("sbatch", "--parsable", "--requeue", "-p", "gpu-test", f"--chdir={REPO}",
                      f"--output={job_out}", str(script)).strip()
    wait_for_starts(1)
    cluster.run("scontrol", "requeue", job)
    deadline = time.time() + 60
    while cluster.job(job)["JobState"] != "PENDING" and time.time() < deadline:
        time.sleep(0.2)
    release_requeued(cluster, job)
    wait_for_starts(2)
    cluster.run("scancel", job)
    starts = [json.loads(line) for line in owners.read_text().splitlines()]
    assert [(owner["slurm_job"], owner["slurm_restart"]) for owner in starts] == [(job, 0), (job, 1)]


@pytest.mark.slow
def test_a_restarted_controller_cannot_start_a_second_trainer_on_a_running_run(cluster, prepared_clone,
                                                                                  tmp_path):
    run = ProfileRun(cluster, prepared_clone, tmp_path)
    first = run.running_job_after_checkpoint()
    cluster.run("scontrol", "suspend", first)  # so that it surely still runs when the second controller starts
    run.process.kill()  # the controller dies (a login node reboots); its SLURM job goes on
    run.process.wait()
    unlock = snakemake(run.workdir, "--unlock", "--configfile", "one.yaml", env=run.env)
    assert unlock.returncode == 0, unlock.stdout[-2000:]
    second = subprocess.run(run.command, cwd=run.workdir, env=run.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=400, check=False)
    assert second.returncode != 0
    train_log = run.workdir / "results" / "logs" / "train" / "toy" / "srt" / "G4_T1.0_s0.log"
    # The retry's `mgrpo train` said why (read now: the first job, resumed, writes on into the same log).
    assert (f"work folder {WORK} is in use by another trainer" in train_log.read_text()
            and f"SLURM job {first} is still active" in train_log.read_text())
    cluster.run("scontrol", "resume", first)
    run.wait_until(first, {"COMPLETED"}, seconds=300)

    resubmitted = [job for job in run.jobs() if job != first]
    assert len(resubmitted) == 2  # the second controller's job and its retry
    assert all(cluster.job(job)["JobState"] == "FAILED" for job in resubmitted)
    starts = run.train_starts()
    assert [job for job, _ in starts] == [first, *resubmitted]
    # The first job alone trained: one history, every step once.
    steps = [json.loads(line)["step"] for line in (run.work / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(31))
    assert not (run.work / LOCK_NAME).exists()  # released by the first job at its end
    # The controller started once more, after the first job's end, finds the run done.
    again = subprocess.run(run.command, cwd=run.workdir, env=run.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=400, check=False)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "Nothing to be done" in again.stdout
