"""GPU smoke test of the verl backend: a few steps of each method on a tiny model.

Run on an H200 on 2026-12-04: M-GRPO ran 5 steps to the end (docs/gpu/2026-12-04-h200-steps/); SRT, M-GRPO+IQR and
Intuitor have not run on a GPU yet. Run it on one CUDA GPU with the GPU environment
(``pip install 'verl[vllm]==0.9.1' TransferQueue==0.1.11`` and this package; on a host without a package index,
carry the stack with bench/offline_wheelhouse.py, see docs/verl_backend.md):

    python bench/gpu_smoke.py --out gpu_smoke.json [--steps 6] [--methods srt,mgrpo,mgrpo_iqr,intuitor]
                              [--budget-s SECONDS] [--keep-going]
                              [--gpus 4 --placement split]

For each method it runs ``mgrpo train --backend verl`` (one GPU, G = 8, N = 2 for momentum methods, short prompts
and responses) in its own process, then reads the per-step record the trainer writes (``WORK/verl_steps.jsonl``:
verl's ``timing_raw`` in seconds, and the rollout-vs-actor log-prob gaps) and reports, over the steps after the
warm-up ones:

* step time per method (``timing_s/step``), and the ratio M-GRPO / SRT      (target <= 1.05);
* EMA update time (``mgrpo_ema``) as a fraction of the M-GRPO step           (target <= 1 %);
* momentum weight swap (``mgrpo_momentum_swap``: EMA pushed into the rollout engine through verl's
  update_weights) vs. the policy weight sync (``update_weights``)           (target <= 2x);
* the policy's generation (``gen``) and the momentum rollouts' second round (``mgrpo_momentum_gen``), and, per step
  from ``WORK/metrics.jsonl``, reward, agreement, grad norm and KL, with ``policy_moved``: a positive grad norm at
  every step. The model is warm-started to answer in ``\\boxed{}`` with random digits (``warm_start``): a random
  model's answers would all be None, every advantage 0, and the policy would not move; and, for Intuitor,
  ``self_certainty_reached_engine``: a positive reward at every step (KL(U || p) > 0; without the worker's swap
  of the engine's entropy function the reward would be Shannon entropy - log V <= 0).

And, per step of each momentum method, whether vLLM generated with the weights it should have: the momentum model
is frozen at the initial weights (m = 1; the EMA update does the same work at any m) and the learning rate is high
enough to move the tiny model in a few steps, so ``momentum_kl_to_policy`` (the momentum rows' rollout log-probs
minus the actor's: KL(initial || policy) on the initial model's samples) should start near 0 and grow, while
``policy_rollout_mismatch`` (policy rows, both engines holding the policy) stays at the numerical floor. Near 0 at
every step: the push did not reach vLLM; a growing policy mismatch: the policy's weights were not restored.

``--placement split`` (momentum rollouts on k = R N / G of the R rollout replicas, at the same time as the policy's;
needs ``--gpus`` a multiple of 4 here, G = 8 and N = 2) has no swap and no second round: the momentum replicas get
the EMA inside the end-of-step sync, so the swap is read as M-GRPO's ``update_weights`` minus SRT's, and the wait
for the momentum replicas after the policy's rollouts as ``mgrpo_momentum_wait`` (part of ``gen``).

A tiny model makes the rollout short, so the fixed costs (weight sync, EMA) weigh more than they do for a 4B
model: a miss here is a warning sign, not proof of a miss at scale. Writes JSON after every method (a run cut
short keeps what it measured) and prints the summary.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from mgrpo.core import UnknownMethodError, get_method  # noqa: E402  (light: no verl, ray or vLLM import)
from mgrpo.jsonl import read_log  # noqa: E402
from mgrpo.verl_backend.metrics import STEPS_FILE  # noqa: E402
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant: {% endif %}")
TARGETS = {"mgrpo_over_srt_step": 1.05, "ema_fraction_of_step": 0.01, "swap_over_sync": 2.0}
# Per step, from WORK/metrics.jsonl: whether the policy had something to learn from and moved.
LEARNING_KEYS = ("step", "reward", "agreement", "grad_norm", "kl")
LR = 1e-3  # the paper's 1e-6 would leave a tiny model where it started, and the momentum check blind
WARM_START_STEPS = 150
BUDGET_MARGIN_S = 15  # of --budget-s, kept to stop a method's processes and write the JSON
# Less cannot reach step 2, the first the medians use with --warmup 1 (2026-12-04, H200: ~190 s to "ready to fit",
# then ~8 s for step 1 and ~4 s a step): device time spent for no number.
MIN_METHOD_S = 215
# Imported before any run (seconds), so a missing package is named at once rather than after Ray and vLLM start.
PREFLIGHT_MODULES = ("vllm.v1.engine.async_llm", "vllm.entrypoints.openai.api_server",
                     "verl.workers.rollout.vllm_rollout.vllm_async_server", "verl.trainer.main_ppo",
                     "mgrpo.verl_backend.verl_trainer")
# Where a run's ~200 s before its first step go (2026-12-04, H200): the first line of Ray's and verl's own log
# that marks each milestone, in the order they come.
STARTUP_MARKERS = {"ray_started": "Started a local Ray instance",
                   "data_ready": "train and validate dataloader initialized",
                   "actor_ready": "actor and ref model engine initialized",
                   "rollout_ready": "checkpoint engine manager initialized",
                   "ready_to_fit": "all initialize finished, ready to fit"}
LOG_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})[,.](\d{3})")
# On SIGTERM (the runbook's `timeout -k 5`, or the call's own limit) the running method's session gets this long
# after its SIGTERM, before SIGKILL: the caller's SIGKILL follows its SIGTERM after 5 s.
STOP_GRACE_S = 2.0


class Stopped(Exception):
    """SIGTERM reached the script (run as a script, it installs the handler): the running method's session is
    killed, what it recorded is kept, and no further method starts."""


def _stop(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second SIGTERM must not cut the cleanup short
    raise Stopped


_PREFLIGHT = """
import importlib, sys
for module in sys.argv[1:]:
    try:
        importlib.import_module(module)
    except BaseException as err:  # a module raising SystemExit on import counts too
        print(f"{module}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}", flush=True)
"""


def preflight(modules=PREFLIGHT_MODULES) -> list[str]:
    """``module: error`` for each module that does not import, all in one fresh interpreter as the runs import them
    (one interpreter: vLLM and torch load once, not once a module, which took minutes on the device machine)."""
    proc = subprocess.run([sys.executable, "-c", _PREFLIGHT, *modules], cwd=REPO, capture_output=True, text=True)
    failures = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0:  # the interpreter itself died (a crash in a compiled extension, say)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        failures.append(f"preflight interpreter: exit {proc.returncode}: {lines[-1] if lines else ''}")
    return failures


def build_tiny_model(directory: Path, data: Path, warm_start_steps: int = WARM_START_STEPS) -> Path:
    """A small Llama-architecture model (vLLM supports it) with a character tokenizer, warm-started on the smoke's
    training prompts (``warm_start``) so that its rollouts carry answers that can be voted on.

    Llama, not Qwen2: for a ``qwen2`` config, transformers 5's AutoTokenizer (which verl and vLLM load it with)
    replaces the saved tokenizer's pipeline by Qwen2Tokenizer's, which drops every space and newline of this
    vocabulary. The warm start uses the tokenizer as loaded back from ``directory``, as verl and vLLM will."""
    import string

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from mgrpo.toy.model import build_tokenizer

    saved = build_tokenizer(characters=string.printable)
    saved.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(vocab_size=((len(saved) + 63) // 64) * 64, hidden_size=256, intermediate_size=512,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, bos_token_id=saved.bos_token_id,
                         eos_token_id=saved.eos_token_id, pad_token_id=saved.pad_token_id, tie_word_embeddings=False)
    directory.mkdir(parents=True, exist_ok=True)
    saved.save_pretrained(directory)
    config.save_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    warm_start(model, tokenizer, data, warm_start_steps)
    model.to(torch.bfloat16).save_pretrained(directory)
    return directory


def warm_start(model, tokenizer, data: Path, steps: int, batch_size: int = 32) -> None:
    """Teach the model the answer format, ``\\boxed{d}`` then end of sequence, after each training prompt as verl
    renders it (chat template, no special tokens added), with a digit d drawn at random for each example.

    A random model never writes ``\\boxed{}``: every answer would be None, no prompt would get a label, every
    reward and advantage would be 0, and the policy would not move (the KL term's gradient is 0 while the policy is
    the reference), leaving the per-step checks with nothing to show. With random digits the rollouts disagree, so
    the vote gives some of them reward 1 and GRPO a non-zero advantage."""
    import pandas as pd
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    prompts = [tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
               for messages in pd.read_parquet(data / "train.parquet")["prompt"]]
    generator = torch.Generator().manual_seed(0)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        picks = torch.randint(len(prompts), (batch_size,), generator=generator).tolist()
        digits = torch.randint(10, (batch_size,), generator=generator).tolist()
        seqs, labels = [], []
        for i, d in zip(picks, digits):
            prompt = tokenizer(prompts[i], add_special_tokens=False)["input_ids"]
            target = tokenizer(f"\\boxed{{{d}}}", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            seqs.append(prompt + target)
            labels.append([-100] * len(prompt) + target)
        width = max(map(len, seqs))
        ids = torch.full((batch_size, width), tokenizer.pad_token_id)
        lab = torch.full((batch_size, width), -100)
        for row, (seq, label) in enumerate(zip(seqs, labels)):
            ids[row, :len(seq)], lab[row, :len(label)] = torch.tensor(seq), torch.tensor(label)
        loss = model(input_ids=ids.to(device), labels=lab.to(device)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval().cpu()


def build_data(directory: Path) -> Path:
    from mgrpo.verl_backend.data import prepare

    source = directory / "source"
    source.mkdir(parents=True, exist_ok=True)
    rows = [{"problem": f"What is {a} + {b}?", "solution": f"\\boxed{{{a + b}}}"}
            for a in range(1, 20) for b in range(1, 5)]
    for split, part in (("train", rows[:64]), ("test", rows[64:])):
        (source / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    prepare(source, directory / "prepared")
    return directory / "prepared"


def train_argv(method: str, model: Path, data: Path, root: Path, steps: int, gpus: int = 1,
               placement: str = "serial") -> list[str]:
    """``mgrpo train`` arguments for one method: ``gpus`` GPUs, G = 8 (N = 2 for momentum methods, generated with
    ``placement``), prompts up to 128
    tokens (the smoke's are ~111 character tokens with the system prompt; verl drops longer ones, so a shorter limit
    leaves no training data), 64-token responses, and vLLM in eager mode (no CUDA-graph capture or compilation at
    each engine start: the smoke is about the method's extra work per step, and every method decodes the same way).
    Every method: learning rate LR and rollout log-probs; momentum methods: m = 1 (see the module's docstring)."""
    G, N = 8, (2 if get_method(method).momentum else 0)
    settings = {
        "actor_rollout_ref.actor.optim.lr": LR, "actor_rollout_ref.rollout.calculate_log_probs": "true",
        "steps": steps, "n_gpus_per_node": gpus, "save_every": steps, "eval_every": steps, "wandb": "false",
        "ray_num_cpus": os.cpu_count() or 8,
        "data.train_batch_size": 8, "data.max_prompt_length": 128, "data.max_response_length": 64,
        "actor_rollout_ref.actor.ppo_mini_batch_size": 8,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": 16,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": 16,
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": 16,
        "actor_rollout_ref.rollout.gpu_memory_utilization": 0.3,
        "actor_rollout_ref.rollout.enforce_eager": "true",
        "actor_rollout_ref.rollout.agent.num_workers": 2,  # fewer Ray actors to start than verl's 8
        "actor_rollout_ref.model.enable_gradient_checkpointing": "false",
        "actor_rollout_ref.rollout.val_kwargs.n": 1,
        "reward.num_workers": 2,
    }
    if N:
        settings["momentum_placement"] = placement
    argv = ["train", "--backend", "verl", "--method", method, "--base-model", str(model), "--data", str(data),
            "--out", str(root / method / "run"), "--work", str(root / method / "work"),
            "--G", str(G), "--T", "1.1", "--N", str(N), "--seed", "0"] + (["--momentum", "1.0"] if N else [])
    for key, value in settings.items():
        argv += ["--set", f"{key}={value}"]
    return argv


def run_method(method: str, model: Path, data: Path, root: Path, steps: int, timeout_s: int, gpus: int = 1,
               placement: str = "serial") -> dict:
    work, out = root / method / "work", root / method / "run"
    shutil.rmtree(root / method, ignore_errors=True)  # a fresh run each time: a kept WORK dir would be resumed
    cmd = [sys.executable, "-m", "mgrpo", *train_argv(method, model, data, root, steps, gpus, placement)]
    started, launched_at = time.perf_counter(), time.time()
    log = root / method / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        # A session of its own, killed whole afterwards: Ray's and vLLM's processes must not outlive a run (a
        # timed-out one above all) and hold GPU memory into the next method's.
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        grace_s = 10.0
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            returncode = "timeout"
        except Stopped:  # the caller's time is up: Ray's and vLLM's processes (a session of their own) would
            returncode, grace_s = "stopped", STOP_GRACE_S  # otherwise outlive this script and hold the GPU
        finally:
            kill_session(proc, grace_s)
    result = {"method": method, "returncode": returncode, "wall_s": time.perf_counter() - started,
              "log": str(log), "steps": read_log(work / STEPS_FILE),
              "startup_s": startup_milestones(log.read_text(errors="replace"), launched_at),
              "metrics": [{key: row.get(key) for key in LEARNING_KEYS} for row in read_log(work / "metrics.jsonl")]}
    result["run_dir_complete"] = all((out / name).exists() for name in ("final", "best", "metrics.jsonl", "run.json"))
    if returncode != 0:  # the reason, in the JSON and the output's tail (all a remote caller may see)
        result["log_tail"] = log.read_text(errors="replace").splitlines()[-60:]
        print("\n".join(result["log_tail"][-40:]), flush=True)
    return result


def startup_milestones(log_text: str, launched_at: float) -> dict:
    """Seconds from ``launched_at`` (``time.time()`` when the run started) to each ``STARTUP_MARKERS`` line of the
    run's log, read from the line's timestamp (local time, as Ray and verl's logger write it); None where absent."""
    found = dict.fromkeys(STARTUP_MARKERS)
    for line in log_text.splitlines():
        for name, marker in STARTUP_MARKERS.items():
            stamp = LOG_TIMESTAMP.search(line) if found[name] is None and marker in line else None
            if stamp:
                at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(stamp.group(2)) / 1e3
                found[name] = round(at - launched_at, 1)
    return found


def kill_session(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM to every process of ``proc``'s session, SIGKILL to what is left after ``grace_s``."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGTERM:
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
            time.sleep(1.0)  # the session's other processes get the same grace


def median_after_warmup(rows: list[dict], key: str, warmup: int) -> float | None:
    values = [row["timing_s"][key] for row in rows[warmup:] if key in row.get("timing_s", {})]
    return statistics.median(values) if values else None


def log_prob_gaps_by_step(rows: list[dict]) -> dict:
    """Per step, the trainer's rollout-vs-actor log-prob gaps (module docstring): {name: [value per step]}."""
    names = ("momentum_kl_to_policy", "policy_rollout_mismatch")
    return {name: [(row.get("log_prob_gaps") or {}).get(name) for row in rows] for name in names}


def policy_moved(rows: list[dict]) -> bool | None:
    """Every training step (step 0 is validation) had a positive grad norm; None without training rows."""
    norms = [row.get("grad_norm") for row in rows if row.get("step")]
    return all(n is not None and n > 0 for n in norms) if norms else None


def self_certainty_reached_the_engine(rows: list[dict]) -> bool | None:
    """Every training step's mean reward is positive. Intuitor's reward is KL(U || p) > 0 for any non-uniform p;
    had the worker's swap of the engine's entropy function not taken, the driver would read Shannon entropy
    minus log V, which is <= 0. None without training rows."""
    rewards = [row.get("reward") for row in rows if row.get("step")]
    return all(r is not None and r > 0 for r in rewards) if rewards else None


def summarise(results: dict, warmup: int, placement: str = "serial") -> dict:
    step = {m: median_after_warmup(r["steps"], "step", warmup) for m, r in results.items()}
    summary = {"step_s": step}
    if step.get("mgrpo") and step.get("srt"):
        summary["mgrpo_over_srt_step"] = step["mgrpo"] / step["srt"]
    summary["log_prob_gaps"] = {m: log_prob_gaps_by_step(r["steps"]) for m, r in results.items()
                                if get_method(m).momentum}
    # Generation of the policy's rollouts (verl's "gen") and, after it, of the momentum model's: the second
    # round is the momentum rollouts' main cost in this design (docs/verl_backend.md).
    summary["gen_s"] = {m: median_after_warmup(r["steps"], "gen", warmup) for m, r in results.items()}
    summary["momentum_gen_s"] = {m: median_after_warmup(r["steps"], "mgrpo_momentum_gen", warmup)
                                 for m, r in results.items() if get_method(m).momentum}
    summary["momentum_wait_s"] = {m: median_after_warmup(r["steps"], "mgrpo_momentum_wait", warmup)
                                  for m, r in results.items() if get_method(m).momentum}
    # A step with grad norm 0 taught the policy nothing; the log-prob checks need it to move.
    summary["policy_moved"] = {m: policy_moved(r.get("metrics", [])) for m, r in results.items()}
    summary["self_certainty_reached_engine"] = {m: self_certainty_reached_the_engine(r.get("metrics", []))
                                                for m, r in results.items()
                                                if get_method(m).reward == "self_certainty"}
    # Momentum groups whose session failed (the step went on with the rows it had), per step: should be all 0.
    summary["momentum_failed_groups"] = {m: [row.get("momentum_failed_groups") for row in r["steps"]]
                                         for m, r in results.items() if get_method(m).momentum}
    mg = results.get("mgrpo", {}).get("steps", [])
    ema = median_after_warmup(mg, "mgrpo_ema", warmup)
    if placement == "split":  # the EMA goes out inside the end-of-step sync: the swap is what it adds to SRT's
        sync = median_after_warmup(results.get("srt", {}).get("steps", []), "update_weights", warmup)
        both = median_after_warmup(mg, "update_weights", warmup)
        swap = both - sync if both is not None and sync is not None else None
    else:
        swap = median_after_warmup(mg, "mgrpo_momentum_swap", warmup)
        sync = median_after_warmup(mg, "update_weights", warmup)
    summary.update({"ema_s": ema, "swap_s": swap, "sync_s": sync})
    if ema is not None and step.get("mgrpo"):
        summary["ema_fraction_of_step"] = ema / step["mgrpo"]
    if swap is not None and sync:
        summary["swap_over_sync"] = swap / sync
    summary["checks"] = {name: (summary[name] <= limit if name in summary else None)
                         for name, limit in TARGETS.items()}
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gpu_smoke.json")
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "mgrpo_gpu_smoke",
                        help="scratch directory: model, data, runs (default: under the temp dir, not beside --out, "
                             "so that only the JSON travels back from a remote host)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the medians")
    parser.add_argument("--methods", default="srt,mgrpo,mgrpo_iqr,intuitor", help="in this order (the targets need "
                        "srt and mgrpo, so they come first)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per method")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="wall-clock seconds for the whole script: each method's timeout is cut to what is left "
                             "(less a margin to write the JSON), so a run stopped by the budget still records the "
                             f"steps it made; no method starts with under {MIN_METHOD_S} s left (less cannot "
                             "reach step 2 on the H200)")
    parser.add_argument("--keep-going", action="store_true",
                        help="run the next method after one fails (default: stop, as the next would most likely "
                             "fail the same way and spend the time)")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs per run (one rollout replica each)")
    parser.add_argument("--placement", choices=("serial", "split"), default="serial",
                        help="where the momentum rollouts are generated (docs/verl_backend.md)")
    args = parser.parse_args(argv)
    # every argument is checked here, on any machine: a mistake found on the lent GPU costs its scarce time
    if args.placement == "split" and (args.gpus < 4 or args.gpus % 4):
        parser.error(f"--placement split needs --gpus a multiple of 4 (k = gpus x 2 / 8 replicas; got {args.gpus})")
    if args.gpus < 1 or args.steps < 1 or args.timeout < 1:
        parser.error(f"--gpus, --steps and --timeout must be >= 1 (got {args.gpus}, {args.steps}, {args.timeout})")
    if not 0 <= args.warmup < args.steps:
        parser.error(f"--warmup must be in [0, --steps) to leave a step for the medians (got {args.warmup} of "
                     f"{args.steps})")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        parser.error("--methods names no method")
    try:
        for method in methods:
            get_method(method)
    except UnknownMethodError as err:
        parser.error(str(err))

    started = time.perf_counter()
    import torch

    from mgrpo.atomic import write_json

    def left_s() -> float:
        return math.inf if args.budget_s is None else args.budget_s - (time.perf_counter() - started)

    def phase(name: str) -> None:  # where the time goes, for the next run's plan (device time is scarce)
        print(f"[{time.perf_counter() - started:6.1f}s] {name}", flush=True)

    if not torch.cuda.is_available():
        print("gpu_smoke: no CUDA GPU visible; nothing run", file=sys.stderr)
        return 2
    phase("preflight")
    failures = preflight()
    if failures:
        print("gpu_smoke: the GPU stack does not import; nothing run:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 3
    from mgrpo.verl_backend.trainer import resolve_attention

    attention = resolve_attention("auto")  # what every run's default (attn_implementation=auto) takes on this host
    root = args.root
    root.mkdir(parents=True, exist_ok=True)
    phase("data and warm-started model")
    data = build_data(root / "data")
    model = build_tiny_model(root / "model", data)
    results = {}
    for method in methods:
        timeout = min(args.timeout, left_s() - BUDGET_MARGIN_S)
        if timeout < MIN_METHOD_S:
            phase(f"{method}: not run, {left_s():.0f}s of the budget left")
            break
        phase(f"== {method} (timeout {timeout:.0f}s)")
        results[method] = run_method(method, model, data, root, args.steps, int(timeout), args.gpus, args.placement)
        print(f"   rc={results[method]['returncode']} wall={results[method]['wall_s']:.0f}s "
              f"steps recorded={len(results[method]['steps'])} run_dir={results[method]['run_dir_complete']}\n"
              f"   start-up (s after launch): {results[method].get('startup_s')}", flush=True)
        summary = summarise(results, args.warmup, args.placement)
        payload = {"device": torch.cuda.get_device_name(0), "date": time.strftime("%Y-%m-%d"), "steps": args.steps,
                   "warmup": args.warmup, "gpus": args.gpus, "placement": args.placement, "targets": TARGETS,
                   "attn_implementation": attention,
                   "summary": summary, "runs": results}
        write_json(args.out, payload)  # after every method: a run cut short still leaves what it measured
        if results[method]["returncode"] == "stopped":
            phase(f"stopped by SIGTERM during {method}")
            break
        if results[method]["returncode"] != 0 and not args.keep_going:
            phase(f"stopped after {method} failed (--keep-going runs the rest)")
            break
    phase("done")
    if results:
        print(json.dumps(summary, indent=2))
    ok = bool(results) and all(r["returncode"] == 0 and r["run_dir_complete"] for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)  # cut short by the caller's timeout: kill the run's session, write JSON
    try:
        raise SystemExit(main())
    except Stopped:  # outside a method (preflight, warm start): nothing of a run to keep
        print("gpu_smoke: stopped by SIGTERM", file=sys.stderr)
        raise SystemExit(143)
