"""Supervised worker processes for the sandboxed drivers. Runs INSIDE the sandbox: its source is prepended to a
driver's program (after plain_data.py's; standard library only, no `from __future__`).

Why: a per-input time limit enforced in the candidate's own process (signals, evalplus's `time_limit`) can be
cancelled by the candidate. Here the driver's process is a trusted SUPERVISOR that never runs candidate code; the
candidate runs in a WORKER process the supervisor forked, and the supervisor's clock decides:
- `make_undumpable()` (PR_SET_DUMPABLE 0; inherited by the workers) first: a process of the same uid (a worker,
  or anything it forks) can then not read the supervisor's memory or descriptors through /proc, nor ptrace it
  (the sandbox's seccomp filter refuses ptrace and process_vm_readv too).
- `fork_worker(serve)` BEFORE the driver reads its task: the worker holds nothing of the task (no inputs, no
  nonce). It points fds 0, 1, 2 at /dev/null and closes every other fd but its two pipe ends (so candidate code
  never reaches the report's stdout, nor another worker's pipes), runs `serve`'s set-up, then answers messages.
- The supervisor sends a message only when its clock starts (`Worker.call`): an input is sent when that input's
  time starts, so the worker never sees a future input. It waits for the reply with poll() until the deadline;
  on timeout it SIGKILLs and reaps the worker (`Worker.kill`). A reply received after the deadline (e.g. the
  supervisor was stopped with SIGSTOP meanwhile) is a timeout too: the time is measured after the reply is read.
- Messages supervisor -> worker: length-prefixed pickles (trusted -> untrusted only: the supervisor pickles its own
  values, e.g. evalplus's deserialised inputs, exactly as they are: tuples, sets, complex numbers). Replies
  worker -> supervisor: length-prefixed JSON objects {"seq": n, "ok": value} or {"seq": n, "error": text}, read
  with a size bound and parsed strictly (no NaN literals); the supervisor never unpickles. Anything else (EOF, a
  dead worker, a wrong seq, a reply over the bound, not JSON) is "broken": the caller counts it as an error.
- `become_subreaper()` (PR_SET_CHILD_SUBREAPER) before the first fork, and `sweep(keep)` when a phase ends: every
  process the candidate started (a background process forked at load time, a double-forked daemon) is a descendant
  of the supervisor (an orphan is re-parented to the nearest subreaper: this process), so the sweep SIGKILLs every
  live descendant but the workers not used yet, reaps, and repeats until a scan finds none; one still there after
  SWEEP_ROUNDS rounds is an error (`SweepError`: the driver then writes no report, so the run never passes).
"""
import ctypes
import json
import os
import pickle
import select
import signal
import struct
import time

_HEADER = struct.Struct("!Q")
PR_SET_DUMPABLE, PR_GET_DUMPABLE = 4, 3
PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37
SWEEP_ROUNDS = 200  # the nproc rlimit (and the cgroup's pids.max) bounds what a fork race can refill per round
SWEEP_PAUSE_S = 0.005
DEFAULT_MAX_REPLY_BYTES = 64_000_000
ERROR_TEXT_CHARS = 500


def make_undumpable():
    """prctl(PR_SET_DUMPABLE, 0) on this process (fails closed: OSError if it does not hold)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 or libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def become_subreaper():
    """prctl(PR_SET_CHILD_SUBREAPER, 1): an orphaned descendant is re-parented to this process, so every process the
    candidate starts stays in this process's tree, where `sweep` finds it (fails closed: OSError)."""
    libc = ctypes.CDLL(None, use_errno=True)
    flag = ctypes.c_int(0)
    if (libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0
            or libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) != 0 or flag.value != 1):
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER, 1) failed")


class SweepError(RuntimeError):
    """Processes of the candidate survived every round of `sweep`."""


_workers = {}  # pid -> Worker: every worker forked (a reaped one is marked, its pid never signalled again)


def _live_threads(name):
    """Whether the zombie process `name` still has live threads: its leader (main thread) left with a bare
    SYS_exit while other threads run on. /proc/<pid>/stat then says "Z", but the process is alive."""
    try:
        return len(os.listdir(f"/proc/{name}/task")) > 1
    except OSError:  # gone meanwhile
        return False


def _descendants(root):
    """The live processes whose parent chain reaches `root`, read from /proc (the sandbox's PID namespace lists
    only its own processes; without one, the host's, of which only `root`'s tree is taken). A zombie counts only
    while it still has live threads (a thread group whose leader exited alone: SIGKILL to its pid ends them all)."""
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) ": comm may hold spaces and parentheses
        if len(fields) > 1 and (fields[0] not in (b"Z", b"X", b"x") or _live_threads(name)):
            parents[int(name)] = int(fields[1])
    found = set()
    for pid in parents:
        chain, current = [], pid
        while current in parents and current not in found and current != root and len(chain) <= len(parents):
            chain.append(current)
            current = parents[current]
        if current == root or current in found:
            found.update(chain)
    found.discard(root)
    return found


def reap_children():
    """waitpid(-1, WNOHANG) until none is left to reap: zombies of the candidate's processes re-parented here. A
    worker reaped here (one that died unused) is marked so that its pid is never signalled again."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        worker = _workers.get(pid)
        if worker is not None:
            worker.reaped = True


def sweep(keep=()):
    """SIGKILL every live descendant of this process but the workers in `keep` (forked at the start, not used yet),
    reap, and scan again until a scan finds none. SweepError if some remain after SWEEP_ROUNDS rounds. Never signals
    this process, pid 1 or a pid outside this process's tree."""
    me = os.getpid()
    kept = {worker.pid for worker in keep if worker.alive and not worker.reaped}
    left = set()
    for _ in range(SWEEP_ROUNDS):
        reap_children()
        left = _descendants(me) - kept - {me, 1}
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:  # not ours to signal (cannot happen in the sandbox: one uid): counted as left
                pass
        reap_children()
        time.sleep(SWEEP_PAUSE_S)
    raise SweepError(f"{len(left)} process(es) of the candidate survived {SWEEP_ROUNDS} sweeps")


def _refuse_json_constant(name):
    raise ValueError(f"bare {name}")


# ------------------------------------------------------------------------------------------------ supervisor side
class Worker:
    """The supervisor's handle on one forked worker: `call` it with a deadline, `kill` it."""

    def __init__(self, pid, to_worker, from_worker):
        self.pid, self.to_worker, self.from_worker = pid, to_worker, from_worker
        self.seq = 0
        self.alive = True
        self.reaped = False  # reaped by `reap_children` (it died): its pid may be another process's now

    def call(self, message, wait_s, max_reply_bytes=DEFAULT_MAX_REPLY_BYTES):
        """Send `message` (a dict; pickled) and wait at most `wait_s` seconds, measured from just before the send,
        for its reply: ("ok", value), ("error", text), ("timeout", elapsed_s) or ("broken", why). On "timeout"
        and "broken" the worker has been killed."""
        if not self.alive:
            return "broken", "worker already stopped"
        self.seq += 1
        data = pickle.dumps({**message, "seq": self.seq}, protocol=pickle.HIGHEST_PROTOCOL)
        start = time.monotonic()
        deadline = start + max(wait_s, 0.0)
        try:
            if not _write_all(self.to_worker, _HEADER.pack(len(data)) + data, deadline):
                return self._stop("timeout", time.monotonic() - start)
            header = _read_exact(self.from_worker, _HEADER.size, deadline)
            if header is not None:
                size, = _HEADER.unpack(header)
                if size > max_reply_bytes:
                    return self._stop("broken", f"reply of {size} bytes is over the limit ({max_reply_bytes})")
                payload = _read_exact(self.from_worker, size, deadline)
        except EOFError:
            return self._stop("broken", "worker ended without a reply")
        except OSError as error:  # EPIPE: the worker is gone
            return self._stop("broken", f"worker pipe: {error!r}")
        elapsed = time.monotonic() - start
        if header is None or payload is None or elapsed > wait_s:
            return self._stop("timeout", elapsed)
        try:
            reply = json.loads(payload.decode("utf-8"), parse_constant=_refuse_json_constant)
        except (ValueError, RecursionError, MemoryError) as error:  # UnicodeDecodeError is a ValueError
            return self._stop("broken", f"malformed reply: {error!r}"[:ERROR_TEXT_CHARS])
        if type(reply) is not dict or reply.get("seq") != self.seq or len(reply) != 2:
            return self._stop("broken", "malformed reply")
        if "ok" in reply:
            return "ok", reply["ok"]
        if type(reply.get("error")) is str:
            return "error", reply["error"][:ERROR_TEXT_CHARS]
        return self._stop("broken", "malformed reply")

    def _stop(self, kind, detail):
        self.kill()
        return kind, detail

    def kill(self):
        """SIGKILL the worker, reap it, close the pipes (idempotent)."""
        if not self.alive:
            return
        self.alive = False
        if not self.reaped:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.reaped = True
        for fd in (self.to_worker, self.from_worker):
            try:
                os.close(fd)
            except OSError:
                pass


def _write_all(fd, data, deadline):
    """Write all of `data` to the non-blocking `fd` by `deadline`: True, or False at the deadline."""
    view = memoryview(data)
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while view:
        try:
            view = view[os.write(fd, view):]
            continue
        except BlockingIOError:
            pass
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        for _, event in poller.poll(left * 1000):
            if event & (select.POLLERR | select.POLLHUP) and not event & select.POLLOUT:
                raise BrokenPipeError("worker closed its pipe")
    return True


def _read_exact(fd, size, deadline):
    """`size` bytes from `fd` by `deadline`: the bytes, None at the deadline; EOFError at end of file."""
    chunks, got = [], 0
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while got < size:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if not poller.poll(left * 1000):
            continue
        chunk = os.read(fd, min(size - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def fork_worker(serve):
    """Fork a worker that runs `serve(receive, reply)` (see `_worker_main`); the supervisor gets its `Worker`.

    Call before the task is read: the worker must hold nothing of it."""
    to_read, to_write = os.pipe()
    from_read, from_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: never returns into the caller
        code = 1
        try:
            _worker_main(to_read, from_write, serve)
            code = 0
        finally:
            os._exit(code)
    os.close(to_read)
    os.close(from_write)
    os.set_blocking(to_write, False)
    worker = Worker(pid, to_write, from_read)
    _workers[pid] = worker
    return worker


# ------------------------------------------------------------------------------------------------ worker side
def _isolate_fds(keep):
    """fds 0, 1, 2 on /dev/null; every fd but `keep` closed (a worker never reaches the report's stdout)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        if fd != null:
            os.dup2(null, fd)
    import resource

    top = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    top = 1 << 20 if top == resource.RLIM_INFINITY else top
    low = 3
    for fd in sorted(keep) + [top]:
        if low < fd:
            os.closerange(low, fd)
        low = fd + 1


def _worker_main(read_fd, write_fd, serve):
    """The worker's life: isolate the fds, then `serve(receive, reply)`; `receive()` gives the next message (None
    at EOF), `reply(message, kind, value)` answers it."""
    _isolate_fds({read_fd, write_fd})
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    read, write, loads, dumps, pid_of, exit_now = os.read, os.write, pickle.loads, json.dumps, os.getpid, os._exit
    pid = pid_of()

    def read_exact(size):
        chunks, got = [], 0
        while got < size:
            chunk = read(read_fd, min(size - got, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def receive():
        header = read_exact(_HEADER.size)
        payload = None if header is None else read_exact(_HEADER.unpack(header)[0])
        return None if payload is None else loads(payload)

    def reply(message, kind, value):
        if pid_of() != pid:  # a process the candidate forked came back here: only the worker answers
            exit_now(0)
        try:
            data = dumps({"seq": message["seq"], kind: value}).encode()
        except (TypeError, ValueError, RecursionError) as error:
            data = dumps({"seq": message["seq"], "error": f"reply not JSON: {error!r}"[:ERROR_TEXT_CHARS]}).encode()
        data = _HEADER.pack(len(data)) + data
        while data:
            data = data[write(write_fd, data):]

    serve(receive, reply)


def describe_error(error):
    """repr of an exception the candidate raised, truncated (its own __repr__ may fail)."""
    try:
        return repr(error)[:ERROR_TEXT_CHARS]
    except BaseException:  # noqa: BLE001 - a hostile __repr__
        return f"<{type(error).__name__}>"[:ERROR_TEXT_CHARS]
