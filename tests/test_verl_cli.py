"""The backend's subcommands through the `mgrpo` CLI."""
import json
import os

import pandas as pd
import pytest

pytest.importorskip("verl")
from mgrpo.cli import main  # noqa: E402


def test_prepare_data_subcommand(tmp_path, capsys):
    src = tmp_path / "math"
    src.mkdir()
    rows = [{"problem": f"p{i}", "solution": f"\\boxed{{{i}}}"} for i in range(3)]
    for split in ("train", "test"):
        (src / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["verl-prepare-data", "--source", str(src), "--out", str(tmp_path / "out"), "--test-limit", "2"]) == 0
    assert len(pd.read_parquet(tmp_path / "out" / "test.parquet")) == 2
    assert list(pd.read_parquet(tmp_path / "out" / "train.parquet")["mgrpo_gold"]) == ["0", "1", "2"]


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["verl-prepare-data", "--source", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no train split" in capsys.readouterr().err
    assert main(["verl-convert", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "hf")]) == 2
    assert "fsdp_config.json" in capsys.readouterr().err


def test_train_with_bad_override_fails_before_ray(tmp_path, capsys, monkeypatch, verl_inputs):
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray must not start"))
    model, data = verl_inputs
    args = ["train", "--backend", "verl", "--method", "mgrpo_iqr", "--base-model", str(model), "--data", str(data),
            "--out", str(tmp_path / "run"), "--work", str(tmp_path / "work"), "--G", "32", "--T", "1.1"]
    assert main(args + ["--set", "trainer.no_such_key=1"]) == 2
    err = capsys.readouterr().err
    assert "trainer.no_such_key" in err and len(err.strip().splitlines()) == 1
    assert main(args + ["--set", "keep_fraction=2"]) == 2
    assert "keep_fraction" in capsys.readouterr().err
    assert main(args + ["--set", "vote_threshold=0.5", "--method", "ground_truth", "--N", "0"]) == 2
    assert capsys.readouterr().err == ("mgrpo train: error: setting 'vote_threshold' withholds the majority vote's "
                                       "label, which only the agreement and frequency rewards read; method "
                                       "'ground_truth' uses 'ground_truth'\n")
    (data / "test.parquet").write_bytes(b"")
    assert main(args) == 2
    assert capsys.readouterr().err == (f"mgrpo train: error: {data / 'test.parquet'}: not a parquet file (Parquet "
                                       f"file size is 0 bytes); prepare it with `mgrpo verl-prepare-data`\n")
    assert not (tmp_path / "work").exists()


class RayStarted(Exception):
    pass


@pytest.mark.parametrize("flags", [[], ["--restart-on-change"]])
def test_train_repairs_an_emptied_tracker_before_resuming(tmp_path, capsys, monkeypatch, verl_inputs, flags):
    import ray
    import torch

    def ray_init(*args, **kwargs):
        raise RayStarted

    monkeypatch.setattr(ray, "init", ray_init)
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # train() sets these: restored after
    for name in ("WANDB_MODE", "WANDB_DIR", "VLLM_USE_FLASHINFER_SAMPLER"):
        monkeypatch.delenv(name, raising=False)
    checkpoints = tmp_path / "work" / "checkpoints"
    (checkpoints / "global_step_2" / "actor").mkdir(parents=True)
    torch.save({"sampler": 2}, checkpoints / "global_step_2" / "data.pt")
    (checkpoints / "latest_checkpointed_iteration.txt").write_text("")  # killed while verl rewrote it
    model, data = verl_inputs
    args = ["train", "--backend", "verl", "--method", "mgrpo_iqr", "--base-model", str(model), "--data", str(data),
            "--out", str(tmp_path / "run"), "--work", str(tmp_path / "work"), "--G", "32", "--T", "1.1"]
    with pytest.raises(RayStarted):  # every check passed
        main(args + flags)
    assert ("mgrpo train: latest_checkpointed_iteration.txt was empty or unreadable (a kill while verl rewrote it); "
            "resuming from step 2, the newest complete one\n") in capsys.readouterr().err
    assert (checkpoints / "latest_checkpointed_iteration.txt").read_text() == "2"
