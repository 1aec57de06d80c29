"""bench/gpu_smoke.py: its CPU-side pieces (model/data building, the summary against targets). Running it needs a GPU."""

from datetime import datetime
from pathlib import Path

import pytest

pytest.importorskip("verl")


@pytest.fixture(scope="module")
def smoke(bench_script):
    return bench_script("gpu_smoke")


def timing(steps, **extra):
    return [{"step": i + 1, "timing_s": {"step": s, **extra}, "log_prob_gaps": None}
            for i, s in enumerate(steps)]


def test_summary_checks_targets(smoke):
    results = {"srt": {"steps": timing([50.0, 10.0, 10.0, 10.0])},
               "mgrpo": {"steps": timing([60.0, 10.4, 10.5, 10.6], mgrpo_ema=0.05, mgrpo_momentum_swap=3.0,
                                          update_weights=2.0)}}
    summary = smoke.summarise(results, warmup=1)
    assert summary["step_s"] == {"srt": 10.0, "mgrpo": 10.5}
    assert summary["mgrpo_over_srt_step"] == pytest.approx(1.05)
    assert summary["ema_fraction_of_step"] == pytest.approx(0.05 / 10.5)
    assert summary["swap_over_sync"] == pytest.approx(1.5)
    assert summary["checks"] == {"mgrpo_over_srt_step": True, "ema_fraction_of_step": True, "swap_over_sync": True}
    slow = {"srt": results["srt"], "mgrpo": {"steps": timing([1, 12.0, 12.0], mgrpo_ema=0.5,
                                                              mgrpo_momentum_swap=5.0, update_weights=2.0)}}
    assert smoke.summarise(slow, warmup=1)["checks"] == {"mgrpo_over_srt_step": False,
                                                         "ema_fraction_of_step": False, "swap_over_sync": False}


def test_summary_lists_log_prob_gaps_per_step_for_momentum_methods(smoke):
    rows = timing([5.0, 5.0, 5.0])
    for row, kl in zip(rows, [0.001, 0.02, 0.05]):
        row["log_prob_gaps"] = {"momentum_kl_to_policy": kl, "policy_rollout_mismatch": 0.003}
    rows[1]["log_prob_gaps"] = None  # a step without the comparison (calculate_log_probs off)
    summary = smoke.summarise({"srt": {"steps": timing([4.0, 4.0, 4.0])}, "mgrpo": {"steps": rows}}, warmup=1)
    assert summary["log_prob_gaps"] == {"mgrpo": {"momentum_kl_to_policy": [0.001, None, 0.05],
                                                  "policy_rollout_mismatch": [0.003, None, 0.003]}}
    rows[2]["momentum_failed_groups"] = 1  # written per step by the trainer since failed groups are tolerated
    summary = smoke.summarise({"mgrpo": {"steps": rows}}, warmup=1)
    assert summary["momentum_failed_groups"] == {"mgrpo": [None, None, 1]}


def test_tiny_model_writes_answers_that_the_vote_can_score(smoke, tmp_path):
    """The smoke's model, loaded as verl and vLLM load it (Auto classes), keeps the prompt's spaces and newlines, and
    its rollouts at the smoke's temperature carry ``\\boxed{}`` answers that disagree within a prompt: SRT's vote
    then gives some rollouts reward 1, so the policy gets a non-zero advantage and moves (with a random model every
    answer is None and every advantage 0). Fewer warm-start steps than the GPU run takes, to keep the test short."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from mgrpo.core import get_method, score_group
    from mgrpo.verl_backend.data import SYSTEM_PROMPT
    from mgrpo.verl_backend.reward import extract_answer

    data = smoke.build_data(tmp_path / "data")
    assert (data / "train.parquet").is_file() and (data / "test.parquet").is_file()
    model_dir = smoke.build_tiny_model(tmp_path / "model", data, warm_start_steps=60)
    assert AutoConfig.from_pretrained(model_dir).num_hidden_layers == 2
    tok = AutoTokenizer.from_pretrained(model_dir)
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is 1 + 2?"}], tokenize=False,
                                     add_generation_prompt=True)
    assert prompt == "user: What is 1 + 2?\nassistant: "
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == prompt and tok.unk_token_id not in ids

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    torch.manual_seed(0)
    answers, advantaged = [], 0
    for a, b in ((1, 1), (3, 2), (7, 4), (12, 3)):
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": f"What is {a} + {b}?"}]
        ids = tok(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
                  add_special_tokens=False, return_tensors="pt")["input_ids"]
        out = model.generate(ids.repeat(8, 1), do_sample=True, temperature=1.1, top_k=0, top_p=1.0, max_new_tokens=64,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        group = [extract_answer(t) for t in tok.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)]
        answers += group
        advantaged += bool(abs(score_group(get_method("srt"), group).advantages).max() > 0)
    assert sum(a is not None for a in answers) >= 0.9 * len(answers)
    assert advantaged >= 3


def test_refuses_without_gpu(smoke, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the script would really run")
    assert smoke.main(["--out", str(tmp_path / "r.json")]) == 2


@pytest.mark.parametrize("method", ["srt", "mgrpo", "mgrpo_iqr", "intuitor"])
def test_smoke_arguments_pass_every_check_before_ray(smoke, tmp_path, method):
    """Each method's `mgrpo train` arguments, parsed by the real CLI, compose with verl's config and pass verl's own
    validation on one GPU: a bad key or batch arithmetic would otherwise surface only on the GPU host."""
    pytest.importorskip("hydra")
    from mgrpo.cli import build_parser, train_spec
    from mgrpo.verl_backend import trainer

    data = smoke.build_data(tmp_path / "data")
    model = smoke.build_tiny_model(tmp_path / "model", data, warm_start_steps=0)
    args = build_parser().parse_args(smoke.train_argv(method, model, data, tmp_path / "runs", steps=3))
    _, settings, config = trainer.validate_spec(train_spec(args))
    assert config.trainer.n_gpus_per_node == 1 and config.actor_rollout_ref.rollout.n == 8
    assert config.actor_rollout_ref.rollout.enforce_eager is True
    assert config.actor_rollout_ref.rollout.agent.num_workers == 2
    assert config.mgrpo.momentum_rollouts == (2 if method.startswith("mgrpo") else 0)
    # the momentum check: rollout log-probs on, a learning rate that moves the tiny model, a frozen momentum model
    assert config.actor_rollout_ref.rollout.calculate_log_probs is True
    assert config.actor_rollout_ref.actor.optim.lr == pytest.approx(smoke.LR)
    assert config.mgrpo.momentum == (1.0 if method.startswith("mgrpo") else pytest.approx(0.99))
    assert settings.steps == 3


def test_preflight_names_each_module_that_does_not_import(smoke):
    failures = smoke.preflight(["json", "mgrpo_no_such_module", "mgrpo.core"])
    assert len(failures) == 1
    assert failures[0].startswith("mgrpo_no_such_module: ModuleNotFoundError") and "mgrpo_no_such_module" in failures[0]


@pytest.mark.parametrize("flags, message", [
    (["--methods", "srt,no_such_method"], "unknown method 'no_such_method'; registered methods: "),
    (["--steps", "0"], "--gpus, --steps and --timeout must be >= 1 (got 1, 0, 1800)"),
    (["--gpus", "0"], "--gpus, --steps and --timeout must be >= 1 (got 0, 6, 1800)"),
    (["--timeout", "-1"], "--gpus, --steps and --timeout must be >= 1 (got 1, 6, -1)"),
    (["--warmup", "10", "--steps", "5"], "--warmup must be in [0, --steps) to leave a step for the medians "
                                         "(got 10 of 5)"),
])
def test_bad_arguments_are_refused_before_anything_runs(smoke, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_:
        smoke.main([*flags, "--out", str(tmp_path / "r.json"), "--root", str(tmp_path)])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "model").exists()


def test_summary_says_whether_the_policy_moved_and_splits_generation(smoke):
    def run(norms, gen, momentum_gen=None):
        extra = {} if momentum_gen is None else {"mgrpo_momentum_gen": momentum_gen}
        return {"steps": timing([5.0, 5.0, 5.0], gen=gen, **extra),
                "metrics": [{"step": 0, "grad_norm": None}] + [{"step": i + 1, "grad_norm": n}
                                                               for i, n in enumerate(norms)]}

    summary = smoke.summarise({"srt": run([0.3, 0.2, 0.1], gen=2.0), "mgrpo": run([0.3, 0.0, 0.1], 2.5, 1.5),
                               "mgrpo_iqr": {"steps": [], "metrics": [{"step": 0, "grad_norm": None}]}}, warmup=1)
    assert summary["policy_moved"] == {"srt": True, "mgrpo": False, "mgrpo_iqr": None}  # step 0 is validation
    assert summary["gen_s"] == {"srt": 2.0, "mgrpo": 2.5, "mgrpo_iqr": None}
    assert summary["momentum_gen_s"] == {"mgrpo": 1.5, "mgrpo_iqr": None}


def test_summary_says_whether_intuitors_self_certainty_reached_the_engine(smoke):
    """Self-certainty KL(U || p) is positive; without the swap the driver would see Shannon entropy - log V <= 0."""
    def run(rewards):
        return {"steps": timing([5.0] * len(rewards)),
                "metrics": [{"step": 0, "reward": None}] + [{"step": i + 1, "reward": r}
                                                            for i, r in enumerate(rewards)]}

    log_v = 4.852  # log 128, the smoke model's vocabulary
    swapped = run([0.9, 1.3, 2.1])
    not_swapped = run([2.4 - log_v, 1.1 - log_v, 0.2 - log_v])  # entropies 2.4, 1.1, 0.2 nats
    summary = smoke.summarise({"srt": run([0.5, 0.5, 0.5]), "intuitor": swapped}, warmup=1)
    assert summary["self_certainty_reached_engine"] == {"intuitor": True}  # only for self-certainty methods
    assert smoke.summarise({"intuitor": not_swapped}, warmup=1)["self_certainty_reached_engine"] == {
        "intuitor": False}
    assert smoke.summarise({"intuitor": run([])}, warmup=1)["self_certainty_reached_engine"] == {"intuitor": None}


def test_a_run_leaves_no_process_behind(smoke, tmp_path):
    """Ray and vLLM start processes of their own; a timed-out (or finished) run's whole session is killed."""
    import os
    import subprocess
    import time

    pid_file = tmp_path / "grandchild.pid"
    proc = subprocess.Popen(["bash", "-c", f"sleep 300 & echo $! > {pid_file}; wait"], start_new_session=True)
    while not pid_file.is_file() or not pid_file.read_text().strip():
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    smoke.kill_session(proc, grace_s=2.0)
    assert proc.poll() is not None
    for _ in range(50):  # the grandchild is reaped by init, not by us: give it a moment
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        stat = Path(f"/proc/{grandchild}/stat")
        if stat.is_file() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":  # dead, not yet reaped
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"process {grandchild} of the killed session is still alive")


def test_split_placement_summary_reads_the_swap_off_the_sync(smoke):
    # split: the EMA leaves inside M-GRPO's end-of-step sync (3.5 s), SRT's sync is the policy alone (2.0 s)
    results = {"srt": {"steps": timing([9.0, 10.0, 10.0], update_weights=2.0)},
               "mgrpo": {"steps": timing([9.0, 10.2, 10.2], update_weights=3.5, mgrpo_ema=0.02,
                                          mgrpo_momentum_wait=0.4)}}
    summary = smoke.summarise(results, warmup=1, placement="split")
    assert (summary["swap_s"], summary["sync_s"]) == (pytest.approx(1.5), 2.0)
    assert summary["swap_over_sync"] == pytest.approx(0.75) and summary["checks"]["swap_over_sync"] is True
    assert summary["momentum_wait_s"] == {"mgrpo": 0.4}
    assert smoke.summarise(results, warmup=1)["swap_s"] is None  # serial reads mgrpo_momentum_swap: none here


def test_split_smoke_arguments_compose_on_four_gpus(smoke, tmp_path):
    """On 4 GPUs the smoke's G = 8, N = 2 gives k = 1 momentum replica; SRT runs as always (no momentum)."""
    pytest.importorskip("hydra")
    from mgrpo.cli import build_parser, train_spec
    from mgrpo.verl_backend import trainer

    data = smoke.build_data(tmp_path / "data")
    model = smoke.build_tiny_model(tmp_path / "model", data, warm_start_steps=0)
    for method, placement in (("mgrpo", "split"), ("srt", "serial")):
        argv = smoke.train_argv(method, model, data, tmp_path / "runs", steps=3, gpus=4, placement="split")
        _, settings, config = trainer.validate_spec(train_spec(build_parser().parse_args(argv)))
        assert config.trainer.n_gpus_per_node == 4 and settings.momentum_placement == placement
    with pytest.raises(SystemExit):
        smoke.main(["--gpus", "2", "--placement", "split", "--out", str(tmp_path / "r.json")])


def stub_device(smoke, monkeypatch, run_method):
    """main() as on a GPU host whose preflight passes, with no data or model built and ``run_method`` instead of
    the real runs."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "fake GPU")
    monkeypatch.setattr(smoke, "preflight", lambda: [])
    monkeypatch.setattr(smoke, "build_data", lambda directory: directory)
    monkeypatch.setattr(smoke, "build_tiny_model", lambda directory, data: directory)
    monkeypatch.setattr(smoke, "run_method", run_method)


def test_stops_after_a_failed_method_and_keeps_to_the_budget(smoke, tmp_path, monkeypatch):
    """Device time is scarce: after a failure the next method (most likely failing the same way) is not started
    unless --keep-going, and each method's timeout is cut to what is left of --budget-s."""
    import json


    calls = []

    def fake_run(method, model, data, root, steps, timeout_s, gpus, placement):
        calls.append((method, timeout_s))
        return {"method": method, "returncode": 1 if method == "srt" else 0, "wall_s": 1.0, "steps": [],
                "metrics": [], "run_dir_complete": method != "srt"}

    stub_device(smoke, monkeypatch, fake_run)
    common = ["--out", str(tmp_path / "r.json"), "--root", str(tmp_path), "--timeout", "300"]

    assert smoke.main(["--methods", "mgrpo,srt,intuitor", *common]) == 1
    assert [m for m, _ in calls] == ["mgrpo", "srt"]  # intuitor not started after srt failed
    assert json.loads((tmp_path / "r.json").read_text())["runs"].keys() == {"mgrpo", "srt"}

    calls.clear()
    assert smoke.main(["--methods", "srt,intuitor", "--keep-going", *common]) == 1
    assert [m for m, _ in calls] == ["srt", "intuitor"]

    calls.clear()  # 290 s budget: the first method gets 290 - 15 (margin) s at most, not --timeout's 300
    assert smoke.main(["--methods", "mgrpo,intuitor", "--budget-s", "290", *common]) == 0
    assert calls[0][0] == "mgrpo" and 270 <= calls[0][1] <= 275
    calls.clear()  # too little left to reach step 2 (~210 s on the H200): nothing starts, and it is not a success
    assert smoke.main(["--methods", "mgrpo", "--budget-s", "225", *common]) == 1
    assert calls == []


def test_startup_milestones_read_off_the_h200_log(smoke):
    """The seconds from launch to each start-up milestone, from the log of the H200 run of 2026-12-04 (timestamps
    read off by hand: Ray up 17:29:45.852, data 17:30:29.472, actor 17:30:54.753, vLLM servers 17:32:28.063, fit
    17:32:28.179), taking the launch as 17:29:19.000 local time."""
    log = Path(__file__).resolve().parents[1] / "docs/gpu/2026-12-04-h200-steps/train-mgrpo.log"
    launched = datetime(2026, 12, 4, 17, 29, 19).timestamp()
    assert smoke.startup_milestones(log.read_text(), launched) == {
        "ray_started": 26.9, "data_ready": 70.5, "actor_ready": 95.8, "rollout_ready": 189.1, "ready_to_fit": 189.2}


def test_startup_milestones_absent_or_without_a_timestamp_are_none(smoke):
    log = ("INFO:2026-12-04 10:00:05,500:train and validate dataloader initialized, train dataset size: 64\n"
           "actor and ref model engine initialized\n"  # no timestamp on the line: not a measurement
           "INFO:2026-12-04 10:00:09,000:train and validate dataloader initialized\n")  # only the first counts
    found = smoke.startup_milestones(log, datetime(2026, 12, 4, 10, 0, 0).timestamp())
    assert found == {"ray_started": None, "data_ready": 5.5, "actor_ready": None, "rollout_ready": None,
                     "ready_to_fit": None}


def test_sigterm_kills_the_running_method_and_keeps_its_steps(smoke, tmp_path, monkeypatch):
    """The runbook's `timeout -k 5` (or the call's own limit) SIGTERMs the script: the running method's session (Ray,
    vLLM: processes of their own session, which the device machine lets run on and hold the GPU into the next call)
    is killed within the 5 s before SIGKILL, and the steps it recorded are returned, as 'stopped'."""
    import os
    import signal
    import sys
    import threading
    import time

    pid_file = tmp_path / "grandchild.pid"
    # stands in for `python -m mgrpo train ...`: a step every 0.2 s, a grandchild, and SIGTERM ignored (as a busy Ray
    # or vLLM process may), so only the SIGKILL after the grace ends the session
    fake = tmp_path / "fake_python"
    fake.write_text("#!/bin/bash\ntrap '' TERM\nwork=''; prev=''\nfor a in \"$@\"; do [ \"$prev\" = --work ] && work=$a; "
                    "prev=$a; "
                    f"done\nmkdir -p $work; sleep 300 & echo $! > {pid_file}\n"
                    "i=1; while true; do echo \"{\\\"step\\\": $i, \\\"timing_s\\\": {\\\"step\\\": 1.0}}\" "
                    ">> $work/verl_steps.jsonl; i=$((i+1)); sleep 0.2; done\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    graces, kill_session = [], smoke.kill_session  # the real kill, its grace recorded instead of timed

    def recording_kill(proc, grace_s=10.0):
        graces.append(grace_s)
        kill_session(proc, grace_s)

    monkeypatch.setattr(smoke, "kill_session", recording_kill)
    previous = signal.signal(signal.SIGTERM, smoke._stop)
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        result = smoke.run_method("srt", tmp_path / "model", tmp_path / "data", tmp_path, 3, timeout_s=120)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert result["returncode"] == "stopped" and result["steps"]
    # inside the 5 s of `timeout -k 5`: the grace, then kill_session's 1 s for the session's other processes
    assert len(graces) == 1 and graces[0] + 1.0 < 5.0
    grandchild = int(pid_file.read_text())
    for _ in range(50):
        stat = Path(f"/proc/{grandchild}/stat")
        if not stat.is_file() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"process {grandchild} of the stopped method's session is still alive")


def test_a_stopped_method_ends_the_script_even_with_keep_going(smoke, tmp_path, monkeypatch):
    import json


    calls = []

    def fake_run(method, model, data, root, steps, timeout_s, gpus, placement):
        calls.append(method)
        return {"method": method, "returncode": "stopped", "wall_s": 1.0, "steps": [{"step": 1}], "metrics": [],
                "run_dir_complete": False}

    stub_device(smoke, monkeypatch, fake_run)
    assert smoke.main(["--methods", "srt,mgrpo", "--keep-going", "--out", str(tmp_path / "r.json"),
                       "--root", str(tmp_path)]) == 1
    assert calls == ["srt"]
    assert json.loads((tmp_path / "r.json").read_text())["runs"]["srt"]["returncode"] == "stopped"
