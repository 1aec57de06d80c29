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
    }


# what run_untrusted must report for each, and what must not appear in its output
EXPECTED = {
    "fork_bomb": {"timeout"}, "infinite_loop": {"timeout"}, "memory_bomb": {"error"},
    "fork_memory_bomb": {"timeout", "error"}, "daemonised_busy_child": {"ok"}, "write_outside_workdir": {"ok"},
    "delete_outside_workdir": {"ok"}, "read_secrets": {"ok"}, "socket_loopback": {"ok"}, "socket_external": {"ok"},
    "kill_parent": {"ok"}, "huge_output": {"error"}, "sigterm_ignored_sleep": {"timeout"},
    "raise_rlimit": {"error"}, "fill_dev_shm": {"error"}, "fill_disk_in_workdir": {"error"},
}
FORBIDDEN_OUTPUT = ("WROTE", "DELETED", "READ", "CONNECTED", SECRET, "do not touch", "[tool.")
