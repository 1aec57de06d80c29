"""bench/toy_study.py and cpu_step.py check their arguments before any work; toy_study refuses an OUT made with
other shared arguments."""
import json
import sys

import pytest


def test_a_study_folder_made_with_other_settings_is_refused_before_anything_runs(bench_script, tmp_path,
                                                                                  monkeypatch):
    study = bench_script("toy_study")
    (tmp_path / "study.json").write_text(json.dumps({"data_seed": 0, "set": []}))
    monkeypatch.setattr(study, "mgrpo", lambda *args: pytest.fail(f"nothing may run: {args}"))
    monkeypatch.setattr(sys, "argv", ["toy_study.py", "--out", str(tmp_path), "--set", "lr=5e-4"])
    with pytest.raises(SystemExit, match="holds a study made with .*lr=5e-4.*use another --out"):
        study.main()
    monkeypatch.setattr(sys, "argv", ["toy_study.py", "--out", str(tmp_path), "--data-seed", "7"])
    with pytest.raises(SystemExit, match="data_seed"):
        study.main()


@pytest.mark.parametrize("record", ["", '{"data_seed": 0, '])
def test_a_study_record_cut_short_is_named_not_a_traceback(bench_script, tmp_path, monkeypatch, record):
    # json.loads of an empty or cut-short study.json was a JSONDecodeError traceback naming no file
    study = bench_script("toy_study")
    (tmp_path / "study.json").write_text(record)
    monkeypatch.setattr(study, "mgrpo", lambda *args: pytest.fail(f"nothing may run: {args}"))
    monkeypatch.setattr(sys, "argv", ["toy_study.py", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=rf"{tmp_path / 'study.json'}: not valid JSON .*: delete it or use another"):
        study.main()
    assert (tmp_path / "study.json").read_text() == record


def test_momentum_and_N_reach_only_the_momentum_methods_train_commands_and_are_recorded(bench_script, tmp_path,
                                                                                        monkeypatch):
    study = bench_script("toy_study")
    calls = []

    def fake_mgrpo(*args):  # stands in for the CLI: writes just what the study reads back
        calls.append(args)
        arg = dict(zip(args[1::2], args[2::2]))
        if args[0] == "train":
            run = tmp_path / arg["--out"]
            run.mkdir(parents=True)
            spec = {"N": int(arg.get("--N", 0)), "momentum": float(arg.get("--momentum", 0.99))}
            (run / "run.json").write_text(json.dumps({"spec": spec}))
            rows = [{"step": 0, "val_acc": 0.5, "val_acc_greedy": 0.7},
                    {"step": 1, "entropy": 0.2, "pseudo_label_acc": 0.4, "val_acc": 0.6, "val_acc_greedy": 0.8}]
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "val.jsonl").write_text("")
    (tmp_path / "base_model").mkdir()
    (tmp_path / "base_model" / "config.json").write_text("{}")
    monkeypatch.setattr(study, "mgrpo", fake_mgrpo)
    monkeypatch.setattr(sys, "argv", ["toy_study.py", "--out", str(tmp_path), "--seeds", "3", "--methods", "srt",
                                      "mgrpo", "--momentum", "0.995", "--N", "4"])
    assert study.main() == 0
    train = {args[args.index("--method") + 1]: args for args in calls if args[0] == "train"}
    assert set(train) == {"srt", "mgrpo"}
    assert "--momentum" not in train["srt"] and "--N" not in train["srt"]  # srt has no momentum model: N must be 0
    mgrpo_args = train["mgrpo"]
    assert mgrpo_args[mgrpo_args.index("--momentum") + 1] == "0.995"
    assert mgrpo_args[mgrpo_args.index("--N") + 1] == "4"
    assert mgrpo_args[mgrpo_args.index("--out") + 1].endswith("mgrpo_G8_T1.0_m0.995_N4_s3")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["momentum"] == 0.995 and summary["settings"]["N"] == 4
    assert summary["results"]["mgrpo"]["3"]["N"] == 4 and summary["results"]["srt"]["3"]["N"] == 0
    assert "m = 0.995, N = 4" in (tmp_path / "table.md").read_text().splitlines()[0]


@pytest.mark.parametrize("script, flags, message", [
    ("toy_study", ["--methods", "nosuch"], "unknown method 'nosuch'; registered methods: "),
    ("toy_study", ["--G", "1"], "G (rollouts per prompt) must be an integer >= 2 (got 1)"),
    ("toy_study", ["--set", "steps=abc"], "setting 'steps': cannot read 'abc' as int"),
    ("toy_study", ["--seeds", "0", "-1"], "seed must be an integer in [0, 2147483647] (got -1)"),
    ("toy_study", ["--out", "FILE"], "--out FILE is a file, not a folder"),  # was a FileExistsError traceback
    ("toy_study", ["--methods", "mgrpo", "--N", "7"], "N (momentum rollouts) must be <= G - 2 = 6"),
    ("cpu_step", ["--repeats", "0"], "--steps and --repeats must be >= 1 (got 40, 0)"),
    ("cpu_step", ["--methods", "srt", "nosuch"], "unknown method 'nosuch'"),
])
def test_what_mgrpo_train_would_refuse_stops_the_bench_before_any_work(bench_script, tmp_path, monkeypatch, capsys,
                                                                      script, flags, message):
    bench = bench_script(script)
    monkeypatch.setattr(bench, "mgrpo", lambda *args: pytest.fail(f"nothing may run: {args}"))
    out = ["--out", str(tmp_path / "out")] if script == "toy_study" else ["--work", str(tmp_path / "out")]
    if "FILE" in flags:
        (tmp_path / "FILE").write_text("keep me")
        monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *out, *flags])
    with pytest.raises(SystemExit) as exit_:
        bench.main()
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
