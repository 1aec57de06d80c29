"""Benchmark (not a test): run each hostile program of the sandbox tests once and print docs/sandbox.md's table.

The programs are tests/hostile_programs.py's, with the test's limits (5 s wall unless the program sets its own),
a fresh world-writable sentinel directory and a loopback listener of this process. Each row says what
``run_untrusted`` reported, the isolation layers that were active, whether the program printed anything it must
not, and whether the sentinel, the repo listing or the listener were touched.

    sudo python bench/sandbox_hostile.py            # as root: every layer
    python bench/sandbox_hostile.py                 # as a user: a user namespace, no cgroup or private uid
                                                    # (the rlimit fallback where user namespaces are disabled)

Prints a Markdown table, then one JSON line per program.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import socket
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from hostile_programs import EXPECTED, FORBIDDEN_OUTPUT, SECRET, hostile_programs  # noqa: E402

from mgrpo.evaluation.sandbox import isolation_report, run_untrusted  # noqa: E402


def snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(directory.rglob("*"))}


def main(argv=None) -> int:
    # no options; parsed so that --help prints this and runs no hostile program
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    os.environ["MGRPO_TEST_SECRET"] = SECRET
    rows, contained = [], True
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as server:
        sentinel = Path(tmp) / "sentinel"
        sentinel.mkdir()
        (sentinel / "keep.txt").write_text("do not touch")
        os.chmod(sentinel, 0o777)  # world-writable: only the sandbox's own layers can protect it
        os.chmod(sentinel / "keep.txt", 0o666)
        server.bind(("127.0.0.1", 0))
        server.listen(5)
        server.settimeout(0.2)
        before, repo_before = snapshot(sentinel), sorted(os.listdir(ROOT))
        for name, (program, limits) in hostile_programs(sentinel, server.getsockname()[1]).items():
            limits = {"timeout_s": 5, **limits}
            result = run_untrusted(program, **limits)
            leaked = [word for word in FORBIDDEN_OUTPUT if word in result.stdout]
            touched = snapshot(sentinel) != before or sorted(os.listdir(ROOT)) != repo_before
            ok = result.status in EXPECTED[name] and not leaked and not touched
            contained &= ok
            last_err = (result.stderr.strip().splitlines() or [""])[-1][:90]
            rows.append({"program": name, "limits": limits, "status": result.status,
                         "returncode": result.returncode, "wall_s": round(result.wall_s, 1),
                         "stdout_head": result.stdout.strip()[:90], "stderr_last": last_err,
                         "leaked": leaked, "outside_changed": touched, "as_expected": ok,
                         "isolation": list(result.isolation)})
        try:
            server.accept()
            contained = False
            print("the loopback listener got a connection", file=sys.stderr)
        except socket.timeout:
            pass

    print(f"{date.today()}, {platform.platform()}, python {platform.python_version()}, "
          f"uid {os.getuid()}; layers: {', '.join(isolation_report())}\n")
    print("| program | limits | status | returncode | wall s | as expected | last stderr line |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        limits = ", ".join(f"{k}={v}" for k, v in r["limits"].items())
        print(f"| {r['program']} | {limits} | {r['status']} | {r['returncode']} | {r['wall_s']} | "
              f"{'yes' if r['as_expected'] else 'NO'} | {r['stderr_last'].replace('|', '/')} |")
    print()
    for r in rows:
        print(json.dumps(r))
    return 0 if contained else 1


if __name__ == "__main__":
    sys.exit(main())
