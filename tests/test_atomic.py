"""mgrpo.atomic: a reader sees the old file or folder or the new one, never half, and no temp is left behind."""
import json
import os
import stat

import pytest

from mgrpo.atomic import (atomic_dir, atomic_path, check_out_apart, check_replaceable, remove_stale_temps, write_json,
                          write_jsonl, write_text)


class Boom(Exception):
    pass


def test_write_text_creates_parents_and_replaces(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    write_text(target, "one")
    write_text(target, "two")
    assert target.read_text() == "two"
    assert os.listdir(target.parent) == ["out.txt"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise Boom
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_temp_keeps_the_suffix_and_result_has_ordinary_permissions(tmp_path):
    with atomic_path(tmp_path / "figure.png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path and tmp.name.startswith(".figure.png.")
        tmp.write_bytes(b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "figure.png").stat().st_mode) == 0o666 & ~mask


def test_write_json_and_jsonl(tmp_path):
    write_json(tmp_path / "x.json", {"b": 1, "a": "é"}, sort_keys=True, ensure_ascii=False)
    assert (tmp_path / "x.json").read_text(encoding="utf-8") == '{\n  "a": "é",\n  "b": 1\n}\n'
    count = write_jsonl(tmp_path / "x.jsonl", ({"i": i} for i in range(3)))
    assert count == 3
    assert [json.loads(line) for line in (tmp_path / "x.jsonl").read_text().splitlines()] == [{"i": 0}, {"i": 1},
                                                                                              {"i": 2}]


def test_failed_jsonl_stream_keeps_the_old_file(tmp_path):
    target = tmp_path / "rows.jsonl"
    target.write_text('{"old": true}\n')

    def rows():
        yield {"i": 0}
        raise Boom

    with pytest.raises(Boom):
        write_jsonl(target, rows())
    assert target.read_text() == '{"old": true}\n' and os.listdir(tmp_path) == ["rows.jsonl"]


def test_atomic_dir_replaces_an_existing_folder_whole(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "stale.txt").write_text("from the last run")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(os.listdir(target)) == ["new.txt"]
    assert os.listdir(tmp_path) == ["run"]


def _unrelated_folder(tmp_path):
    out = tmp_path / "x"
    (out / "important").mkdir(parents=True)
    (out / "important" / "notes.txt").write_text("precious\n")
    return out


def test_atomic_dir_refuses_a_folder_that_is_not_the_writers_earlier_output(tmp_path):
    out = _unrelated_folder(tmp_path)
    with pytest.raises(ValueError) as err:
        with atomic_dir(out, replaceable=("run.json",)) as tmp:
            (tmp / "run.json").write_text("{}")
    assert str(err.value) == (f"output folder {out} is not empty and is not an earlier output of this command (it has "
                              f"no run.json); it would be replaced whole: write the output elsewhere or remove it")
    assert (out / "important" / "notes.txt").read_text() == "precious\n" and os.listdir(tmp_path) == ["x"]


def test_atomic_dir_refuses_a_folder_that_appeared_while_the_block_ran(tmp_path):
    out = tmp_path / "x"
    with pytest.raises(ValueError, match="not an earlier output"):
        with atomic_dir(out, replaceable=("run.json",)):
            _unrelated_folder(tmp_path)
    assert os.listdir(out) == ["important"] and os.listdir(tmp_path) == ["x"]


def test_an_absent_empty_or_own_earlier_output_is_replaceable(tmp_path):
    check_replaceable(tmp_path / "absent", ("run.json",))
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty", ("run.json",))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"it has no \*\.safetensors\)"):  # a config alone is not a model
        check_replaceable(model, ("config.json", "*.safetensors"))
    (model / "model-00001-of-00002.safetensors").write_bytes(b"")
    with atomic_dir(model, replaceable=("config.json", "*.safetensors")) as tmp:
        (tmp / "config.json").write_text("{}")
    assert os.listdir(model) == ["config.json"]


def test_pretrain_refuses_an_unrelated_out_before_training(tmp_path, capsys):
    from mgrpo.cli import main

    out = _unrelated_folder(tmp_path)
    assert main(["pretrain", "--data", str(tmp_path / "data"), "--out", str(out), "--seed", "0"]) == 2
    assert "is not an earlier output of this command (it has no pretrain.json)" in capsys.readouterr().err
    assert (out / "important" / "notes.txt").read_text() == "precious\n"


def test_train_refuses_an_unrelated_out_and_replaces_its_own_run_folder(tmp_path):
    from mgrpo.run_spec import RunSpec

    model = tmp_path / "base"
    model.mkdir()
    out = _unrelated_folder(tmp_path)
    create = dict(backend="cpu", method="srt", G=4, base_model=model, data=tmp_path / "data", out=out,
                  work=tmp_path / "work", temperature=1.0, seed=0)
    with pytest.raises(ValueError, match=f"output folder {out} is not empty .*no run.json"):
        RunSpec.create(**create)
    (out / "run.json").write_text("{}")  # an earlier run's folder: a rerun replaces it
    assert RunSpec.create(**create).out == out


def test_failed_atomic_dir_keeps_the_old_folder_and_leaves_no_temp(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "kept.txt").write_text("kept")
    with pytest.raises(Boom):
        with atomic_dir(target) as tmp:
            (tmp / "half.txt").write_text("half")
            raise Boom
    assert os.listdir(target) == ["kept.txt"] and os.listdir(tmp_path) == ["run"]


def test_an_output_folder_may_not_be_or_hold_an_input(tmp_path):
    data = tmp_path / "study" / "data"
    check_out_apart(tmp_path / "study" / "model", data=data)  # siblings are fine
    with pytest.raises(ValueError, match="would replace the data .*which it is"):
        check_out_apart(data, data=data)
    with pytest.raises(ValueError, match="would replace the data .*which it holds"):
        check_out_apart(tmp_path / "study", data=data, model=None)


def test_train_refuses_an_out_that_would_delete_its_base_model(tmp_path):
    from mgrpo.run_spec import RunSpec

    model = tmp_path / "base"
    model.mkdir()
    (model / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="would replace the base model"):
        RunSpec.create(backend="cpu", method="srt", G=4, base_model=model, data=tmp_path / "data", out=model,
                       work=tmp_path / "work", temperature=1.0, seed=0)
    assert (model / "config.json").is_file()


def test_the_temp_a_killed_writer_left_is_removed_by_the_next_writer_and_only_its_own(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "run"
    # a writer SIGKILLed inside atomic_dir (no clean-up runs) leaves its temp folder beside the target
    script = ("import os, sys\nfrom mgrpo.atomic import atomic_dir\nwith atomic_dir(sys.argv[1]) as tmp:\n"
              "    (tmp / 'final').mkdir()\n    os.kill(os.getpid(), 9)\n")
    subprocess.run([sys.executable, "-c", script, str(target)], check=False)
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".run.")]
    assert len(left) == 1 and (left[0] / "final").is_dir() and not target.exists()
    others = [tmp_path / ".run2.abcdefgh", tmp_path / ".run.json.tmp", tmp_path / "run.txt"]
    others[0].mkdir()
    others[1].write_text("a file, not atomic_dir's")
    others[2].write_text("")
    assert remove_stale_temps(target) == left
    assert sorted(tmp_path.iterdir()) == sorted(others)
