"""verl checkpoints: finding them, keeping the best, and converting them to HF format (verl's model_merger).

verl writes ``<default_local_dir>/global_step_<N>/actor/`` (FSDP shards ``model_world_size_W_rank_R.pt``,
``fsdp_config.json``, ``huggingface/`` config + tokenizer) and ``latest_checkpointed_iteration.txt`` last, so a
step directory named there is complete. We add ``global_step_<N>/momentum/`` (EMA shards) and
``global_step_<N>/mgrpo_state.json`` (best step so far) before verl writes its tracker.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Optional

from mgrpo.atomic import atomic_dir

STEP_DIR = re.compile(r"^global_step_(\d+)$")
TRACKER = "latest_checkpointed_iteration.txt"
STATE_FILE = "mgrpo_state.json"


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


def convert_to_hf(actor_dir: Path, target_dir: Path) -> Path:
    """verl's FSDP model_merger: ``global_step_N/actor`` -> HF directory (config, safetensors, tokenizer).

    Written to a temp directory beside ``target_dir`` and renamed into place.
    """
    from verl.model_merger.base_model_merger import ModelMergerConfig
    from verl.model_merger.fsdp_model_merger import FSDPModelMerger

    actor_dir, target_dir = Path(actor_dir), Path(target_dir)
    if not (actor_dir / "fsdp_config.json").is_file():
        raise FileNotFoundError(f"not a verl FSDP actor checkpoint (no fsdp_config.json): {actor_dir}")
    with atomic_dir(target_dir) as tmp:
        config = ModelMergerConfig(operation="merge", backend="fsdp", local_dir=str(actor_dir),
                                   target_dir=str(tmp), hf_model_config_path=str(actor_dir / "huggingface"))
        merger = FSDPModelMerger(config)
        merger.merge_and_save()
        merger.cleanup()
    return target_dir


def read_state(step_dir: Path) -> dict:
    path = Path(step_dir) / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


