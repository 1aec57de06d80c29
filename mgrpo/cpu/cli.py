"""``mgrpo toy-data`` and ``mgrpo pretrain``: the toy task's data and its supervised base model."""
from __future__ import annotations

from pathlib import Path


def add_subcommands(subparsers) -> None:
    from mgrpo.toy.settings import ModelSize, PretrainSettings
    from mgrpo.toy.task import TaskConfig

    task, pre, size = TaskConfig(), PretrainSettings(), ModelSize()

    p = subparsers.add_parser("toy-data", help="write the synthetic toy task (pretrain/train/test/val JSONL)",
                              description="Write DIR/pretrain.jsonl, DIR/train.jsonl, DIR/test.jsonl and "
                                          "DIR/val.jsonl (left-to-right chain arithmetic mod 10), generated "
                                          "from --seed.")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--operands", type=int, default=task.operands, help="digits per chain (default %(default)s)")
    p.add_argument("--pretrain-size", type=int, default=task.pretrain_size, help="default %(default)s")
    p.add_argument("--train-size", type=int, default=task.train_size, help="default %(default)s")
    p.add_argument("--test-size", type=int, default=task.test_size, help="default %(default)s")
    p.add_argument("--val-size", type=int, default=task.val_size,
                   help="rows for the training curve and the best checkpoint (default %(default)s)")
    p.set_defaults(handler=_toy_data, check=_task_config)

    p = subparsers.add_parser("pretrain", help="supervised pre-training of the tiny toy model (HF format)",
                              description="Train the tiny char-level Llama from scratch on DATA/pretrain.jsonl "
                                          "and write an HF model directory (model, tokenizer, pretrain.json).")
    p.add_argument("--data", required=True, type=Path, help="directory written by `mgrpo toy-data`")
    p.add_argument("--out", required=True, type=Path, help="model directory to write")
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--max-steps", type=int, default=pre.max_steps, help="default %(default)s")
    p.add_argument("--target-acc", type=_accuracy_or_none, default=pre.target_acc,
                   help="stop at the first check where sampled accuracy on the held-out rows reaches this; "
                        "'none' trains exactly --max-steps (default %(default)s)")
    p.add_argument("--check-every", type=int, default=pre.check_every, help="steps between checks "
                   "(default %(default)s)")
    p.add_argument("--select-rows", type=int, default=pre.select_rows,
                   help="last rows of pretrain.jsonl held out of training for the check (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=pre.batch_size, help="default %(default)s")
    p.add_argument("--lr", type=float, default=pre.lr, help="default %(default)s")
    p.add_argument("--direct-fraction", type=float, default=pre.direct_fraction,
                   help="share of targets without scratchpad, just '#answer' (default %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=pre.max_new_tokens,
                   help="generation budget of the held-out check and the test (default %(default)s; a worked "
                        "solution of n operands takes 2n tokens with <eos>)")
    p.add_argument("--threads", type=int, default=pre.threads, help="torch threads (default %(default)s)")
    p.add_argument("--hidden-size", type=int, default=size.hidden_size, help="default %(default)s")
    p.add_argument("--intermediate-size", type=int, default=size.intermediate_size, help="default %(default)s")
    p.add_argument("--layers", type=int, default=size.num_hidden_layers, help="default %(default)s")
    p.add_argument("--heads", type=int, default=size.num_attention_heads, help="default %(default)s")
    p.set_defaults(handler=_pretrain, check=_pretrain_settings)


def _accuracy_or_none(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def _task_config(args):
    from mgrpo.run_spec import check_seed
    from mgrpo.toy.task import TaskConfig

    config = TaskConfig(operands=args.operands, pretrain_size=args.pretrain_size,
                        train_size=args.train_size, test_size=args.test_size, val_size=args.val_size)
    config.validate()
    check_seed(args.seed)
    return config


def _toy_data(args) -> int:
    from mgrpo.toy.task import write_splits

    for path in write_splits(args.out, args.seed, _task_config(args)).values():
        print(f"wrote {path}")
    return 0


def _pretrain_settings(args):
    from dataclasses import replace

    from mgrpo.run_spec import check_seed
    from mgrpo.toy.settings import ModelSize, PretrainSettings

    size = ModelSize(hidden_size=args.hidden_size, intermediate_size=args.intermediate_size,
                     num_hidden_layers=args.layers, num_attention_heads=args.heads)
    settings = replace(PretrainSettings(), max_steps=args.max_steps, target_acc=args.target_acc,
                       check_every=args.check_every, select_rows=args.select_rows, batch_size=args.batch_size,
                       lr=args.lr, direct_fraction=args.direct_fraction, threads=args.threads,
                       max_new_tokens=args.max_new_tokens, size=size)
    settings.validate()  # a bad value fails now, not after torch and transformers have loaded
    check_seed(args.seed)
    return settings


def _pretrain(args) -> int:
    settings = _pretrain_settings(args)

    from transformers.utils import logging as hf_logging

    from mgrpo.toy.pretrain import pretrain

    hf_logging.disable_progress_bar()
    pretrain(args.data, args.out, args.seed, settings)
    return 0
