"""The real toy pipeline through the `mgrpo` CLI: a reduced DAG end to end, and an interrupted training job
that resumes on the next run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_workflow_helpers import (copy_workflow, environment, planned_jobs, snakemake,
                                   tiny_config, write_config)

PROBE_BASELINE = '''
from mgrpo.core import Method, register_method

register_method(Method("probe_srt", reward="agreement", description="drop-in test baseline"), origin=__file__)
'''


def reduced_config(methods=("srt", "mgrpo_iqr"), steps=10):
    config = tiny_config(methods=methods, G=(4,))
    config["base_models"]["toy"]["pretrain"]["options"] = {"max_steps": 40, "target_acc": None}
    config["training"]["settings"] = {"steps": steps, "eval_every": 5, "save_every": 5, "eval_prompts": 20,
                                      "eval_samples": 2}
    config["evaluation"]["samples"] = 1
    # 20 test problems, not 200: an evaluate job then takes ~7 s (its imports) rather than ~12 s, 7 to 10 of them
    config["data"]["options"] = {"test_size": 20}
    return config


@pytest.mark.slow
def test_reduced_toy_dag_runs_end_to_end_and_then_has_nothing_to_do(tmp_path):
    workdir = copy_workflow(tmp_path / "clone")
    # A baseline dropped into this copy only: the CLI inside the jobs must find it too.
    (workdir / "baselines" / "zz_probe.py").write_text(PROBE_BASELINE)
    write_config(workdir / "reduced.yaml", reduced_config(methods=("srt", "mgrpo_iqr", "probe_srt")))
    result = snakemake(workdir, "--cores", "2", "--configfile", "reduced.yaml")
    assert result.returncode == 0, result.stdout[-5000:]
    results = workdir / "results"
    for run in ("srt", "mgrpo_iqr", "probe_srt"):
        run_dir = results / "runs" / "toy" / run / "G4_T1.0_s0"
        steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert steps == list(range(11))
        for checkpoint in ("best", "final"):
            evaluation = json.loads((results / "eval" / "toy" / run / "G4_T1.0_s0" / checkpoint / "toy.json").read_text())
            assert evaluation["benchmark"] == "toy" and 0.0 <= evaluation["value"] <= 1.0
    assert "| toy | srt | 4 | 1.0 | 0 |" in (results / "tables" / "toy_summary.md").read_text()
    assert (results / "figures" / "toy_curves.png").is_file()
    assert (results / "report.md").is_file()
    assert planned_jobs(workdir, "--configfile", "reduced.yaml") == {}

    # Editing one method's settings reruns its job; the rerun must start afresh, not resume (or refuse) the old
    # run in the same work folder, whose contents are kept aside.
    config = reduced_config(methods=("srt", "mgrpo_iqr", "probe_srt"))
    config["methods"]["srt"] = {"settings": {"steps": 12}}
    write_config(workdir / "reduced.yaml", config)
    result = snakemake(workdir, "--cores", "2", "--configfile", "reduced.yaml")
    assert result.returncode == 0, result.stdout[-5000:]
    srt_run = results / "runs" / "toy" / "srt" / "G4_T1.0_s0"
    steps = [json.loads(line)["step"] for line in (srt_run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(13))
    superseded = list((workdir / "work" / "runs" / "toy" / "srt" / "G4_T1.0_s0" / "superseded").iterdir())
    assert len(superseded) == 1 and (superseded[0] / "metrics.jsonl").is_file()


def trainer_pids(session: int) -> list[int]:
    """The `mgrpo train` processes of one session (the Snakemake started by the test and its jobs)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.getsid(int(proc.name)) == session:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                if b"train" in argv and b"--work" in argv and any(a.endswith(b"mgrpo") for a in argv[:3]):
                    found.append(int(proc.name))
        except (OSError, ProcessLookupError):
            continue  # it ended while we looked
    return found


@pytest.mark.slow
def test_an_interrupted_training_job_resumes_on_the_next_run(tmp_path):
    workdir = copy_workflow(tmp_path / "clone")
    config = reduced_config(methods=("srt",), steps=30)
    config["analysis"] = {"tables": {}, "figures": {}}
    write_config(workdir / "one.yaml", config)
    run = "results/runs/toy/srt/G4_T1.0_s0"
    work = workdir / "work" / "runs" / "toy" / "srt" / "G4_T1.0_s0"
    command = [sys.executable, "-m", "snakemake", f"{run}/metrics.jsonl", "--cores", "1", "--configfile", "one.yaml"]
    process = subprocess.Popen(command, cwd=workdir, env=environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while not (work / "step_000010").is_dir() and time.time() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert (work / "step_000010").is_dir(), "training never reached its second checkpoint"
        # Kill the trainer itself, as preemption or a crash would. Not Ctrl-C to Snakemake: its jobs ignore
        # SIGINT, and it stops them only after a delay in which this short run could finish.
        trainers = trainer_pids(session=process.pid)
        assert len(trainers) == 1, f"expected one `mgrpo train` process, found {trainers}"
        os.kill(trainers[0], signal.SIGKILL)
        assert process.wait(timeout=60) != 0, "Snakemake should report the killed job as failed"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert not (workdir / run / "metrics.jsonl").exists()
    before = {row["step"]: row for row in map(json.loads, (work / "metrics.jsonl").read_text().splitlines())}
    checkpoints = sorted(p.name for p in work.glob("step_*"))
    assert checkpoints, "no checkpoint survived the interruption"
    resumed_from = int(checkpoints[-1].split("_")[1])

    result = snakemake(workdir, f"{run}/metrics.jsonl", "--cores", "1", "--configfile", "one.yaml")
    assert result.returncode == 0, result.stdout[-4000:]
    after = [json.loads(line) for line in (workdir / run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in after] == list(range(31))  # every step exactly once
    # Steps up to the checkpoint were kept, not recomputed: their wall-clock timings are the first run's.
    for row in after[1:resumed_from + 1]:
        assert row["step_seconds"] == before[row["step"]]["step_seconds"]
