"""Run untrusted (model-written) programs with time, memory, process, file and network limits.

`run_untrusted(program, stdin, timeout_s, **limits)` runs a Python program in a fresh temp dir and returns a
`SandboxResult`. The layers, each used when the OS allows it (see docs/sandbox.md for what was measured):

- Linux namespaces (needs root): new PID namespace (the program's whole process tree dies with its init), new network
  namespace (only a down loopback: no traffic at all), new mount namespace (every mount read-only, home/repo/data dirs
  hidden under empty tmpfs, private size-capped /tmp, /var/tmp, /dev/shm, only the work dir writable), new IPC and UTS
  namespaces.
- cgroups (needs root, v1 or v2): a per-run `pids.max` (contains fork bombs) and memory limit (bounds the sum over all
  processes; RLIMIT_AS alone is per process).
- A fresh unprivileged uid per run (when root): file permissions apply (/etc/shadow, ~/.ssh unreadable), it cannot
  signal other users' processes, RLIMIT_NPROC counts only this run's processes; no_new_privs blocks setuid binaries.
- rlimits set before the program starts: CPU, address space, file size, process count, open files, no core dumps.
- A minimal environment (no inherited secrets), `python -I -B`, a wall timeout that kills the whole session, the cgroup
  members and every process of the run's uid.

This module only imports the standard library: it is also executed as a script (the in-sandbox launcher).
"""
from __future__ import annotations

import ctypes
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SandboxResult", "SandboxSetupError", "run_untrusted", "isolation_report"]

# Linux constants (sched.h, mount.h, prctl.h)
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38

SANDBOX_UID_RANGE = (1_000_000, 2_000_000)  # uids no file on the host belongs to
SYSTEM_DIRS = {"/", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/proc", "/sys", "/dev"}
DEFAULT_HIDDEN_DIRS = ("/root", "/home", "/run", "/mnt", "/media", "/srv", "/opt", "/var/lib", "/var/log", "/var/mail")
PRIVATE_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
OUTPUT_LIMIT_MESSAGE = "[sandbox] output limit exceeded; program killed"


class SandboxSetupError(RuntimeError):
    """The sandbox could not be set up for a run (before the program started): an evaluation must stop here,
    not score the candidate as failed."""


@dataclass(frozen=True)
class SandboxResult:
    status: str  # "ok" (exit 0), "timeout" (wall or CPU limit hit), "error" (anything else)
    returncode: int | None  # exit code, or -signal when killed by a signal, None when the sandbox killed it
    stdout: str
    stderr: str
    output_truncated: bool = False
    wall_s: float = 0.0
    isolation: tuple[str, ...] = field(default_factory=tuple)  # the layers that were active

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
    files: dict[str, str | bytes] | None = None,
    extra_env: dict[str, str] | None = None,
    require_namespaces: bool | None = None,
    namespaces: bool = True,
) -> SandboxResult:
    """Run the Python `program` in the sandbox and return its status and captured output.

    `files` are written into the program's work dir (its cwd) first; `extra_env` adds variables to the minimal
    environment (never the parent's). `memory_mb` bounds each process's address space
    and, with cgroups, the sum over the run. `require_namespaces` (default: env MGRPO_SANDBOX_REQUIRE_NAMESPACES=1)
    refuses to run instead of falling back to rlimits-only when namespaces cannot be created; `namespaces=False`
    forces that fallback (to test it). A sandbox that cannot be set up (that refusal, a mount that fails, ...)
    raises `SandboxSetupError`: the program never ran, so there is no status to score.
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    if require_namespaces is None:
        require_namespaces = os.environ.get("MGRPO_SANDBOX_REQUIRE_NAMESPACES", "") == "1"
    cpu_s = timeout_s if cpu_s is None else cpu_s
    is_root = os.geteuid() == 0
    uid = _claim_uid() if is_root else None
    token = secrets.token_hex(6)
    start = time.monotonic()

    workdir = Path(tempfile.mkdtemp(prefix=f"mgrpo-sbx-{token}-"))
    cgroups: list[Path] = []
    try:
        for name, content in {**(files or {}), "main.py": program}.items():
            if Path(name).name != name:
                raise ValueError(f"sandbox file names must be plain names, got {name!r}")
            data = content.encode() if isinstance(content, str) else content
            (workdir / name).write_bytes(data)
        if uid is not None:
            for path in [workdir, *workdir.iterdir()]:
                os.chown(path, uid, uid)
        os.chmod(workdir, 0o700)
        if is_root:
            cgroups = _make_cgroups(f"mgrpo-sbx-{token}", max_processes, memory_mb)

        config = {
            "workdir": str(workdir),
            "python": os.path.realpath(sys.executable),
            "argv": ["-I", "-B", "main.py"],
            "env": {**_minimal_env(workdir), **(extra_env or {})},
            "uid": uid,
            "cgroups": [str(c) for c in cgroups],
            "hide": _dirs_to_hide(),
            "keep": _dirs_to_keep(),
            "private_tmp": [d for d in PRIVATE_TMP_DIRS if os.path.isdir(d)],
            "tmpfs_mb": tmpfs_mb,
            "require_namespaces": require_namespaces,
            "namespaces": namespaces,
            "world_can_run": _world_can_run(os.path.realpath(sys.executable)),
            "limits": {
                "cpu_s": max(1, int(cpu_s + 0.999)),
                "as_bytes": memory_mb * 1024 * 1024,
                "fsize_bytes": max_file_mb * 1024 * 1024,
                "nproc": max_processes,
                "nofile": max_open_files,
            },
        }
        return _supervise(config, stdin, timeout_s, max_output_bytes, start, uid, cgroups)
    finally:
        for cgroup in cgroups:
            _empty_cgroup(cgroup)
        shutil.rmtree(workdir, ignore_errors=True)
        if uid is not None:
            _release_uid(uid)


def isolation_report() -> tuple[str, ...]:
    """The isolation layers a run gets on this machine (runs a trivial program)."""
    return run_untrusted("pass", timeout_s=10).isolation


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


def _top_dir(path: str) -> str | None:
    parts = Path(os.path.realpath(path)).parts
    return "/" + parts[1] if len(parts) > 1 else None


def _dirs_to_hide() -> list[str]:
    """Directories replaced by an empty read-only tmpfs: homes, the repo, the cwd, data mounts."""
    repo_root = str(Path(__file__).resolve().parents[2])
    candidates = list(DEFAULT_HIDDEN_DIRS)
    candidates += [repo_root, os.getcwd(), os.path.expanduser("~")]
    candidates += [_top_dir(p) for p in (repo_root, os.getcwd(), os.path.expanduser("~"))]
    candidates += [p for p in os.environ.get("MGRPO_SANDBOX_HIDE", "").split(":") if p]
    hidden = []
    for path in candidates:
        if not path:
            continue
        path = os.path.realpath(path)
        if path in SYSTEM_DIRS or path in PRIVATE_TMP_DIRS or not os.path.isdir(path):
            continue
        if any(path == h or path.startswith(h + "/") for h in hidden):
            continue
        hidden = [h for h in hidden if not h.startswith(path + "/")] + [path]
    return sorted(hidden)


def _dirs_to_keep() -> list[str]:
    """The interpreter and its libraries, bind-mounted back (read-only) where a hidden dir covers them."""
    keep = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    keep.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    for entry in sys.path:
        if entry and "-packages" in entry and os.path.isdir(entry):
            keep.add(os.path.realpath(entry))
    kept = []
    for path in sorted(keep, key=len):  # parents first: a child of a kept dir comes along with it
        if not any(path == k or path.startswith(k + "/") for k in kept):
            kept.append(path)
    return kept


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


def _make_cgroups(name: str, max_processes: int, memory_mb: int) -> list[Path]:
    """Per-run cgroups with pids and memory limits; [] when the OS does not let us (documented fallback)."""
    limits = {"pids": {"pids.max": str(max_processes)},
              "memory": {"memory.limit_in_bytes": str(memory_mb * 1024 * 1024)}}
    made = []
    for controller, files in limits.items():
        found = _own_cgroup_path(controller)
        if found is None:
            continue
        directory = found[0] / found[1].lstrip("/") / name
        try:
            directory.mkdir()
            for file, value in files.items():
                (directory / file).write_text(value)
            made.append(directory)
        except OSError:
            _empty_cgroup(directory)
    if not made:  # cgroup v2: one directory carries both limits
        found = _own_cgroup_path("")
        if found is not None:
            directory = found[0] / found[1].lstrip("/") / name
            try:
                directory.mkdir()
                (directory / "pids.max").write_text(str(max_processes))
                (directory / "memory.max").write_text(str(memory_mb * 1024 * 1024))
                made.append(directory)
            except OSError:
                _empty_cgroup(directory)
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
    with tempfile.TemporaryFile() as stdin_file:
        stdin_file.write(stdin.encode())
        stdin_file.seek(0)
        process = subprocess.Popen(
            [config["python"], "-I", "-B", os.path.abspath(__file__), "--launch", str(status_write),
             json.dumps(config)],
            stdin=stdin_file, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(status_write,), start_new_session=True, env=config["env"], cwd=config["workdir"],
        )
    os.close(status_write)
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
    stdout = bytes(outputs[process.stdout.fileno()])
    stderr = bytes(outputs[process.stderr.fileno()])
    process.stdout.close()
    process.stderr.close()
    truncated = over_limit or len(stdout) + len(stderr) > max_output_bytes
    stdout, stderr = stdout[:max_output_bytes], stderr[:max_output_bytes]
    report = _parse_status(status_bytes)
    wall = time.monotonic() - start
    isolation = tuple(report.get("isolation", ())) + (("cgroup",) if cgroups else ())
    text_out, text_err = stdout.decode(errors="replace"), stderr.decode(errors="replace")
    if timed_out:
        return SandboxResult("timeout", None, text_out, text_err, truncated, wall, isolation)
    if over_limit:
        return SandboxResult("error", None, text_out, text_err + "\n" + OUTPUT_LIMIT_MESSAGE, True, wall, isolation)
    if "launcher_error" in report:
        raise SandboxSetupError(f"sandbox: {report['launcher_error']} (work dir {config['workdir']}; "
                                f"stderr: {text_err[-500:]!r})")
    if "returncode" not in report:
        message = "launcher ended without a status"
        return SandboxResult("error", None, text_out, text_err + f"\n[sandbox] {message}", truncated, wall, isolation)
    returncode = int(report["returncode"])
    if returncode == 0:
        status = "ok"
    elif returncode == -signal.SIGXCPU or (
        returncode == -signal.SIGKILL and report.get("cpu_s_used", 0) >= config["limits"]["cpu_s"]
    ):
        status = "timeout"  # the CPU-time limit was hit (soft limit: SIGXCPU, hard limit: SIGKILL)
    else:
        status = "error"
    return SandboxResult(status, returncode, text_out, text_err, truncated, wall, isolation)


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


def _setup_mounts(libc, config: dict) -> None:
    """Inside the new mount namespace: hide, keep, make everything read-only, then the writable places."""
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)  # nothing we do propagates back to the host
    _mount(libc, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # this PID namespace's view only
    # Handles to what must stay visible, taken before the tmpfs mounts cover them.
    keep_fds = {path: os.open(path, os.O_PATH) for path in config["keep"]}
    workdir_fd = os.open(config["workdir"], os.O_PATH)
    for path in config["hide"]:
        _mount(libc, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for path, fd in keep_fds.items():
        if any(path == h or path.startswith(h + "/") for h in config["hide"]):
            os.makedirs(path, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
    # The work dir's mount point, while a hidden dir covering it ($TMPDIR under /srv, the repo, ...) is writable.
    os.makedirs(config["workdir"], exist_ok=True)
    for target, options in sorted(_mount_points(), key=lambda p: p[0].count("/")):
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        flags |= sum(flag for name, flag in (("nosuid", MS_NOSUID), ("nodev", MS_NODEV), ("noexec", MS_NOEXEC))
                     if name in options)
        try:
            _mount(libc, None, target, None, flags)
        except OSError:
            if target == "/":
                raise
            # a mount point covered by a hidden dir is unreachable, and stays covered
    if not os.statvfs("/").f_flag & os.ST_RDONLY:
        raise OSError("the root file system is still writable")
    size = f"size={config['tmpfs_mb']}m,mode=1777"
    for path in config["private_tmp"]:
        _mount(libc, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, size)
    os.makedirs(config["workdir"], exist_ok=True)  # again: a private tmpfs now covers a work dir under /tmp
    _mount(libc, f"/proc/self/fd/{workdir_fd}", config["workdir"], None, MS_BIND)
    _mount(libc, None, config["workdir"], None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV)


def _exec_program(config: dict) -> None:
    """In the program's process: limits, identity, then exec. Never returns."""
    import resource

    limits = config["limits"]
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["as_bytes"], limits["as_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize_bytes"], limits["fsize_bytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["nofile"], limits["nofile"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    nproc = limits["nproc"]
    if config["uid"] is None:  # our own uid: the count includes the user's other processes
        nproc += _count_processes_of(os.getuid())
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    libc = _libc()
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # setuid binaries cannot raise privileges
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

    def report(**fields) -> None:  # one JSON line per report; the parent merges them
        os.write(status_fd, json.dumps(fields).encode() + b"\n")

    try:
        for cgroup in config["cgroups"]:
            Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))
        libc = _libc()
        isolation = []
        flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
        if config["namespaces"] and libc.unshare(flags) == 0:
            isolation += ["pid-namespace", "net-namespace", "mount-namespace", "ipc-namespace"]
        elif config["require_namespaces"]:
            raise OSError(ctypes.get_errno(), "namespaces required but unshare failed")
    except Exception as error:  # noqa: BLE001 - reported to the parent, which scores the run as an error
        report(launcher_error=f"setup failed: {error}")
        return 1
    init_pid = os.fork()
    if init_pid:  # the launcher outside the namespaces: wait for the init, which reports
        os.waitpid(init_pid, 0)
        return 0
    # The init of the new PID namespace: when it exits, the kernel kills everything left inside.
    try:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if "mount-namespace" in isolation:
            _setup_mounts(libc, config)
            isolation += ["read-only-fs", "hidden-dirs"]
        if config["uid"] is not None and "mount-namespace" not in isolation and not config["world_can_run"]:
            config["uid"] = None  # without our mounts the private uid could not reach the interpreter (e.g. ~/.pyenv)
        if config["uid"] is not None:
            isolation.append("private-uid")
        isolation.append("rlimits")
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
