"""bench/ema_cost.py on the CPU at a tiny size: the shard arithmetic, the checks it makes, its refusals."""
import json

import pytest


@pytest.fixture(scope="module")
def ema_cost(bench_script):
    return bench_script("ema_cost")


def test_shard_is_the_ranks_share_split_into_tensors(ema_cost):
    tensors = ema_cost.shard_tensors(10, 3, "cpu")
    assert [t.numel() for t in tensors] == [4, 3, 3]
    assert all(t.dtype.is_floating_point and t.dtype.itemsize == 4 for t in tensors)  # fp32, as the EMA is kept


def test_cpu_run_writes_what_it_measured(ema_cost, tmp_path):
    out = tmp_path / "ema.json"
    assert ema_cost.main(["--device", "cpu", "--params", "8e5", "--ranks", "8", "--tensors", "7",
                          "--repeats", "3", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["elements_per_rank"] == 100_000 and result["tensors"] == 7
    assert result["shard_gib"] == pytest.approx(400_000 / 2**30) == result["swap_backup_gib"]
    assert len(result["ema_update_all_s"]) == 3 and result["ema_update_s"] > 0 and result["swap_s"] > 0
    assert result["ema_update_gb_per_s"] == pytest.approx(12 * 100_000 / result["ema_update_s"] / 1e9)


def test_bad_sizes_are_named(ema_cost, tmp_path, capsys):
    with pytest.raises(SystemExit):
        ema_cost.main(["--device", "cpu", "--ranks", "0", "--out", str(tmp_path / "x.json")])
    assert "--ranks must be >= 1 (got 0)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="fewer than --tensors"):
        ema_cost.measure(10, 2, 7, "cpu", 1)
    assert not (tmp_path / "x.json").exists()


def test_refuses_cuda_without_a_gpu(ema_cost, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert ema_cost.main(["--device", "cuda", "--out", str(tmp_path / "x.json")]) == 2
