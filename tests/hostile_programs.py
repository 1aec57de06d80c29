"""The hostile programs of tests/test_sandbox_hostile.py, shared with bench/sandbox_hostile.py (docs/sandbox.md's table).

Each prints what it managed to do; FORBIDDEN_OUTPUT must never appear, and EXPECTED is the status run_untrusted
must report.
"""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SECRET = "mgrpo-test-secret-7f3a9c"


def hostile_programs(sentinel: Path, port: int) -> dict[str, tuple[str, dict]]:
    """name -> (program, run_untrusted limits). Programs print what they managed to do."""
    return {
        "fork_bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
                      {"max_processes": 16, "timeout_s": 2}),
        "infinite_loop": ("while True:\n    pass\n", {"timeout_s": 2}),
        "memory_bomb": ("blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 1024 * 1024))\n",
                        {"memory_mb": 512}),
        "fork_memory_bomb": (
            "import os, time\nfor _ in range(8):\n    if os.fork() == 0:\n        b = bytearray(150 * 2**20)\n"
            "        for i in range(0, len(b), 4096):\n            b[i] = 1\n        time.sleep(5)\n        os._exit(0)\n"
            "time.sleep(5)\n", {"memory_mb": 256, "timeout_s": 3}),
        "daemonised_busy_child": (
            "import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        while True:\n"
            "            pass\n    os._exit(0)\nprint('parent leaves')\n", {}),
        "write_outside_workdir": (
            f"import os\nfor path in [{str(sentinel / 'new.txt')!r}, {str(sentinel / 'keep.txt')!r},\n"
            f"             {str(REPO / 'PWNED')!r}, '/etc/pwned', '/pwned', '/usr/pwned']:\n"
            "    try:\n        open(path, 'a').write('x')\n        print('WROTE', path)\n"
            "    except OSError:\n        pass\n", {}),
        "delete_outside_workdir": (
            f"import shutil, os\ntry:\n    shutil.rmtree({str(sentinel)!r})\n    print('DELETED')\n"
            f"except OSError:\n    pass\ntry:\n    os.remove({str(REPO / 'pyproject.toml')!r})\n    print('DELETED')\n"
            "except OSError:\n    pass\n", {}),
        "read_secrets": (
            "import os\nprint(os.environ.get('MGRPO_TEST_SECRET'))\n"
            f"for path in ['/etc/shadow', {str(REPO / 'pyproject.toml')!r}, os.path.expanduser('~root/.ssh/id_rsa'),\n"
            f"             {str(sentinel / 'keep.txt')!r}, '/proc/1/environ']:\n"
            "    try:\n        print('READ', path, open(path).read()[:40])\n    except OSError:\n        pass\n", {}),
        "socket_loopback": (
            f"import socket\ns = socket.socket()\ns.settimeout(1)\ntry:\n    s.connect(('127.0.0.1', {port}))\n"
            "    s.sendall(b'hello')\n    print('CONNECTED')\nexcept OSError as e:\n    print('refused', e)\n", {}),
        "socket_external": (
            # 192.0.2.1 is TEST-NET-1 (RFC 5737): never routed, so even without a network namespace nothing leaves
            "import socket\ntry:\n    s = socket.create_connection(('192.0.2.1', 53), timeout=1)\n    print('CONNECTED')\n"
            "except OSError as e:\n    print('failed', e)\n", {}),
        "kill_parent": (
            "import os, signal\nfor target in [os.getppid(), -1, 1]:\n    try:\n        os.kill(target, signal.SIGKILL)\n"
            "    except OSError:\n        pass\nprint('still here')\n", {}),
        "huge_output": ("import sys\nwhile True:\n    sys.stdout.write('x' * 100000)\n", {"max_output_bytes": 100_000}),
        "sigterm_ignored_sleep": ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                  "time.sleep(60)\n", {"timeout_s": 1.5}),
        "raise_rlimit": ("import resource\nresource.setrlimit(resource.RLIMIT_CPU, (10**6, 10**6))\n"
                         "while True:\n    pass\n", {"timeout_s": 2}),
        "fill_dev_shm": ("f = open('/dev/shm/fill', 'wb')\nwhile True:\n    f.write(b'x' * 2**20)\n", {}),
        "fill_disk_in_workdir": ("f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * 2**20)\n", {}),
        **{name: (seccomp_probe_program(probes), {}) for name, probes in SECCOMP_PROGRAMS.items()},
    }


# System calls the sandbox's seccomp filter denies, tried by programs: name -> (code that raises OSError when refused,
# the errno the filter gives). Without the filter each of these succeeds or fails with another errno (as root here:
# the user namespace is made, AF_VSOCK and netlink sockets open, io_uring, ptrace, keyctl work; mount and chroot of a
# missing path give ENOENT, clone3 of a null struct EINVAL): the errno tells that the kernel's code was not reached.
SECCOMP_PRELUDE = """
import ctypes, os, platform, socket
libc = ctypes.CDLL(None, use_errno=True)
NR = {"x86_64": {"clone": 56, "clone3": 435, "pivot_root": 155, "keyctl": 250, "io_uring_setup": 425,
                 "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "inotify_init1": 294, "mq_open": 240},
      "aarch64": {"clone": 220, "clone3": 435, "pivot_root": 41, "keyctl": 219, "io_uring_setup": 425,
                  "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "inotify_init1": 26,
                  "mq_open": 180}}[platform.machine()]
CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x00020000, 17

def check(result):
    if result < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result

def syscall(name, *args):
    ctypes.set_errno(0)
    args = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return check(libc.syscall(ctypes.c_long(NR[name]), *args))

def attempt(name, action):
    try:
        action()
    except OSError as error:
        print("denied", name, error.errno)
    else:
        print("ESCAPED", name)

def clone_newuser():  # fork-like clone into a new user namespace; the child leaves at once
    pid = syscall("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)

def new_user_namespace_then_mount():  # in a user + mount namespace of its own, it may mount
    check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS))
    try:
        check(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
        print("ESCAPED mount of a tmpfs in a mount namespace of its own")
    except OSError:
        pass
"""
SECCOMP_PROBES = {
    # namespaces and mounts (the unshare probe last: it would change what the others see)
    "clone_newuser": ("clone_newuser()", 1),
    "clone3": ('syscall("clone3", 0, 0)', 38),  # ENOSYS: glibc falls back to clone, which is checked
    "setns": ("check(libc.setns(-1, 0))", 1),  # EBADF without the filter
    "mount": ('check(libc.mount(b"none", b"/nonexistent-mgrpo", b"tmpfs", 0, None))', 1),
    "umount2": ('check(libc.umount2(b"/nonexistent-mgrpo", 0))', 1),
    "chroot": ('check(libc.chroot(b"/nonexistent-mgrpo"))', 1),
    "pivot_root": ('syscall("pivot_root", b"/nonexistent-mgrpo", b"/nonexistent-mgrpo")', 1),
    "unshare_newuser": ("new_user_namespace_then_mount()", 1),
    # socket families that network namespaces do not isolate, or that no candidate needs
    "socket_vsock": ("socket.socket(40, socket.SOCK_STREAM).close()", 1),  # AF_VSOCK: the hypervisor, other VMs
    "socket_netlink": ("socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()", 1),
    "socket_alg": ("socket.socket(38, socket.SOCK_SEQPACKET).close()", 1),  # AF_ALG: the kernel's crypto API
    "socketpair_inet": ("socket.socketpair(socket.AF_INET)", 1),
    # (AF_INET, SOCK_PACKET) is an AF_PACKET socket (raw frames); without the filter the kernel still wants
    # CAP_NET_RAW, which the program lacks (EPERM either way here: test_sandbox_seccomp checks the filter itself)
    "socket_inet_packet": ("socket.socket(socket.AF_INET, 10, 0x0300).close()", 1),
    # kernel interfaces
    "ptrace": ("check(libc.ptrace(0, 0, None, None))", 1),  # PTRACE_TRACEME
    "process_vm_readv": ("check(libc.process_vm_readv(os.getpid(), None, 0, None, 0, 0))", 1),
    "io_uring_setup": ('syscall("io_uring_setup", 1, ctypes.create_string_buffer(120))', 1),
    "keyctl": ('syscall("keyctl", 0, -3, 0)', 1),  # KEYCTL_GET_KEYRING_ID of the session keyring
    "bpf": ('syscall("bpf", 9999, 0, 0)', 1),
    "perf_event_open": ('syscall("perf_event_open", ctypes.create_string_buffer(128), 0, -1, -1, 0)', 1),
    "userfaultfd": ('syscall("userfaultfd", 1)', 1),  # UFFD_USER_MODE_ONLY
    "name_to_handle_at": ('check(libc.name_to_handle_at(-100, b"/", ctypes.create_string_buffer(256), '
                          'ctypes.create_string_buffer(8), 0))', 1),
    "personality": ("check(libc.personality(ctypes.c_ulong(0x0040000)))", 1),  # ADDR_NO_RANDOMIZE: no ASLR
    # limits counted per uid across user namespaces: not as root, one run could hold the evaluator's uid's all
    "inotify_init1": ('os.close(syscall("inotify_init1", 0))', 1),
    "mq_open": ('syscall("mq_open", b"mgrpo-probe", 0o102, 0o600, None)', 1),  # O_CREAT | O_RDWR
}
SECCOMP_PROGRAMS = {  # hostile program -> its probes
    "escape_namespaces": ("clone_newuser", "clone3", "setns", "mount", "umount2", "chroot", "pivot_root",
                          "unshare_newuser"),
    "escape_sockets": ("socket_vsock", "socket_netlink", "socket_alg", "socketpair_inet", "socket_inet_packet"),
    "escape_kernel_interfaces": ("ptrace", "process_vm_readv", "io_uring_setup", "keyctl", "bpf", "perf_event_open",
                                 "userfaultfd", "name_to_handle_at", "personality", "inotify_init1", "mq_open"),
}


def seccomp_probe_program(probes) -> str:
    """A program trying each probe, printing `denied <probe> <errno>` or `ESCAPED <probe>`."""
    return SECCOMP_PRELUDE + "".join(f"attempt({name!r}, lambda: {SECCOMP_PROBES[name][0]})\n" for name in probes)


# what run_untrusted must report for each, and what must not appear in its output
EXPECTED = {
    "fork_bomb": {"timeout"}, "infinite_loop": {"timeout"}, "memory_bomb": {"error"},
    "fork_memory_bomb": {"timeout", "error"}, "daemonised_busy_child": {"ok"}, "write_outside_workdir": {"ok"},
    "delete_outside_workdir": {"ok"}, "read_secrets": {"ok"}, "socket_loopback": {"ok"}, "socket_external": {"ok"},
    "kill_parent": {"ok"}, "huge_output": {"error"}, "sigterm_ignored_sleep": {"timeout"},
    "raise_rlimit": {"error"}, "fill_dev_shm": {"error"}, "fill_disk_in_workdir": {"error"},
    "escape_namespaces": {"ok"}, "escape_sockets": {"ok"}, "escape_kernel_interfaces": {"ok"},
}
FORBIDDEN_OUTPUT = ("WROTE", "DELETED", "READ", "CONNECTED", SECRET, "do not touch", "[tool.", "ESCAPED")
