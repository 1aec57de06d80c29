"""verl checkpoints: finding them, keeping the best, and converting them to HF format (verl's model_merger).

A step is written in this order: our ``global_step_<N>/momentum/`` (EMA shards, momentum methods), verl's
``global_step_<N>/actor/`` (FSDP shards ``model_world_size_W_rank_R.pt``, ``fsdp_config.json``, ``huggingface/``
config + tokenizer), verl's ``global_step_<N>/data.pt`` (the dataloader's state) and, last, verl's
``latest_checkpointed_iteration.txt``, so a step directory named there is complete. After the tracker, we write
``mgrpo_best.json`` (the best step so far) and prune old steps.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from mgrpo.atomic import atomic_dir, check_out_apart, write_text

HF_MODEL_MARKERS = ("config.json", "*.safetensors")  # an HF model folder, which verl-convert may replace

STEP_DIR = re.compile(r"^global_step_(\d+)$")
TRACKER = "latest_checkpointed_iteration.txt"
DATALOADER_STATE = "data.pt"


def checkpoint_steps(ckpt_root: Path) -> list[int]:
    """Steps with an actor checkpoint directory, ascending."""
    root = Path(ckpt_root)
    steps = []
    for child in root.iterdir() if root.is_dir() else []:
        match = STEP_DIR.match(child.name)
        if match and (child / "actor").is_dir():
            steps.append(int(match.group(1)))
    return sorted(steps)


def latest_complete_step(ckpt_root: Path) -> Optional[int]:
    """The step verl's tracker names (written after the step's files), if its directory exists."""
    tracker = Path(ckpt_root) / TRACKER
    if not tracker.is_file():
        return None
    text = tracker.read_text().strip()
    if not text.isdigit():
        raise ValueError(f"{tracker}: expected a step number, found {text!r}")
    step = int(text)
    return step if (Path(ckpt_root) / f"global_step_{step}" / "actor").is_dir() else None


def repair_tracker(ckpt_root: Path) -> Optional[int]:
    """Rewrite an empty or unreadable tracker; returns the step written, or None when it was fine or absent.

    verl rewrites its tracker in place (open "w", then write), so a kill at that moment leaves it empty, and every
    resume after that, verl's own included, fails on it. The newest step whose dataloader state loads is complete
    (that file is written after the EMA and the actor shards); the tracker is rewritten to name it, atomically.
    """
    tracker = Path(ckpt_root) / TRACKER
    if not tracker.is_file() or tracker.read_text().strip().isdigit():
        return None
    for step in reversed(checkpoint_steps(ckpt_root)):
        if _loads(Path(ckpt_root) / f"global_step_{step}" / DATALOADER_STATE):
            write_text(tracker, str(step))
            return step
    raise ValueError(f"{tracker}: found {tracker.read_text()!r}, and no step directory beside it is complete "
                     f"(actor/ and a readable {DATALOADER_STATE}); delete {ckpt_root} to start over")


def _loads(path: Path) -> bool:
    import torch

    try:
        torch.load(path, weights_only=False)  # our own file, written by verl (a dataloader state, not tensors)
        return True
    except Exception:  # noqa: BLE001 - absent, truncated or unreadable: not a complete step
        return False


def steps_to_delete(steps: list[int], latest: Optional[int], best: Optional[int], keep_last: int) -> list[int]:
    """Checkpoint steps that may go: all but the newest ``keep_last`` and the best (never one above latest)."""
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 (got {keep_last})")
    done = [s for s in sorted(steps) if latest is not None and s <= latest]
    keep = set(done[-keep_last:]) | ({best} if best is not None else set())
    return [s for s in done if s not in keep]


def prune(ckpt_root: Path, best: Optional[int], keep_last: int = 2) -> list[int]:
    removed = steps_to_delete(checkpoint_steps(ckpt_root), latest_complete_step(ckpt_root), best, keep_last)
    for step in removed:
        shutil.rmtree(Path(ckpt_root) / f"global_step_{step}", ignore_errors=True)
    return removed


def best_step(val_by_step: dict[int, float], saved_steps: list[int]) -> Optional[int]:
    """Highest val_acc among saved steps (ties: earliest); None if no saved step was validated."""
    candidates = [(step, acc) for step, acc in val_by_step.items() if step in set(saved_steps) and acc is not None]
    if not candidates:
        return None
    return min(candidates, key=lambda item: (-item[1], item[0]))[0]


def read_hf_config(path: Path) -> dict:
    """An HF ``config.json`` as a dict; a ValueError naming the file where it is not a JSON object."""
    try:
        config = json.loads(Path(path).read_text())
    except ValueError as err:  # JSONDecodeError, or bytes that are not UTF-8
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a JSON object")
    return config


def convert_to_hf(actor_dir: Path, target_dir: Path) -> Path:
    """verl's FSDP model_merger: ``global_step_N/actor`` -> HF directory (config, safetensors, tokenizer).

    Written to a temp directory beside ``target_dir`` and renamed into place.
    """
    from verl.model_merger.base_model_merger import ModelMergerConfig
    from verl.model_merger.fsdp_model_merger import FSDPModelMerger

    actor_dir, target_dir = Path(actor_dir), Path(target_dir)
    if not (actor_dir / "fsdp_config.json").is_file():
        raise FileNotFoundError(f"not a verl FSDP actor checkpoint (no fsdp_config.json): {actor_dir}")
    check_out_apart(target_dir, checkpoint=actor_dir)
    with atomic_dir(target_dir, replaceable=HF_MODEL_MARKERS) as tmp, tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".hfcfg.") as scratch:
        # verl saves the training run's override_config into huggingface/config.json, attn_implementation
        # included (flash_attention_2 where flash-attn was installed): the merger's from_config and every later
        # from_pretrained would then need flash-attn. The HF model gets the architecture's default instead.
        hf_config = Path(scratch) / "huggingface"
        shutil.copytree(actor_dir / "huggingface", hf_config)
        config_json = read_hf_config(actor_dir / "huggingface" / "config.json")
        config_json.pop("attn_implementation", None)
        (hf_config / "config.json").write_text(json.dumps(config_json, indent=2))
        config = ModelMergerConfig(operation="merge", backend="fsdp", local_dir=str(actor_dir),
                                   target_dir=str(tmp), hf_model_config_path=str(hf_config))
        merger = FSDPModelMerger(config)
        try:
            merger.merge_and_save()
        except Exception as err:  # noqa: BLE001 -- a truncated shard is `EOFError: Ran out of input`, naming nothing
            raise ValueError(f"verl checkpoint {actor_dir} cannot be converted: {type(err).__name__}: {err}") from err
        merger.cleanup()
    return target_dir
