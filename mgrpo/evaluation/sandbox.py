"""Run untrusted (model-written) programs with time, memory, process, file and network limits.

`run_untrusted(program, stdin, timeout_s, **limits)` runs a Python program in a fresh work dir and returns a
`SandboxResult`. The layers, each used when the OS allows it (see docs/sandbox.md for what was measured):

- Linux namespaces: a new user namespace (as root: all uids mapped as they are; not root: only the caller's uid, so
  unprivileged users get the same namespaces), new PID namespace (the program's whole process tree dies with its
  init, and /proc shows only the run's processes), new network namespace (only a down loopback: no traffic at all),
  new mount namespace, new IPC and UTS namespaces; inside the user namespace no further user namespace can be made.
- An allowlist root (pivot_root into an empty tmpfs): only /usr, /bin, /sbin, /lib*, allowlisted /etc entries, the
  interpreter's prefix and site-packages, a few /dev nodes, the PID namespace's /proc, size-capped private /tmp,
  /var/tmp, /dev/shm, and the work dir, itself a size-capped tmpfs holding a copy of the run's files. Every mount is
  read-only except those tmpfs.
- cgroups (root, or a delegated cgroup v2 subtree): a per-run `pids.max` (contains fork bombs), memory limit (bounds
  the sum over all processes; RLIMIT_AS alone is per process) and CPU quota (`cpus`, 1 CPU by default).
- A fresh unprivileged uid per run (when root): file permissions apply (/etc/shadow unreadable), it cannot signal
  other users' processes, RLIMIT_NPROC counts only this run's processes; no_new_privs blocks setuid binaries and the
  program keeps no capabilities.
- rlimits set before the program starts: CPU, address space, file size, process count, open files, pending
  signals, no core dumps.
- A seccomp filter (libseccomp, through ctypes), installed once the root is built and inherited by the program and its
  children: no namespaces (unshare/clone with namespace flags, clone3, setns), no mounts, sockets of AF_UNIX, AF_INET
  and AF_INET6 only (no AF_VSOCK, which network namespaces do not isolate, nor netlink, AF_ALG, ...), no ptrace,
  io_uring, bpf, perf events, userfaultfd, keyrings, file handles, personality changes, module or host
  administration calls (`seccomp_rules`). It also covers root, where no user namespace of ours limits nested ones.
- A minimal environment (no inherited secrets), `python -I -B`, a wall timeout that kills the whole session, the cgroup
  members and every process of the run's uid.

Without namespaces (user namespaces disabled, a container's seccomp profile, ...) only rlimits, the environment, the
kills and the seccomp filter remain: the program then sees the host's files with the caller's rights and its network.
Without libseccomp there is no filter. `run_untrusted` warns; an evaluation (`evaluation_sandbox`) refuses to run
without every layer of STRONG_LAYERS unless weak isolation is explicitly allowed, and records the layers.

This module only imports the standard library: it is also executed as a script (the in-sandbox launcher).
"""
from __future__ import annotations

import ctypes
import json
import os
import platform
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SandboxResult", "SandboxSetupError", "SandboxWeakIsolationWarning", "run_untrusted", "isolation_report",
           "evaluation_sandbox", "STRONG_LAYERS"]

# Linux constants (sched.h, mount.h, prctl.h, capability.h)
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 18, 1 << 21, 1 << 24
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 1, 24, 38, 47, 4
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
CLONE_NEWCGROUP, CLONE_NEWTIME = 0x02000000, 0x00000080
NAMESPACE_FLAGS = (CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP)
AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6 = 0, 1, 2, 10
SOCK_PACKET, SOCK_TYPE_MASK = 10, 0xF  # socket(AF_INET, SOCK_PACKET) is made an AF_PACKET socket by the kernel
# mount flags a remount must carry over (in a user namespace, changing a locked one is refused)
MOUNT_OPTION_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
                      "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}

SANDBOX_UID_RANGE = (1_000_000, 2_000_000)  # uids no file on the host belongs to
# The sandbox's root holds only these host paths (read-only), plus the interpreter's prefix and site-packages.
ROOT_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # /etc: ETC_ALLOWED
# /etc is an allowlist too: the sandbox's /etc holds only these entries of the host's (glob patterns; files and dirs
# bound read-only, symlinks copied), what the dynamic loader, Python, libc's name lookups, time zones and TLS
# certificates read. Anything else there (keys, credentials, cluster configs, files written later) is absent.
ETC_ALLOWED = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ld.so.preload", "localtime", "timezone", "passwd",
               "group", "nsswitch.conf", "host.conf", "hosts", "gai.conf", "protocols", "services",
               "networks", "ethertypes", "rpc", "ssl/certs", "ssl/openssl.cnf", "ca-certificates",
               "ca-certificates.conf", "pki/tls/certs", "pki/ca-trust/extracted", "mime.types", "magic", "magic.mime",
               "locale.alias", "locale.conf", "os-release", "lsb-release", "debian_version", "alternatives",
               "python3", "python3.*", "fonts", "inputrc", "terminfo", "mtab")
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
PRIVATE_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
# RLIMIT_SIGPENDING of the program: the kernel checks the count of its user (in its user namespace) against the
# receiving task's limit, and charges the same signals to that uid on the host too: not as root, a program left with
# the inherited limit queued the user's whole quota of real-time signals, and the evaluator got EAGAIN meanwhile.
MAX_PENDING_SIGNALS = 1024
# The seccomp filter the program runs under (installed by the PID namespace's init once the sandbox's root is built,
# inherited by the program and every process it makes): default allow, and these system calls fail with EPERM
# (docs/sandbox.md, "The seccomp filter"). libseccomp builds the BPF and resolves the names for the machine's
# architecture (any other architecture's system calls, e.g. i386's int 0x80 or x32, kill the caller).
SECCOMP_LIBRARY = "libseccomp.so.2"
SECCOMP_DENIED = (
    # namespaces and mounts (namespace flags of unshare/clone: seccomp_rules)
    "setns", "mount", "umount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick",
    "move_mount", "open_tree", "mount_setattr",
    # other processes' memory and descriptors
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    # kernel interfaces a candidate has no use for, and much kernel attack surface (io_uring also makes sockets of
    # any family, past the socket rule)
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl",
    "add_key", "request_key", "open_by_handle_at", "name_to_handle_at", "fanotify_init",
    # counted per uid across user namespaces (fs.inotify.max_user_instances = 128, RLIMIT_MSGQUEUE): not as root,
    # the program runs as the evaluator's uid and could hold them all, host-wide, until its run ends
    "inotify_init", "inotify_init1", "mq_open",
    # host administration: each needs a capability the program lacks; denied all the same
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "swapon", "swapoff", "reboot",
    "syslog", "acct", "quotactl", "quotactl_fd", "iopl", "ioperm", "lookup_dcookie", "uselib", "nfsservctl",
    "_sysctl", "vm86", "vm86old",
)
# Without a rule for each of these the filter is not installed (layer missing): they are what it is for. Other names
# an old libseccomp does not know are left out of the filter (each needs a capability or is rarely there).
SECCOMP_REQUIRED = ("unshare", "clone", "clone3", "setns", "socket", "socketpair", "mount", "ptrace",
                    "process_vm_readv", "process_vm_writev", "bpf", "perf_event_open", "userfaultfd",
                    "io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl", "add_key", "request_key",
                    "personality")
# Without all of these, a run is "weak": without the namespaces and the root the program can read what the caller
# can and reach the network; without seccomp it reaches the kernel interfaces the filter denies (nested user
# namespaces as root, AF_VSOCK, io_uring, ptrace, ...).
STRONG_LAYERS = ("pid-namespace", "net-namespace", "mount-namespace", "allowlist-root", "seccomp")
OUTPUT_LIMIT_MESSAGE = "[sandbox] output limit exceeded; program killed"


class SandboxSetupError(RuntimeError):
    """The sandbox could not be set up for a run (before the program started): an evaluation must stop here,
    not score the candidate as failed."""


class SandboxWeakIsolationWarning(RuntimeWarning):
    """A run went without a layer of STRONG_LAYERS: without namespaces (rlimits only) the program could read the
    caller's files and use the network; without the seccomp filter it could reach the kernel interfaces it denies."""


@dataclass(frozen=True)
class SandboxResult:
    status: str  # "ok" (exit 0), "timeout" (wall or CPU limit hit), "error" (anything else)
    returncode: int | None  # exit code, or -signal when killed by a signal, None when the sandbox killed it
    stdout: str
    stderr: str
    output_truncated: bool = False
    wall_s: float = 0.0
    isolation: tuple[str, ...] = field(default_factory=tuple)  # the layers that were active
    uid: int | None = None  # the run's private uid (root only): no process of it is left once the result is back
    weak_reason: str = ""  # why namespaces or the seccomp filter were not used, when they were not

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_untrusted(
    program: str,
    stdin: str = "",
    timeout_s: float = 5.0,
    *,
    cpu_s: float | None = None,
    memory_mb: int = 1024,
    max_processes: int = 64,
    max_file_mb: int = 16,
    max_output_bytes: int = 1_000_000,
    max_open_files: int = 256,
    tmpfs_mb: int = 64,
    workdir_mb: int = 64,
    files: dict[str, str | bytes] | None = None,
    extra_env: dict[str, str] | None = None,
    require_namespaces: bool | None = None,
    namespaces: bool = True,
    cpus: float | None = 1.0,
    seccomp: bool = True,
) -> SandboxResult:
    """Run the Python `program` in the sandbox and return its status and captured output.

    `files` are written into the program's work dir (its cwd) first; `extra_env` adds variables to the minimal
    environment (never the parent's). `memory_mb` bounds each process's address space and, with cgroups, the sum over
    the run. The work dir is a tmpfs of `workdir_mb` plus the size of `files`; /tmp, /var/tmp and /dev/shm are tmpfs
    of `tmpfs_mb` each; `max_file_mb` caps every single file (RLIMIT_FSIZE), also without namespaces.
    `require_namespaces` (default: env MGRPO_SANDBOX_REQUIRE_NAMESPACES=1, or inside an `evaluation_sandbox` that does
    not allow weak isolation) refuses to run instead of falling back to rlimits-only when namespaces cannot be created;
    `namespaces=False` forces that fallback (to test it). The program runs under a seccomp filter (seccomp_rules) where
    libseccomp is there; `require_namespaces` also refuses a run without it, `seccomp=False` runs without (to test).
    `cpus` caps the run's CPU use (all its processes together) with the cgroup's CPU quota, where a cgroup is made
    (None: no quota). A sandbox that cannot be set up (that refusal, a mount that fails, ...) raises
    `SandboxSetupError`: the program never ran, so there is no status to score.
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    if cpus is not None and not cpus > 0:
        raise ValueError(f"cpus must be > 0 or None, got {cpus}")
    if require_namespaces is None:
        require_namespaces = (os.environ.get("MGRPO_SANDBOX_REQUIRE_NAMESPACES", "") == "1"
                              or any(not record.allow_weak for record in _active_records()))
    cpu_s = timeout_s if cpu_s is None else cpu_s
    is_root = _is_real_root()
    uid = _claim_uid() if is_root else None
    token = secrets.token_hex(6)
    start = time.monotonic()

    workdir = Path(tempfile.mkdtemp(prefix=f"mgrpo-sbx-{token}-"))
    cgroups: list[Path] = []
    try:
        files_bytes = 0
        for name, content in {**(files or {}), "main.py": program}.items():
            if Path(name).name != name:
                raise ValueError(f"sandbox file names must be plain names, got {name!r}")
            data = content.encode() if isinstance(content, str) else content
            (workdir / name).write_bytes(data)
            files_bytes += -(-len(data) // 4096) * 4096 + 4096
        if uid is not None:
            for path in [workdir, *workdir.iterdir()]:
                os.chown(path, uid, uid)
        os.chmod(workdir, 0o700)
        cgroups = _make_cgroups(f"mgrpo-sbx-{token}", max_processes, memory_mb, delegated_only=not is_root,
                                cpus=cpus)

        limits = {
            "cpu_s": max(1, int(cpu_s + 0.999)),
            "as_bytes": memory_mb * 1024 * 1024,
            "fsize_bytes": max_file_mb * 1024 * 1024,
            "nproc": max_processes,
            "nofile": max_open_files,
            "sigpending": MAX_PENDING_SIGNALS,
        }
        config = {
            "workdir": str(workdir),
            "python": os.path.realpath(sys.executable),
            "argv": ["-I", "-B", "main.py"],
            "env": {**_minimal_env(workdir), **(extra_env or {})},
            "uid": uid,
            "real_root": is_root,
            "outer_ids": [os.getuid(), os.getgid()],
            "cgroups": [str(c) for c in cgroups],
            "system_dirs": list(ROOT_SYSTEM_DIRS),
            "etc_allowed": list(ETC_ALLOWED),
            "keep": _dirs_to_keep(),
            "hide": _dirs_to_hide(),
            "private_tmp": [d for d in PRIVATE_TMP_DIRS if os.path.isdir(d)],
            "tmpfs_mb": tmpfs_mb,
            "workdir_bytes": workdir_mb * 1024 * 1024 + files_bytes,
            "require_namespaces": require_namespaces,
            "namespaces": namespaces,
            "seccomp": seccomp,
            "world_can_run": _world_can_run(os.path.realpath(sys.executable)),
            "limits": limits,
        }
        result = _supervise(config, stdin, timeout_s, max_output_bytes, start, uid, cgroups)
    finally:
        for cgroup in cgroups:
            _empty_cgroup(cgroup)
        shutil.rmtree(workdir, ignore_errors=True)
        if uid is not None:
            _release_uid(uid)
    missing = [layer for layer in STRONG_LAYERS if layer not in result.isolation]
    if missing and not require_namespaces:
        _warn_weak(missing, result.weak_reason)
    for record in _active_records():
        record.add(result.isolation, {"timeout_s": timeout_s, "cpu_s": limits["cpu_s"], "memory_mb": memory_mb,
                                      "max_processes": max_processes, "max_file_mb": max_file_mb,
                                      "max_output_bytes": max_output_bytes, "max_open_files": max_open_files,
                                      "tmpfs_mb": tmpfs_mb, "workdir_mb": workdir_mb, "cpus": cpus})
    return result


def isolation_report() -> tuple[str, ...]:
    """The isolation layers a run gets on this machine (runs a trivial program)."""
    return run_untrusted("pass", timeout_s=10).isolation


# ------------------------------------------------------------------------------------- evaluation policy
class IsolationRecord:
    """What an evaluation's sandbox runs had: the layers every run got, their limits, and whether weak isolation was
    allowed. Use as a context manager around the scoring (runs from any thread are counted)."""

    def __init__(self, allow_weak: bool, preflight: tuple[str, ...], weak_reason: str = ""):
        self.allow_weak = allow_weak
        self.preflight = preflight
        self.weak_reason = weak_reason
        self.runs = 0
        self.layers: tuple[str, ...] | None = None  # in every run (a layer one run lacked is not claimed)
        self.limits: list[dict] = []
        self._lock = threading.Lock()

    def add(self, isolation: tuple[str, ...], limits: dict) -> None:
        with self._lock:
            self.runs += 1
            self.layers = tuple(isolation) if self.layers is None else tuple(
                layer for layer in self.layers if layer in isolation)
            if limits not in self.limits:
                self.limits.append(limits)

    def __enter__(self) -> "IsolationRecord":
        with _records_lock:
            _records.append(self)
        return self

    def __exit__(self, *exc) -> None:
        with _records_lock:
            _records.remove(self)

    def as_dict(self) -> dict:
        layers = self.preflight if self.layers is None else self.layers
        return {"isolation": list(layers), "weak": any(layer not in layers for layer in STRONG_LAYERS),
                "allow_weak_isolation": self.allow_weak, "weak_reason": self.weak_reason, "runs": self.runs,
                "limits": self.limits}


_records: list[IsolationRecord] = []
_records_lock = threading.Lock()


def _active_records() -> list[IsolationRecord]:
    with _records_lock:
        return list(_records)


def evaluation_sandbox(allow_weak: bool = False) -> IsolationRecord:
    """Check, before an evaluation starts, that the sandbox isolates here; fail closed unless `allow_weak`.

    Runs one trivial program. Without every layer of STRONG_LAYERS (no user namespaces as non-root, ...) it raises
    `SandboxSetupError` naming what is missing, unless `allow_weak` (CLI `--allow-weak-sandbox`). Returns the record
    to enter around the scoring: inside it, runs that cannot get namespaces raise instead of falling back (unless
    `allow_weak`), and `as_dict()` gives what to write into the results.
    """
    if not isinstance(allow_weak, bool):
        raise ValueError(f"allow_weak_sandbox must be true or false, got {allow_weak!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SandboxWeakIsolationWarning)
        probe = run_untrusted("pass", timeout_s=20, require_namespaces=False)
    missing = [layer for layer in STRONG_LAYERS if layer not in probe.isolation]
    if missing and not allow_weak:
        advice = []
        if any(layer != "seccomp" for layer in missing):
            advice.append(
                "Without the namespaces and the root a candidate program could read this user's files and secrets "
                "(/proc/<pid>/environ of the evaluator, tokens, data) and reach the network. Enable unprivileged "
                "user namespaces (sysctl user.max_user_namespaces > 0; kernel.unprivileged_userns_clone=1 / "
                "kernel.apparmor_restrict_unprivileged_userns=0 where those exist) or run as root.")
        if "seccomp" in missing:
            advice.append(
                "Without the seccomp filter a candidate program could make user namespaces of its own (as root), "
                "open AF_VSOCK/netlink sockets, use io_uring, ptrace, bpf, ... Install libseccomp (libseccomp2 on "
                "Debian/Ubuntu, libseccomp on conda-forge).")
        raise SandboxSetupError(
            f"the sandbox cannot isolate model-written code on this machine: missing {', '.join(missing)} "
            f"({probe.weak_reason or 'see the isolation layers'}; layers available: {', '.join(probe.isolation)}). "
            f"{' '.join(advice)} Or accept the weaker isolation explicitly with allow_weak_sandbox=True "
            "(`mgrpo evaluate --allow-weak-sandbox`), which is recorded in the results.")
    return IsolationRecord(allow_weak, probe.isolation, probe.weak_reason)


def _warn_weak(missing: list[str], reason: str) -> None:
    what = []
    if any(layer != "seccomp" for layer in missing):
        what.append("the program can read the caller's files and use the network")
    if "seccomp" in missing:
        what.append("no seccomp filter denies it nested namespaces, AF_VSOCK, io_uring, ptrace and more")
    warnings.warn(f"sandbox without {', '.join(missing)} ({reason or 'namespaces disabled'}): {'; '.join(what)}. "
                  "Set MGRPO_SANDBOX_REQUIRE_NAMESPACES=1 to refuse such runs.", SandboxWeakIsolationWarning,
                  stacklevel=3)


# ----------------------------------------------------------------------------------------------- parent side
_uids_in_use: set[int] = set()
_uids_lock = threading.Lock()


def _claim_uid() -> int:
    """A run's private uid: random in the range, never one a concurrent run of this process holds (the end of a
    run kills every process of its uid) nor one that any process on the host runs as now."""
    with _uids_lock:
        while True:
            uid = secrets.randbelow(SANDBOX_UID_RANGE[1] - SANDBOX_UID_RANGE[0]) + SANDBOX_UID_RANGE[0]
            if uid not in _uids_in_use and _count_processes_of(uid) == 0:
                _uids_in_use.add(uid)
                return uid


def _release_uid(uid: int) -> None:
    with _uids_lock:
        _uids_in_use.discard(uid)


def _is_real_root() -> bool:
    """Root of the initial user namespace (can set any uid, make cgroups). Root inside a user namespace that maps
    only some uids (rootless containers, `unshare -r`) is treated as an unprivileged user."""
    if os.geteuid() != 0:
        return False
    try:
        return Path("/proc/self/uid_map").read_text().split() == ["0", "0", "4294967295"]
    except OSError:
        return True


def _minimal_env(workdir: Path) -> dict[str, str]:
    # Nothing from the parent's environment: no tokens, no proxies, no paths into the repo.
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _dirs_to_hide() -> list[str]:
    """MGRPO_SANDBOX_HIDE (colon-separated): dirs to cover with an empty tmpfs should the sandbox's root hold them
    (e.g. something inside the interpreter's prefix)."""
    return sorted({os.path.realpath(p) for p in os.environ.get("MGRPO_SANDBOX_HIDE", "").split(":") if p})


def _dirs_to_keep() -> list[str]:
    """The interpreter and its libraries, bind-mounted (read-only) into the sandbox's root."""
    keep = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    keep.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    for entry in sys.path:
        if entry and "-packages" in entry and os.path.isdir(entry):
            keep.add(os.path.realpath(entry))
    kept = []
    for path in sorted(keep, key=len):  # parents first: a child of a kept dir comes along with it
        if path != "/" and os.path.isdir(path) and not _under(path, kept):
            kept.append(path)
    return kept


def _under(path: str, roots) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _world_can_run(path: str) -> bool:
    """Whether an arbitrary uid can execute `path` (every parent dir o+x, the file o+x)."""
    import stat

    current = Path(path)
    if not os.stat(current).st_mode & stat.S_IXOTH:
        return False
    return all(os.stat(parent).st_mode & stat.S_IXOTH for parent in current.parents)


def _own_cgroup_path(controller: str) -> tuple[Path, str] | None:
    """(mount point, own path) of a cgroup controller (v1), or the unified hierarchy (v2, controller '')."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller and controller in controllers.split(","):
            return Path("/sys/fs/cgroup") / controller, path
        if not controller and controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            return Path("/sys/fs/cgroup"), path
    return None


CPU_PERIOD_US = 100_000


def _make_cgroups(name: str, max_processes: int, memory_mb: int, delegated_only: bool = False,
                  cpus: float | None = None) -> list[Path]:
    """Per-run cgroups with pids and memory limits, and a CPU quota of `cpus` CPUs when given (cgroup v1 `cpu`
    controller's cfs quota, v2 `cpu.max`; best effort: a hierarchy without the cpu controller gets no quota, the
    other limits stay); [] when the OS does not let us (documented fallback).
    `delegated_only` (not root): only under a cgroup this user may move processes into (a delegated v2 subtree)."""
    quota = None if cpus is None else str(max(1000, int(cpus * CPU_PERIOD_US)))
    limits = {"pids": ({"pids.max": str(max_processes)}, {}),
              "memory": ({"memory.limit_in_bytes": str(memory_mb * 1024 * 1024)}, {})}
    if quota is not None:  # the period first: a quota above the period's current value may be refused otherwise
        limits["cpu"] = ({"cpu.cfs_period_us": str(CPU_PERIOD_US), "cpu.cfs_quota_us": quota}, {})
    wanted = [(controller, required, optional) for controller, (required, optional) in limits.items()] + \
        [("", {"pids.max": str(max_processes), "memory.max": str(memory_mb * 1024 * 1024)},
          {} if quota is None else {"cpu.max": f"{quota} {CPU_PERIOD_US}"})]
    made = []
    for controller, required, optional in wanted:
        if controller == "" and made:
            break  # v2 only when no v1 controller was usable: one directory carries all the limits
        found = _own_cgroup_path(controller)
        if found is None:
            continue
        parent = found[0] / found[1].lstrip("/")
        if delegated_only and not (os.access(parent, os.W_OK) and os.access(parent / "cgroup.procs", os.W_OK)):
            continue
        directory = parent / name
        try:
            directory.mkdir()
            for file, value in required.items():
                (directory / file).write_text(value)
            made.append(directory)
        except OSError:
            _empty_cgroup(directory)
            continue
        for file, value in optional.items():
            try:  # v2: cpu.max exists only where the parent enables the cpu controller for its children
                (directory / file).write_text(value)
            except OSError:
                pass
    return made


def _empty_cgroup(directory: Path) -> None:
    """Kill every member, then remove the cgroup. The loop ends: pids.max bounds how many can respawn."""
    if not directory.exists():
        return
    kill_file = directory / "cgroup.kill"
    if kill_file.exists():
        try:
            kill_file.write_text("1")
        except OSError:
            pass
    for _ in range(200):
        try:
            pids = [int(p) for p in (directory / "cgroup.procs").read_text().split()]
        except OSError:
            break
        if not pids:
            break
        for pid in pids:
            _kill(pid)
        time.sleep(0.01)
    try:
        directory.rmdir()
    except OSError:
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_uid(uid: int) -> None:
    """Kill every process of the run's private uid (survivors that left the session and the cgroup)."""
    for _ in range(50):
        found = False
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                status = Path(entry.path, "status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("Uid:") and int(line.split()[1]) == uid:
                    _kill(int(entry.name))
                    found = True
                    break
        if not found:
            return
        time.sleep(0.01)


def _supervise(config, stdin, timeout_s, max_output_bytes, start, uid, cgroups) -> SandboxResult:
    status_read, status_write = os.pipe()
    # stdin through a pipe fed by a thread: the program's fd 0 is a pipe's read end (not a host file it could write)
    stdin_read, stdin_write = os.pipe()
    try:
        process = subprocess.Popen(
            [config["python"], "-I", "-B", os.path.abspath(__file__), "--launch", str(status_write),
             json.dumps(config)],
            stdin=stdin_read, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(status_write,), start_new_session=True, env=config["env"], cwd=config["workdir"],
        )
    except BaseException:
        os.close(stdin_write)
        raise
    finally:
        os.close(stdin_read)
    os.close(status_write)
    feeder = threading.Thread(target=_feed_stdin, args=(stdin_write, stdin.encode()), daemon=True)
    feeder.start()
    outputs = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    status_bytes = bytearray()
    selector = selectors.DefaultSelector()
    for fd in [*outputs, status_read]:
        selector.register(fd, selectors.EVENT_READ)
    deadline = start + timeout_s
    timed_out = over_limit = False
    finished_at = None
    try:
        while selector.get_map():
            now = time.monotonic()
            wait = deadline - now
            if finished_at is not None:  # the program is gone: drain what is left briefly
                wait = min(wait, finished_at + 0.5 - now)
            if wait <= 0:
                timed_out = finished_at is None
                break
            for key, _ in selector.select(wait):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                    if key.fd == status_read:
                        finished_at = time.monotonic()
                    continue
                if key.fd == status_read:
                    status_bytes += chunk
                    continue
                outputs[key.fd] += chunk
                if sum(len(b) for b in outputs.values()) > max_output_bytes:
                    over_limit = True
            if over_limit:
                break
    finally:
        selector.close()
        _kill_everything(process, uid, cgroups)
        os.close(status_read)
        feeder.join(timeout=2)  # every reader is dead: its write fails at once (else it ends with the last reader)
    stdout = bytes(outputs[process.stdout.fileno()])
    stderr = bytes(outputs[process.stderr.fileno()])
    process.stdout.close()
    process.stderr.close()
    truncated = over_limit or len(stdout) + len(stderr) > max_output_bytes
    stdout, stderr = stdout[:max_output_bytes], stderr[:max_output_bytes]
    report = _parse_status(status_bytes)
    wall = time.monotonic() - start
    isolation = tuple(report.get("isolation", ())) + (("cgroup",) if cgroups else ())
    weak = "; ".join(str(report[key]) for key in ("weak_reason", "seccomp_reason") if report.get(key))
    text_out, text_err = stdout.decode(errors="replace"), stderr.decode(errors="replace")
    if timed_out:
        return SandboxResult("timeout", None, text_out, text_err, truncated, wall, isolation, uid, weak)
    if over_limit:
        return SandboxResult("error", None, text_out, text_err + "\n" + OUTPUT_LIMIT_MESSAGE, True, wall, isolation,
                             uid, weak)
    if "launcher_error" in report:
        raise SandboxSetupError(f"sandbox: {report['launcher_error']} (work dir {config['workdir']}; "
                                f"stderr: {text_err[-500:]!r})")
    if "returncode" not in report:
        message = "launcher ended without a status"
        return SandboxResult("error", None, text_out, text_err + f"\n[sandbox] {message}", truncated, wall,
                             isolation, uid, weak)
    returncode = int(report["returncode"])
    if returncode == 0:
        status = "ok"
    elif returncode == -signal.SIGXCPU or (
        returncode == -signal.SIGKILL and report.get("cpu_s_used", 0) >= config["limits"]["cpu_s"]
    ):
        status = "timeout"  # the CPU-time limit was hit (soft limit: SIGXCPU, hard limit: SIGKILL)
    else:
        status = "error"
    return SandboxResult(status, returncode, text_out, text_err, truncated, wall, isolation, uid, weak)


def _feed_stdin(fd: int, data: bytes) -> None:
    """Write the program's stdin into the pipe, then close it (EOF); stops when the program no longer reads."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError:  # BrokenPipeError: the program ended or closed its stdin
        pass
    finally:
        os.close(fd)


def _parse_status(raw: bytes) -> dict:
    status = {}
    try:
        for line in raw.decode().splitlines():
            status |= json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError):
        return {"launcher_error": f"unreadable launcher status {raw[:200]!r}"}
    return status


def _kill_everything(process: subprocess.Popen, uid: int | None, cgroups: list[Path]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for cgroup in cgroups:
        _empty_cgroup(cgroup)
    if uid is not None:
        _kill_uid(uid)
    process.wait()


# ----------------------------------------------------------------------------------------------- launcher side
def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(libc, source, target, fstype, flags, data=None) -> None:
    encode = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)),
           f"mount {source} on {target}")


def _mount_points() -> list[tuple[str, set[str]]]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        target = fields[4].encode().decode("unicode_escape")  # mountinfo escapes spaces as \040
        points.append((target, set(fields[5].split(","))))
    return points


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _unshare(libc, config: dict) -> tuple[list[str], str]:
    """New namespaces for the launcher: (layers, "") or ([], why not). As root: PID, net, mount, IPC, UTS namespaces.
    Otherwise the same inside a new user namespace that maps only the caller's own uid and gid (all an unprivileged
    process may map by itself)."""
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    layers = ["pid-namespace", "net-namespace", "mount-namespace", "ipc-namespace"]
    if config["real_root"]:
        if libc.unshare(flags) == 0:
            return layers, ""
        return [], f"unshare(CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWNET|...) failed: {os.strerror(ctypes.get_errno())}"
    if libc.unshare(flags | CLONE_NEWUSER) != 0:
        return [], ("unprivileged user namespaces unavailable: unshare(CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET|"
                    f"CLONE_NEWNS) failed: {os.strerror(ctypes.get_errno())}")
    uid, gid = config["outer_ids"]
    _write("/proc/self/setgroups", "deny\n")  # required before an unprivileged gid_map
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")
    return ["user-namespace", *layers], ""


def _build_root(libc, config: dict, userns: bool) -> list[str]:
    """In the PID namespace's init, inside the new mount namespace: build the sandbox's root in an empty tmpfs, with
    only the allowlisted host paths (read-only), private size-capped tmpfs for /tmp, /var/tmp, /dev/shm and the work
    dir (a copy of the run's files), the namespace's /proc; then pivot_root into it. Returns the extra layers."""
    layers = ["allowlist-root", "read-only-fs", "workdir-tmpfs"]
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)  # nothing we do propagates back to the host
    workdir = config["workdir"]
    host_work = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)  # the run's files, read after the root covers them
    root = workdir  # the new root's tmpfs covers the host work dir, in this mount namespace only

    def inside(path: str) -> str:
        return root + path

    def bind(source: str, target: str) -> None:
        _mount(libc, source, target, None, MS_BIND | MS_REC)

    _mount(libc, "tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=755")
    bound = []
    for path in config["system_dirs"]:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            os.symlink(os.readlink(path), inside(path))
        elif os.path.isdir(path):
            os.mkdir(inside(path), 0o755)
            bind(path, inside(path))
            bound.append(path)
    os.mkdir(inside("/etc"), 0o755)
    for path in _etc_entries(config["etc_allowed"]):
        target = inside(path)
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        if os.path.lexists(target):
            continue
        if os.path.islink(path):  # e.g. /etc/localtime, /etc/alternatives/*: the link, its target must be visible
            os.symlink(os.readlink(path), target)
        elif os.path.isdir(path):
            os.mkdir(target, 0o755)
            bind(path, target)
        elif os.path.isfile(path):
            open(target, "w").close()
            bind(path, target)
    os.makedirs(inside("/dev"), 0o755, exist_ok=True)
    size = f"size={config['tmpfs_mb']}m,mode=1777"
    for path in config["private_tmp"]:
        os.makedirs(inside(path), 0o755, exist_ok=True)
        _mount(libc, "tmpfs", inside(path), "tmpfs", MS_NOSUID | MS_NODEV, size)
    for path in config["keep"]:  # the interpreter's prefix and site-packages
        if not _under(path, config["system_dirs"]):
            os.makedirs(inside(path), 0o755, exist_ok=True)
            bind(path, inside(path))
            bound.append(path)
    for path in config["hide"]:
        if os.path.isdir(inside(path)) and not os.path.islink(inside(path)) and \
                not _under(path, config["private_tmp"]):
            _mount(libc, "tmpfs", inside(path), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=755")
    for name in DEV_NODES:
        if os.path.exists("/dev/" + name):
            open(inside("/dev/" + name), "w").close()
            bind("/dev/" + name, inside("/dev/" + name))
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, inside("/dev/" + name))
    os.mkdir(inside("/proc"), 0o555)
    _mount(libc, "proc", inside("/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # this PID namespace only
    if userns:
        try:  # no user namespace inside ours: its "root" could mount things of its own (kernel attack surface)
            _write(inside("/proc/sys/user/max_user_namespaces"), "0\n")
            layers.append("no-nested-userns")
        except OSError:
            pass
    # The work dir: a size-capped tmpfs at the same path, owned by the program's uid, holding a copy of the files.
    if _under(workdir, bound) and not _under(workdir, config["private_tmp"]):
        raise OSError(f"the work dir {workdir} lies inside {', '.join(p for p in bound if _under(workdir, [p]))}, "
                      "which the sandbox shows read-only; set TMPDIR to another directory")
    owner = config["uid"] if config["uid"] is not None else config["outer_ids"][0]
    group = config["uid"] if config["uid"] is not None else config["outer_ids"][1]
    os.makedirs(inside(workdir), 0o755, exist_ok=True)
    _mount(libc, "tmpfs", inside(workdir), "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={config['workdir_bytes']},mode=700,uid={owner},gid={group}")
    for name in os.listdir(host_work):
        source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=host_work)
        try:
            with os.fdopen(source, "rb", closefd=False) as f, open(inside(f"{workdir}/{name}"), "wb") as out:
                shutil.copyfileobj(f, out)
            os.chown(inside(f"{workdir}/{name}"), owner, group)
        finally:
            os.close(source)
    os.close(host_work)
    # Everything read-only but the private tmpfs and the work dir; then the root is switched and the host's detached.
    writable = {inside(p) for p in config["private_tmp"]} | {inside(workdir)}
    targets = {}
    for target, options in _mount_points():
        if _under(target, [root]):
            targets[target] = options  # a path mounted over twice: the top mount is the one reached
    for target in sorted(targets, key=lambda t: t.count("/")):
        if target in writable:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        flags |= sum(flag for name, flag in MOUNT_OPTION_FLAGS.items() if name in targets[target])
        _mount(libc, None, target, None, flags)
    os.chdir(root)
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {platform.machine()}")
    _check(libc.syscall(ctypes.c_long(number), b".", b"."), "pivot_root")
    _check(libc.umount2(b".", MNT_DETACH), "detach the host's root")
    os.chdir("/")
    for path in ("/", "/usr", "/etc", "/proc"):
        if os.path.isdir(path) and not os.statvfs(path).f_flag & os.ST_RDONLY:
            raise OSError(f"{path} is still writable in the sandbox")
    return layers


def seccomp_rules(machine: str) -> list[tuple[str, int, tuple[tuple[int, int, int, int], ...]]]:
    """The seccomp filter's rules: (system call, errno it fails with, comparisons (arg, op, a, b) that must all hold).
    Everything else is allowed. libseccomp (2.5) takes at most one comparison per argument and rule; rules of one
    system call are alternatives, so "deny unless the value is one of a few" is written as several rules.

    - unshare with any namespace flag, clone with any but CLONE_NEWTIME (that bit is part of clone's exit signal):
      EPERM. Other flags (CLONE_FILES, CLONE_THREAD, ...) stay allowed: threads and fork use them.
    - clone3 passes its flags in a struct that seccomp cannot read: ENOSYS, so that glibc (pthread_create,
      posix_spawn) falls back to clone, which is checked.
    - socket: only AF_UNIX, AF_INET, AF_INET6 (multiprocessing, the empty network namespace's sockets), and not
      (AF_INET, SOCK_PACKET), which the kernel makes an AF_PACKET socket; socketpair: only AF_UNIX. Values are
      compared as 64 bits: one with high bits set (the kernel reads an int) is denied.
    - personality: only 0 (PER_LINUX) and 0xffffffff (the query); a value with at least one bit set and one clear
      has, going round its 32 bits, a clear bit followed by a set one: one masked rule per such pair.
    - every name of SECCOMP_DENIED: EPERM.
    """
    import errno

    eq, gt, masked_eq = 4, 6, 7  # libseccomp's enum scmp_compare: SCMP_CMP_EQ, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ
    rules = [(name, errno.EPERM, ()) for name in SECCOMP_DENIED]
    rules.append(("clone3", errno.ENOSYS, ()))
    rules += [("unshare", errno.EPERM, ((0, masked_eq, flag, flag),)) for flag in (*NAMESPACE_FLAGS, CLONE_NEWTIME)]
    clone_flags_arg = 1 if machine.startswith("s390") else 0  # clone(stack, flags, ...) there, (flags, ...) elsewhere
    rules += [("clone", errno.EPERM, ((clone_flags_arg, masked_eq, flag, flag),)) for flag in NAMESPACE_FLAGS]
    for domain in (AF_UNSPEC, *range(AF_INET + 1, AF_INET6)):
        rules.append(("socket", errno.EPERM, ((0, eq, domain, 0),)))
    rules.append(("socket", errno.EPERM, ((0, gt, AF_INET6, 0),)))
    # the kernel turns (AF_INET, SOCK_PACKET) into an AF_PACKET socket (net/socket.c, "Compatibility")
    rules.append(("socket", errno.EPERM, ((0, eq, AF_INET, 0), (1, masked_eq, SOCK_TYPE_MASK, SOCK_PACKET))))
    rules += [("socketpair", errno.EPERM, ((0, eq, AF_UNSPEC, 0),)),
              ("socketpair", errno.EPERM, ((0, gt, AF_UNIX, 0),))]
    rules.append(("personality", errno.EPERM, ((0, gt, 0xFFFFFFFF, 0),)))
    for bit in range(32):
        clear, then_set = 1 << bit, 1 << (bit + 1) % 32
        rules.append(("personality", errno.EPERM, ((0, masked_eq, clear | then_set, then_set),)))
    return rules


def _libseccomp():
    """libseccomp through ctypes (the launcher imports only the standard library): the interpreter's prefix first
    (a conda environment's libseccomp), then the system's."""
    candidates = [os.path.join(prefix, "lib", SECCOMP_LIBRARY) for prefix in dict.fromkeys((sys.prefix,
                                                                                           sys.base_prefix))]
    errors = []
    for candidate in [c for c in candidates if os.path.exists(c)] + [SECCOMP_LIBRARY]:
        try:
            lib = ctypes.CDLL(candidate, use_errno=True)
            break
        except OSError as error:
            errors.append(str(error))
    else:
        raise OSError(f"{SECCOMP_LIBRARY} not found ({'; '.join(errors)}); install libseccomp (Debian/Ubuntu: "
                      "libseccomp2, conda-forge: libseccomp)")
    try:
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.c_void_p]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.restype = None
    except AttributeError as error:  # a libseccomp too old for this interface: no filter (not a setup failure)
        raise OSError(f"{SECCOMP_LIBRARY} lacks {error}") from None
    return lib


class _ScmpArgCmp(ctypes.Structure):  # libseccomp's struct scmp_arg_cmp
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _install_seccomp(libc) -> None:
    """Load seccomp_rules' filter into this process (inherited by every process it forks, kept across execve).
    Sets no_new_privs first (required to load a filter without CAP_SYS_ADMIN, and it must hold for the program).
    Raises OSError when the filter cannot be built or loaded."""
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    lib = _libseccomp()
    allow = 0x7FFF0000  # SCMP_ACT_ALLOW; SCMP_ACT_ERRNO(e) = 0x00050000 | e
    ctx = lib.seccomp_init(allow)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        for name, error, comparisons in seccomp_rules(platform.machine()):
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number == -1:  # __NR_SCMP_ERROR: unknown to this libseccomp (a pseudo number < -1: not on this arch)
                if name in SECCOMP_REQUIRED:
                    raise OSError(f"seccomp: libseccomp does not know the system call {name}")
                continue
            array = (_ScmpArgCmp * len(comparisons))(*(_ScmpArgCmp(*c) for c in comparisons))
            result = lib.seccomp_rule_add_array(ctx, 0x00050000 | error, number, len(comparisons),
                                                array if comparisons else None)
            if result != 0:
                raise OSError(-result, f"seccomp rule for {name}: {os.strerror(-result)}")
        result = lib.seccomp_load(ctx)
        if result != 0:
            raise OSError(-result, f"seccomp_load: {os.strerror(-result)}")
    finally:
        lib.seccomp_release(ctx)


def _etc_entries(patterns: list[str]) -> list[str]:
    """The host's /etc paths the allowlist names (parents before children)."""
    import glob

    found = set()
    for pattern in patterns:
        found.update(p for p in glob.glob("/etc/" + pattern) if os.path.realpath(os.path.dirname(p)).startswith("/etc"))
    return sorted(found, key=lambda p: (p.count("/"), p))


def _exec_program(config: dict) -> None:
    """In the program's process: limits, identity, then exec. Never returns."""
    import resource

    limits = config["limits"]
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["as_bytes"], limits["as_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize_bytes"], limits["fsize_bytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["nofile"], limits["nofile"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    hard = resource.getrlimit(resource.RLIMIT_SIGPENDING)[1]  # never above the inherited hard limit
    pending = limits["sigpending"] if hard == resource.RLIM_INFINITY else min(hard, limits["sigpending"])
    resource.setrlimit(resource.RLIMIT_SIGPENDING, (pending, pending))
    nproc = limits["nproc"]
    if config["uid"] is None:
        if config.get("own_userns"):  # counted per user namespace: the launcher and the init besides the program's
            nproc += 2
        else:  # our own uid: the count includes the user's other processes
            nproc += _count_processes_of(os.getuid())
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    libc = _libc()
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")  # no setuid gains
    if config.get("own_userns") or config["uid"] is not None:  # no capability can come back (execve as non-root
        libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)  # drops them; this keeps them from returning)
        for cap in range(64):
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    if config["uid"] is not None:
        os.setgroups([])
        os.setresgid(config["uid"], config["uid"], config["uid"])
        os.setresuid(config["uid"], config["uid"], config["uid"])
    os.chdir(config["workdir"])
    os.execve(config["python"], [config["python"], *config["argv"]], config["env"])


def _count_processes_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


def _launch(status_fd: int, config: dict) -> int:
    """The launcher: join cgroups, create namespaces, set up mounts, run the program, report its status."""
    os.set_inheritable(status_fd, False)  # the program must not be able to forge its own status
    os.umask(0o022)

    def report(**fields) -> None:  # one JSON line per report; the parent merges them
        os.write(status_fd, json.dumps(fields).encode() + b"\n")

    try:
        for cgroup in config["cgroups"]:
            Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))
        libc = _libc()
        isolation, why = _unshare(libc, config) if config["namespaces"] else ([], "namespaces=False")
        if not isolation:
            if config["require_namespaces"]:
                raise OSError(f"namespaces required but not available: {why}")
            report(weak_reason=why)
        config["own_userns"] = "user-namespace" in isolation and not config["real_root"]
    except Exception as error:  # noqa: BLE001 - reported to the parent, which stops the evaluation
        report(launcher_error=f"setup failed: {error}")
        return 1
    init_pid = os.fork()
    if init_pid:  # the launcher outside the PID namespace: wait for the init, which reports
        os.waitpid(init_pid, 0)
        return 0
    # The init of the new PID namespace: when it exits, the kernel kills everything left inside.
    try:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # no handler of ours: the kernel then drops every signal the PID namespace sends its init (as a user the
        # program has the init's uid; Python's SIGINT handler would let it end the init)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if "mount-namespace" in isolation:
            isolation += _build_root(libc, config, "user-namespace" in isolation)
        if config["uid"] is not None and "mount-namespace" not in isolation and not config["world_can_run"]:
            config["uid"] = None  # without our mounts the private uid could not reach the interpreter (e.g. ~/.pyenv)
        if config["uid"] is not None:
            isolation.append("private-uid")
        isolation.append("rlimits")
        # last, once no mount or namespace is left to make: the filter denies them to the init (harmless: it only
        # forks the program and reaps) and to the program, which inherits it
        try:
            if not config["seccomp"]:
                raise OSError("seccomp=False")
            _install_seccomp(libc)
            isolation.append("seccomp")
        except OSError as error:
            if config["require_namespaces"]:
                raise OSError(f"seccomp filter required but not installed: {error}") from None
            report(seccomp_reason=f"no seccomp filter: {error}")
    except Exception as error:  # noqa: BLE001
        report(launcher_error=f"setup failed: {error}", isolation=isolation)
        os._exit(1)
    report(isolation=isolation)  # now, so that a run killed at its limits still says what isolated it
    program_pid = os.fork()
    if program_pid == 0:
        try:
            _exec_program(config)
        except BaseException as error:  # noqa: BLE001
            os.write(2, f"[sandbox] could not start the program: {error}\n".encode())
        finally:
            os._exit(127)
    while True:  # reap orphans re-parented to us until the program itself ends
        pid, wait_status, usage = os.wait4(-1, 0)
        if pid == program_pid:
            break
    returncode = os.waitstatus_to_exitcode(wait_status)
    # isolation again, as the last line wins: in the no-namespace fallback the program (same uid) could have written
    # a line of its own before this one
    report(returncode=returncode, isolation=isolation, cpu_s_used=usage.ru_utime + usage.ru_stime)
    os._exit(0)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--launch":
    sys.exit(_launch(int(sys.argv[2]), json.loads(sys.argv[3])))
