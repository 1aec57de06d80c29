"""bench/gpu_eval_smoke.py run through transformers on a tiny model (its vLLM run needs a GPU)."""
import json

from test_eval_fixtures import save_tiny_chat_model


def test_the_eval_smoke_runs_its_three_phases_on_the_cpu(bench_script, tmp_path):
    smoke = bench_script("gpu_eval_smoke")
    model = save_tiny_chat_model(tmp_path / "model")
    out = tmp_path / "report.json"
    # 5 prompts x 2 samples, 4 responses a chunk: chunks of 2, 2 and 1 prompts
    code = smoke.main(["--out", str(out), "--root", str(tmp_path / "root"), "--model", str(model), "--backend", "hf",
                       "--prompts", "5", "--samples", "2", "--max-tokens", "4", "--chunk-sequences", "4"])
    report = json.loads(out.read_text())
    assert report["first"]["chunks"] == [2, 2, 1]
    assert report["cached"] == {"seconds": report["cached"]["seconds"], "generated_chunks": [], "same_result": True}
    assert report["resumed"]["chunks_complete"] == [2, 2, 1] and report["resumed"]["chunks_regenerated"] == [2, 1]
    assert report["resumed"]["same_responses"] is True
    assert code == 0 and report["ok"] is True
