"""A real one-node SLURM cluster for the tests (no tests here): munged, slurmctld and slurmd from the system's
SLURM packages (Debian: `apt-get install slurmctld slurmd slurm-client munge`), run as root with their state,
logs, ports and munge socket in a temp folder. The config must be at SLURM's default path (/etc/slurm): the
jobstep plugin strips SLURM_CONF from the job step's environment (snakemake-executor-plugin-slurm#164), so a
nested `srun` finds only that. So the cluster is refused where /etc/slurm holds a config already (a real
cluster's is never touched), and its files there are removed when it stops. A cluster left running by a killed
test run is recognised by the first line of its config (its state folder and its owner's pid, no longer
alive) and stopped first; one whose owner is alive (another test session) is left alone.

The node declares 16 CPUs, 64 GB and 8 GPUs whatever this machine has (`SlurmdParameters=config_overrides`):
the GPUs are character devices aliasing /dev/null, enough for SLURM to count, bind and export
CUDA_VISIBLE_DEVICES, not to compute. There is no accounting database, so `sacct` is disabled and jobs are
watched with `squeue` (Snakemake: `--slurm-status-command squeue`), with finished jobs kept in slurmctld for
`scontrol show job` (MinJobAge).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from mgrpo.work_lock import pid_alive

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "sinfo", "srun", "scancel")
NODE_GPUS = 8
CONFIG_DIR = Path("/etc/slurm")
CONFIG_FILES = ("slurm.conf", "gres.conf")
MARKER = "# mgrpo-bench test cluster: "


def missing_requirement() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if os.name != "posix" or os.geteuid() != 0:
        return "a test SLURM cluster runs its daemons as root"
    missing = [name for name in DAEMONS + CLIENTS if shutil.which(name) is None
               and not Path("/usr/sbin", name).exists()]
    if missing:
        return f"SLURM/munge not installed (missing {', '.join(missing)}; Debian: apt-get install slurmctld slurmd " \
               "slurm-client munge)"
    for name in CONFIG_FILES:
        config = CONFIG_DIR / name
        if config.exists():
            owner = _test_cluster(config)
            if owner is None:
                return f"{config} exists: this machine has a SLURM config, which the test cluster never replaces"
            if pid_alive(owner[1]):
                return f"a test SLURM cluster of process {owner[1]} is running ({config})"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _daemon(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _test_cluster(config: Path) -> tuple[Path, int] | None:
    """(state folder, owner pid) of the test cluster that wrote this config; None for any other config."""
    first_line = config.read_text().partition("\n")[0]
    if not first_line.startswith(MARKER):
        return None
    root, _, pid = first_line.removeprefix(MARKER).rpartition(" ")
    return Path(root), int(pid)


def _stop(root: Path) -> None:
    """Stop the daemons whose pid files are in root, remove root and the configs."""
    for name in reversed(DAEMONS):
        pid_file = root / f"{name}.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
    time.sleep(1)
    for name in CONFIG_FILES:
        (CONFIG_DIR / name).unlink(missing_ok=True)
    shutil.rmtree(root, ignore_errors=True)


class SlurmCluster:
    """`with SlurmCluster() as cluster:` a running cluster; `cluster.env()` is os.environ for its clients."""

    def __init__(self, partition: str = "gpu-test"):
        self.partition = partition
        self.node = socket.gethostname().split(".")[0]
        self.conf = CONFIG_DIR / "slurm.conf"
        self.root = None

    def env(self, **extra: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}  # not an outer allocation's
        env.update(extra)
        return env

    def run(self, *argv: str, check: bool = True) -> str:
        result = subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=60)
        if check and result.returncode:
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def job(self, job_id: str) -> dict:
        """`scontrol show job -d` as {key: value} (its last value where a key repeats)."""
        fields = {}
        for token in self.run("scontrol", "show", "job", "-d", "-o", job_id).split():
            key, sep, value = token.partition("=")
            if sep:
                fields[key] = value
        return fields

    def __enter__(self) -> "SlurmCluster":
        reason = missing_requirement()
        if reason:
            raise RuntimeError(f"cannot start a test SLURM cluster: {reason}")
        for name in CONFIG_FILES:
            if (CONFIG_DIR / name).exists():
                _stop(_test_cluster(CONFIG_DIR / name)[0])  # a dead owner's, by missing_requirement()
        self.root = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))  # short: a socket path has ≤ 107 bytes
        self._write_config()
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.run(_daemon("munged"), "--force", f"--socket={self.root}/munge.sock", f"--key-file={key}",
                 f"--log-file={self.root}/munged.log", f"--pid-file={self.root}/munged.pid",
                 f"--seed-file={self.root}/munged.seed")
        self.run(_daemon("slurmctld"), "-i")
        self.run(_daemon("slurmd"))
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.run("sinfo", "-h", "-o", "%t", check=False).strip() == "idle":
                return self
            time.sleep(0.5)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in self.root.glob("*.log"))
        self.__exit__(None, None, None)
        raise RuntimeError(f"the test SLURM node never became idle:\n{logs}")

    def __exit__(self, *exc) -> None:
        self.run("scancel", "--full", "--quiet", "--user=root", check=False)
        _stop(self.root)

    def _write_config(self) -> None:
        devices = self.root / "dev"
        devices.mkdir()
        null = os.stat("/dev/null").st_rdev
        for i in range(NODE_GPUS):
            os.mknod(devices / f"gpu{i}", 0o666 | 0o020000, null)  # S_IFCHR
        (self.root / "ctld").mkdir()
        # sched_interval=1: the main scheduling pass every second, not every 60 s. A job held back to a begin time
        # (a requeued one, tests/test_workflow_slurm.py's release_requeued) otherwise waited ~30 s past it for
        # the next pass.
        (self.root / "d").mkdir()
        r = self.root
        marker = f"{MARKER}{r} {os.getpid()}"
        CONFIG_DIR.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(f"""\
{marker}
ClusterName=mgrpotest
SlurmctldHost={self.node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={r}/munge.sock
CredType=cred/munge
StateSaveLocation={r}/ctld
SlurmdSpoolDir={r}/d
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/slurmctld.log
SlurmdLogFile={r}/slurmd.log
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
DefMemPerCPU=1000
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MinJobAge=3600
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
NodeName={self.node} NodeAddr=127.0.0.1 CPUs=16 RealMemory=64000 Gres=gpu:{NODE_GPUS} State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")
        (CONFIG_DIR / "gres.conf").write_text(
            f"{marker}\nNodeName={self.node} Name=gpu File={devices}/gpu[0-{NODE_GPUS - 1}]\n")
