"""A work folder remembers what it was started from: a resume never continues a run of other arguments or inputs."""
import json
import os
from pathlib import Path

import pytest

from mgrpo.cpu.trainer import CpuSettings, resolved_settings
from mgrpo.run_spec import RunSpec
from mgrpo.work_lock import LOCK_NAME
from mgrpo.work_stamp import STAMP, SUPERSEDED
from mgrpo.work_stamp import check_work_dir as check_with


def check_work_dir(spec, **options):
    """As `mgrpo train` calls it: with the CPU backend's resolved settings."""
    check_with(spec, resolved_settings(spec), **options)


@pytest.fixture
def spec(tmp_path):
    model, data = tmp_path / "model", tmp_path / "data"
    model.mkdir()
    data.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    (data / "train.jsonl").write_text("{}\n")
    return RunSpec.create(backend="cpu", method="srt", G=4, base_model=model, data=data, out=tmp_path / "out",
                          work=tmp_path / "work", temperature=1.0, seed=0, settings={"steps": 10})


def started(spec):
    """A work folder with a run in it: the stamp, a checkpoint and the lock of the trainer holding it."""
    check_work_dir(spec)
    (Path(spec.work) / "step_000005").mkdir()
    (Path(spec.work) / LOCK_NAME).write_text("{}")
    return Path(spec.work)


def test_the_same_run_resumes_in_its_work_folder(spec):
    work = started(spec)
    check_work_dir(spec)
    assert (work / "step_000005").is_dir() and not (work / SUPERSEDED).exists()


def test_a_rebuilt_base_model_under_the_same_path_is_refused(spec):
    started(spec)
    weights = Path(spec.base_model) / "model.safetensors"
    weights.write_bytes(b"other weights")
    os.utime(weights, ns=(1, 1))  # whatever the clock: another file
    with pytest.raises(ValueError, match=r"other inputs \(base_model files .*model\).*--restart-on-change"):
        check_work_dir(spec)


def test_other_settings_are_named(spec):
    started(spec)
    from dataclasses import replace

    with pytest.raises(ValueError, match=r"other inputs \(arguments\.settings\.steps\)"):
        check_work_dir(replace(spec, settings={"steps": 12}))


def test_spelling_out_a_default_setting_is_the_same_run(spec):
    from dataclasses import replace

    work = started(spec)  # --set steps=10
    defaults = CpuSettings()
    check_work_dir(replace(spec, settings={"steps": "10", "lr": str(defaults.lr)}))
    assert (work / "step_000005").is_dir() and not (work / SUPERSEDED).exists()


def test_restart_keeps_the_old_run_aside_and_the_lock_in_place(spec):
    from dataclasses import replace

    work = started(spec)
    lines = []
    check_work_dir(replace(spec, settings={"steps": 12}), restart=True, log=lines.append)
    moved = list((work / SUPERSEDED).iterdir())
    assert len(moved) == 1 and (moved[0] / "step_000005").is_dir()
    assert sorted(p.name for p in work.iterdir()) == sorted([LOCK_NAME, SUPERSEDED, STAMP])
    assert json.loads((work / STAMP).read_text())["arguments"]["settings"]["steps"] == 12
    assert "arguments.settings.steps" in lines[0] and str(moved[0]) in lines[0]


def test_a_start_that_wrote_nothing_does_not_bind_the_folder(spec):
    from dataclasses import replace

    check_work_dir(spec)  # then the trainer refused the settings before writing anything
    fixed = replace(spec, settings={"steps": 12})
    check_work_dir(fixed)
    assert json.loads((Path(spec.work) / STAMP).read_text())["arguments"]["settings"]["steps"] == 12


def test_dot_files_written_by_the_workflow_change_nothing(spec):
    work = started(spec)
    (Path(spec.base_model) / ".snakemake_timestamp").write_text("")
    (Path(spec.data) / ".cache").mkdir()
    (Path(spec.data) / ".cache" / "x").write_text("1")
    check_work_dir(spec)
    assert (work / "step_000005").is_dir()


def older_record(spec, **argument_changes):
    """A record as written before the resolved settings were kept: the arguments (settings as given), the files."""
    from mgrpo.work_stamp import files_identity

    arguments = {k: v for k, v in spec.to_json().items() if k not in ("out", "work")} | argument_changes
    return {"arguments": json.loads(json.dumps(arguments)), "base_model": files_identity(spec.base_model),
            "data": files_identity(spec.data)}


def test_a_record_from_before_resolved_settings_resumes_the_same_run(spec):
    work = Path(spec.work)
    (work / "step_000005").mkdir(parents=True)
    (work / STAMP).write_text(json.dumps(older_record(spec)))
    check_work_dir(spec)
    assert (work / "step_000005").is_dir() and not (work / SUPERSEDED).exists()
    assert json.loads((work / STAMP).read_text())["arguments"]["settings"] == {
        **json.loads(json.dumps(resolved_settings(spec)))}  # rewritten in the present form


def test_a_record_from_before_resolved_settings_of_another_run_is_refused(spec):
    work = Path(spec.work)
    (work / "step_000005").mkdir(parents=True)
    (work / STAMP).write_text(json.dumps(older_record(spec, G=8)))
    with pytest.raises(ValueError, match=r"other inputs \(arguments\.G, "):
        check_work_dir(spec)


@pytest.mark.parametrize("text, reason", [
    ("", "Expecting value: line 1 column 1 (char 0)"),  # emptied, e.g. by a full disk
    ('{"arguments": {"G', "Unterminated string starting at: line 1 column 16 (char 15)"),  # cut short
    ("[]", "not a JSON object")])
def test_an_unreadable_record_is_named_and_kept_unless_restart_is_asked(spec, text, reason):
    work = started(spec)
    (work / STAMP).write_text(text)
    with pytest.raises(ValueError) as err:
        check_work_dir(spec)
    assert str(err.value) == (f"{work} holds a run whose record {work / STAMP} cannot be read ({reason}); use "
                              f"another --work, or --restart-on-change to move its contents to {work / SUPERSEDED} "
                              "and start afresh")
    assert (work / STAMP).read_text() == text and (work / "step_000005").is_dir()  # nothing touched
    lines = []
    check_work_dir(spec, restart=True, log=lines.append)
    (moved,) = (work / SUPERSEDED).iterdir()
    assert (moved / STAMP).read_text() == text and (moved / "step_000005").is_dir()
    assert lines == [f"mgrpo train: {work} held a run whose record {work / STAMP} cannot be read ({reason}); "
                     f"its contents moved to {moved}, starting afresh"]
    check_work_dir(spec)  # recorded afresh: the same run now resumes


def test_a_record_differing_only_in_a_momentum_or_k_the_method_does_not_use_is_the_same_run(spec):
    # The workflow passed training.momentum / iqr_k to every method until it passed them only to the methods that
    # use them: an SRT run recorded with m = 0.9 is now started with the default 0.99. It must resume, not be
    # refused (or, under --restart-on-change, moved aside and retrained from step 0).
    from dataclasses import replace

    old = replace(spec, momentum=0.9, iqr_k=1.5)
    work = started(old)
    check_work_dir(spec)
    assert (work / "step_000005").is_dir() and not (work / SUPERSEDED).exists()
    assert json.loads((work / STAMP).read_text())["arguments"]["momentum"] == 0.99  # rewritten in the present form


def test_a_momentum_the_method_uses_still_makes_another_run(spec, tmp_path):
    from dataclasses import replace

    mgrpo = replace(spec, method="mgrpo", N=1)
    started(replace(mgrpo, momentum=0.9))
    with pytest.raises(ValueError, match=r"other inputs \(arguments\.momentum\)"):
        check_work_dir(mgrpo)
