"""Benchmark (not a test): the supervised worker's per-input overhead (docs/sandbox.md, "Per-input limits").

The supervisor's clock runs from just before it sends an input to when the whole reply is read: that includes
pickling the input, the pipe transfer both ways, the worker's unpickling, plain-data encoding of the output and
JSON (de)serialisation of the reply. Measured here outside the sandbox (same code, prepended as in the drivers):
a call whose function does nothing but return its argument (or 0), against the bare function call.

    python bench/supervisor_overhead.py
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

CODE = Path(__file__).resolve().parents[1] / "mgrpo" / "evaluation" / "code"
namespace = {"__name__": "supervisor_bench"}
exec(compile((CODE / "plain_data.py").read_text() + "\n\n" + (CODE / "_supervisor.py").read_text(), "sup", "exec"),
     namespace)


def serve(receive, reply):
    while True:
        message = receive()
        if message is None:
            return
        value = message["args"][0]
        reply(message, "ok", namespace["encode"](value if message["echo"] else 0))


def main(argv=None):
    # no options; parsed so that --help prints this instead of running the benchmark
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    worker = namespace["fork_worker"](serve)
    rows = []
    for label, value in [("small int", 7), ("list of 10^5 ints", list(range(10**5))),
                         ("list of 10^5 floats", [i / 3 for i in range(10**5)]),
                         ("10^5-char str", "x" * 10**5), ("list of 10^6 ints", list(range(10**6)))]:
        for echo in (False, True):
            times = []
            for _ in range(20):
                start = time.perf_counter()
                kind, out = worker.call({"op": "call", "args": [value], "echo": echo}, 30.0)
                times.append(time.perf_counter() - start)
                assert kind == "ok", (label, echo, kind, out)
            rows.append((label, "echoed back" if echo else "0 only", statistics.median(times), max(times)))
    worker.kill()
    print(f"python {sys.version.split()[0]}; median and max of 20 calls, seconds")
    print("| input | output | median s | max s |\n|---|---|---|---|")
    for label, output, median, worst in rows:
        print(f"| {label} | {output} | {median:.4f} | {worst:.4f} |")


if __name__ == "__main__":
    main()
