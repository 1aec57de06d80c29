"""Helpers for the workflow tests (no tests here): a copy of the workflow in a temp folder and a stand-in
`mgrpo` for DAG-mechanics tests (the SLURM tests use a real cluster: slurm_cluster.py).

The stand-in `mgrpo` only writes the files the contract names (it trains nothing); tests that need the real
trainer and evaluator use the real CLI and skip when a subcommand is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_PARTS = ("Snakefile", "workflow", "config", "analysis", "profiles", "slurm", "baselines")


def copy_workflow(dest: Path) -> Path:
    """The workflow's files (not results or work state) in dest, as in a fresh clone."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            shutil.copy2(source, dest / part)
    return dest


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def tiny_config(methods=("srt", "mgrpo_iqr"), seeds=(0,), G=(4,), T=(1.0,), html=False, **overrides) -> dict:
    """A small toy configuration: every stage, few jobs."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["experiments"] = [{"name": "tiny", "models": ["toy"], "methods": list(methods), "G": list(G),
                              "T": list(T), "seeds": list(seeds)}]
    config["methods"] = {m: {} for m in methods}
    config["analysis"]["tables"] = {
        "toy_summary": {"kind": "summary", "benchmarks": ["toy"]},
        "table2": {"kind": "checkpoints", "model": "toy", "benchmarks": ["toy"], "rows": [
            {"label": "Original", "checkpoint": "base"},
            {"label": "SRT_Best", "method": "srt", "G": G[0], "T": T[0], "checkpoint": "best"},
            {"label": "SRT_Final", "method": "srt", "G": G[0], "T": T[0], "checkpoint": "final"},
        ]},
    }
    config["analysis"]["figures"] = {"toy_curves": {"select": {}, "color_by": "method",
                                                    "metrics": ["val_acc", "reward", "entropy"]}}
    config["report"] = {"html": html}
    config.update(overrides)
    return config


FAKE_MGRPO = r'''#!PYTHON
"""Stand-in for the `mgrpo` CLI: writes the contract's files, logs argv to $FAKE_MGRPO_LOG."""
import json, os, sys
from pathlib import Path

argv = sys.argv[1:]
with open(os.environ["FAKE_MGRPO_LOG"], "a") as log:
    log.write(json.dumps(argv) + "\n")

def opt(name, default=None):
    return argv[argv.index(name) + 1] if name in argv else default

command = argv[0]
if command == "toy-data":
    out = Path(opt("--out")); out.mkdir(parents=True, exist_ok=True)
    for split in ("pretrain", "train", "test", "val"):
        (out / f"{split}.jsonl").write_text('{"prompt": "1+1", "answer": "2"}\n')
elif command == "prepare-data":  # evaluation benchmarks; --keep-present leaves those already there
    out = Path(opt("--out")); out.mkdir(parents=True, exist_ok=True)
    for benchmark in opt("--benchmarks").split(","):
        if not (out / f"{benchmark}.jsonl").exists():
            (out / f"{benchmark}.jsonl").write_text('{"problem": "1+1", "answer": "2"}\n')
    print("prepared")
elif command == "verl-prepare-data":
    out = Path(opt("--out")); out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        (out / f"{split}.parquet").write_text("")
elif command == "pretrain":
    out = Path(opt("--out")); out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text("{}")
elif command == "train":
    out, work, method = Path(opt("--out")), Path(opt("--work")), opt("--method")
    checkpoint = work / "step_000002"
    resumed = checkpoint.is_dir()
    checkpoint.mkdir(parents=True, exist_ok=True)
    if os.environ.get("FAKE_MGRPO_INTERRUPT") and not resumed:
        sys.exit("interrupted after step 2")
    # SRT: a peak-then-crash curve; everything else rises.
    curve = [0.30, 0.50, 0.70, 0.20, 0.10] if method.startswith("srt") else [0.30, 0.40, 0.50, 0.55, 0.60]
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for step, acc in enumerate(curve):
        row = {"step": step * 10, "val_acc": acc}
        if step:
            row.update(reward=acc, entropy=1.0 - acc / 2, agreement=acc)
        rows.append(json.dumps(row))
    (out / "metrics.jsonl").write_text("\n".join(rows) + "\n")
    (out / "run.json").write_text(json.dumps({"argv": argv, "resumed_from": 2 if resumed else None}))
    for name in ("final", "best"):
        (out / name).mkdir(exist_ok=True)
        (out / name / "config.json").write_text("{}")
elif command == "evaluate":
    out = Path(opt("--out")); out.mkdir(parents=True, exist_ok=True)
    model = opt("--model")
    value = 0.25 if model.endswith("base_models/toy") else (0.7 if model.endswith("best") else 0.4)
    for benchmark in opt("--benchmarks").split(","):
        (out / f"{benchmark}.json").write_text(json.dumps(
            {"benchmark": benchmark, "model": model, "metric": "avg@1", "value": value, "n_problems": 10}))
else:
    sys.exit(f"fake mgrpo: unknown command {command}")
'''

def _script(path: Path, text: str) -> None:
    path.write_text(text.replace("#!PYTHON", f"#!{sys.executable}", 1))
    path.chmod(0o755)


def install_fake_mgrpo(bin_dir: Path) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    _script(bin_dir / "mgrpo", FAKE_MGRPO)
    return bin_dir


def environment(*bin_dirs: Path, **extra: str) -> dict:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(b) for b in bin_dirs] + [env.get("PATH", "")])
    env.pop("MGRPO_BASELINES_DIR", None)  # each copy uses its own baselines/
    env.setdefault("WANDB_MODE", "offline")
    env.update(extra)
    return env


def snakemake(workdir: Path, *args: str, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Run snakemake in workdir; the result carries stdout+stderr in .stdout."""
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env or environment(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)


def planned_jobs(workdir: Path, *args: str, env=None) -> dict[str, int]:
    """{rule: count} of the jobs a dry run would run (parsed from the Job stats table)."""
    result = snakemake(workdir, "-n", "--cores", "1", *args, env=env)
    assert result.returncode == 0, result.stdout[-4000:]
    return job_counts(result.stdout)


def job_counts(dry_run_output: str) -> dict[str, int]:
    """{rule: count} from the Job stats table of a dry run's output."""
    counts, in_table = {}, False
    for line in dry_run_output.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if not parts or line.startswith("-"):
                continue
            if parts[0] == "total":
                break
            counts[parts[0]] = int(parts[1])
    return counts


def fake_log(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


__all__ = [name for name in dir() if not name.startswith("_")]
