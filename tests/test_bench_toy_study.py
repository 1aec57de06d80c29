"""bench/toy_study.py reuses what OUT holds, so it must refuse an OUT made with other shared arguments."""
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
