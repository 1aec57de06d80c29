"""Supervised pre-training of the tiny toy model on the labelled ``pretrain.jsonl`` split."""
from __future__ import annotations

import platform
import time
from dataclasses import asdict
from pathlib import Path

import torch

from mgrpo.atomic import atomic_dir, check_out_apart, check_replaceable, write_json
from mgrpo.toy.model import build_model, build_tokenizer, count_parameters
from mgrpo.toy.settings import PretrainSettings
from mgrpo.toy.task import ANSWER_MARK, check_generation_budget, read_jsonl, worked_solution

PRETRAIN_MARKERS = ("pretrain.json",)  # what marks a folder as pretrain's own output (which it may replace)


def _batch(tokenizer, rows: list[dict], direct: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``<bos> prompt target <eos>`` with labels only on the target and <eos>.

    The target is the worked solution, or the bare ``#answer`` where ``direct`` is set.
    """
    seqs, labels = [], []
    for row, bare in zip(rows, direct):
        prompt = tokenizer(row["prompt"])["input_ids"]
        text = ANSWER_MARK + str(row["answer"]) if bare else worked_solution(row["prompt"])
        target = tokenizer(text, add_special_tokens=False)["input_ids"]
        target = target + [tokenizer.eos_token_id]
        seqs.append(prompt + target)
        labels.append([-100] * len(prompt) + target)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
    lab = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (s, l) in enumerate(zip(seqs, labels)):
        ids[i, :len(s)] = torch.tensor(s)
        lab[i, :len(l)] = torch.tensor(l)
    return ids, lab


def machine() -> dict:
    """What decides the floating-point results besides the seed: torch picks its CPU kernels by the instruction
    set it finds (``ATEN_CPU_CAPABILITY`` overrides it), so the same seed trains another model on another CPU."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "machine": platform.machine(), "processor": platform.processor() or None}


def pretrain(data_dir: Path, out_dir: Path, seed: int,
             settings: PretrainSettings = PretrainSettings(), log=print) -> dict:
    """Train from scratch, write an HF model dir atomically to ``out_dir``; returns the summary."""
    from mgrpo.cpu.rollout import accuracy
    from mgrpo.run_spec import check_seed

    settings.validate()
    check_seed(seed)
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    check_out_apart(out_dir, **{"data folder": data_dir})
    check_replaceable(out_dir, PRETRAIN_MARKERS)
    rows = read_jsonl(data_dir / "pretrain.jsonl")
    test_rows = read_jsonl(data_dir / "test.jsonl")
    tokenizer = build_tokenizer()
    # A worked solution cut off by the generation budget has no answer: the stopping check and the test could
    # credit only the bare '#d' answers, so the base model would be chosen on the wrong thing.
    check_generation_budget(tokenizer, rows, settings.max_new_tokens, str(data_dir / "pretrain.jsonl"),
                            "--max-new-tokens")
    if len(rows) <= settings.select_rows:
        raise ValueError(f"{data_dir / 'pretrain.jsonl'} has {len(rows)} rows: holding out select_rows="
                         f"{settings.select_rows} for the stopping check leaves none to train on")
    # The held-out rows are the last ones, whether or not a target is set, so that stopping at step S gives
    # the very model that ``max_steps=S`` gives.
    train_rows, select = rows[:-settings.select_rows], rows[-settings.select_rows:]
    torch.set_num_threads(settings.threads)
    started = time.perf_counter()

    model = build_model(tokenizer, settings.size, seed=seed)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, settings.warmup_steps)))
    generator = torch.Generator().manual_seed(seed)
    losses, checks = [], []
    for step in range(1, settings.max_steps + 1):
        picks = torch.randint(len(train_rows), (settings.batch_size,), generator=generator).tolist()
        direct = (torch.rand(settings.batch_size, generator=generator) < settings.direct_fraction).tolist()
        ids, labels = _batch(tokenizer, [train_rows[i] for i in picks], direct)
        loss = model(input_ids=ids, labels=labels).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pretraining loss is {loss.item()} at step {step}")
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == settings.max_steps:
            log(f"pretrain step {step}/{settings.max_steps} loss {sum(losses[-50:]) / len(losses[-50:]):.4f}")
        # the last step is checked too: the model written is the one target_reached speaks of
        if settings.target_acc is not None and (step % settings.check_every == 0 or step == settings.max_steps):
            # Its own generator, fixed per check: checking never moves the training stream.
            acc = accuracy(model, tokenizer, select, temperature=settings.eval_temperature,
                           samples=settings.eval_samples, max_new_tokens=settings.max_new_tokens,
                           generator=torch.Generator().manual_seed(seed + 2))
            checks.append({"step": step, "select_acc": acc})
            if acc >= settings.target_acc:
                log(f"pretrain step {step}: held-out accuracy {acc:.3f} >= target {settings.target_acc}, stopping")
                break
    train_seconds = time.perf_counter() - started
    last = checks[-1]["select_acc"] if checks else None
    reached = settings.target_acc is None or (last is not None and last >= settings.target_acc)
    if not reached:
        log(f"WARNING: pretraining ran all max_steps={settings.max_steps} without held-out accuracy reaching "
            f"target_acc={settings.target_acc} (last check: {last}); raise max_steps or lr")

    eval_generator = torch.Generator().manual_seed(seed + 1)
    summary = {
        "seed": seed,
        "data": str(data_dir),
        "parameters": count_parameters(model),
        "settings": asdict(settings),
        "steps": step,
        "target_reached": reached,
        "checks": checks,
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "test_acc_sampled": accuracy(model, tokenizer, test_rows, temperature=settings.eval_temperature,
                                     samples=settings.eval_samples, max_new_tokens=settings.max_new_tokens,
                                     generator=eval_generator),
        "test_acc_greedy": accuracy(model, tokenizer, test_rows, temperature=1.0, samples=1,
                                    max_new_tokens=settings.max_new_tokens, greedy=True),
        "train_seconds": train_seconds,
        "machine": machine(),
    }
    log(f"pretrained {summary['parameters']} parameters in {step} steps, {train_seconds:.1f}s: test acc "
        f"sampled@T={settings.eval_temperature} {summary['test_acc_sampled']:.3f}, "
        f"greedy {summary['test_acc_greedy']:.3f}")
    save_model_atomic(model, tokenizer, out_dir, extra={"pretrain.json": summary}, replaceable=PRETRAIN_MARKERS)
    return summary


def save_model_atomic(model, tokenizer, out_dir: Path, extra: dict | None = None, replaceable=None) -> None:
    """save_pretrained into a temp dir beside ``out_dir``, then rename over it (see atomic_dir's `replaceable`)."""
    with atomic_dir(out_dir, replaceable=replaceable) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name, payload in (extra or {}).items():
            write_json(tmp / name, payload, sort_keys=True)
