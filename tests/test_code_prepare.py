"""`mgrpo prepare-data` for MBPP+ and LiveCodeBench, offline: the network edge is replaced by local files."""
import gzip
import json
import sys
from pathlib import Path

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("the sandbox needs Linux", allow_module_level=True)

from mgrpo.evaluation.cli import prepare_data  # noqa: E402
from mgrpo.evaluation.code import livecodebench as lcb  # noqa: E402
from mgrpo.evaluation.code import prepare  # noqa: E402
from test_code_livecodebench import call_row, stdin_row  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "mbpp_plus_two_problems.jsonl"


@pytest.fixture
def mbpp_release(tmp_path, monkeypatch):
    """A gzipped MBPP+ 'release' served from a file:// URL, so evalplus's real downloader fetches and unpacks it."""
    gz = tmp_path / "MbppPlus.jsonl.gz"
    gz.write_bytes(gzip.compress(FIXTURE.read_bytes()))
    cache = tmp_path / "cache" / "MbppPlus-v0.2.0.jsonl"
    cache.parent.mkdir()
    seen = {}

    def metadata(name, version, mini, noextreme=False):
        seen.update(name=name, version=version, mini=mini, noextreme=noextreme)
        return gz.as_uri(), str(cache)

    import evalplus.data.utils

    monkeypatch.setattr(evalplus.data.utils, "get_dataset_metadata", metadata)
    return seen


def test_mbpp_plus_is_fetched_by_evalplus_copied_and_recorded(mbpp_release, tmp_path):
    out = tmp_path / "data"
    entry = prepare_data("mbpp_plus", out)["mbpp_plus"]
    assert mbpp_release == {"name": "MbppPlus", "version": "v0.2.0", "mini": False, "noextreme": False}
    assert (out / "mbpp_plus.jsonl").read_bytes() == FIXTURE.read_bytes()
    assert entry["rows"] == 2 and entry["revision"] == "v0.2.0" and entry["path"] == "mbpp_plus.jsonl"
    assert json.loads((out / "MANIFEST.json").read_text())["mbpp_plus"] == entry
    assert sorted(p.name for p in out.iterdir()) == ["MANIFEST.json", "mbpp_plus.jsonl"]  # no temp file left


def test_malformed_mbpp_plus_release_names_the_field_and_writes_nothing(mbpp_release, tmp_path):
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    del rows[1]["entry_point"]
    (tmp_path / "MbppPlus.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    with pytest.raises(ValueError, match=r"MbppPlus-v0.2.0.jsonl:2: missing field\(s\) \['entry_point'\]"):
        prepare_data("mbpp_plus", tmp_path / "data")
    assert not (tmp_path / "data" / "mbpp_plus.jsonl").exists()


def test_mbpp_plus_without_network_is_one_line_naming_the_source(mbpp_release, tmp_path, monkeypatch):
    import urllib.error

    import evalplus.data.utils

    def offline(url, cached):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(evalplus.data.utils, "make_cache", offline)
    url = (tmp_path / "MbppPlus.jsonl.gz").as_uri()
    with pytest.raises(ValueError) as err:
        prepare_data("mbpp_plus", tmp_path / "data")
    assert str(err.value) == (f"mbpp_plus: cannot download {url}, which needs network access: "
                              "URLError: <urlopen error [Errno -2] Name or service not known>")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("failing", ["dataset_info", "snapshot_download"])
def test_livecodebench_without_hub_access_is_one_line_and_leaves_nothing(monkeypatch, tmp_path, failing):
    import huggingface_hub
    from huggingface_hub.errors import OfflineModeIsEnabled

    fake_hub(monkeypatch, {"test.jsonl": ""})

    def offline(*args, **kwargs):
        raise OfflineModeIsEnabled("Cannot reach https://huggingface.co/api: offline mode is enabled.")

    monkeypatch.setattr(huggingface_hub.HfApi if failing == "dataset_info" else huggingface_hub, failing, offline)
    out = tmp_path / "data"
    out.mkdir()
    with pytest.raises(ValueError) as err:
        prepare_data("livecodebench", out)
    assert str(err.value) == ("livecodebench: cannot download livecodebench/code_generation_lite, which needs Hugging "
                              "Face Hub access (network, HF_HUB_OFFLINE unset): OfflineModeIsEnabled: Cannot reach "
                              "https://huggingface.co/api: offline mode is enabled.")
    assert list(out.iterdir()) == []  # no release folder and no temp folder


def fake_hub(monkeypatch, files: dict[str, str], revision="0123abc"):
    """HfApi.dataset_info and snapshot_download answered from `files` (name -> text), honouring allow_patterns."""
    import fnmatch

    import huggingface_hub

    calls = []

    class Info:
        sha = revision

    def dataset_info(self, repo_id, revision=None, token=None):
        calls.append(("info", repo_id, revision))
        return Info()

    def snapshot_download(repo_id, repo_type, revision, allow_patterns, local_dir, token=None):
        calls.append(("download", repo_id, repo_type, revision, tuple(allow_patterns)))
        for name, text in files.items():
            if any(fnmatch.fnmatch(name, p) for p in allow_patterns):
                (Path(local_dir) / name).write_text(text)
        (Path(local_dir) / ".cache").mkdir()
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", dataset_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def test_livecodebench_release_files_land_in_one_folder_at_the_resolved_commit(monkeypatch, tmp_path):
    files = {"test.jsonl": json.dumps(stdin_row()) + "\n" + json.dumps(call_row()) + "\n",
             "test2.jsonl": json.dumps(stdin_row("s2", "2025-01-10T00:00:00")) + "\n",
             "README.md": "not a release file"}
    calls = fake_hub(monkeypatch, files)
    out = tmp_path / "data"
    entry = prepare_data("livecodebench", out)["livecodebench"]
    assert calls == [("info", "livecodebench/code_generation_lite", None),
                     ("download", "livecodebench/code_generation_lite", "dataset", "0123abc", ("test*.jsonl",))]
    assert sorted(p.name for p in (out / "livecodebench").iterdir()) == ["test.jsonl", "test2.jsonl"]
    assert entry["revision"] == "0123abc" and entry["rows"] == 3 and set(entry["files"]) == {"test.jsonl",
                                                                                            "test2.jsonl"}
    assert [p.question_id for p in lcb.load_problems(out / "livecodebench")] == ["s1", "c1", "s2"]
    assert json.loads((out / "MANIFEST.json").read_text())["livecodebench"] == entry


def test_malformed_livecodebench_release_keeps_the_previous_copy(monkeypatch, tmp_path):
    out = tmp_path / "data"
    (out / "livecodebench").mkdir(parents=True)
    (out / "livecodebench" / "test.jsonl").write_text(json.dumps(stdin_row()) + "\n")
    bad = stdin_row("s9")
    del bad["question_content"]
    fake_hub(monkeypatch, {"test.jsonl": json.dumps(bad) + "\n"})
    with pytest.raises(ValueError, match="test.jsonl:1.*question_content"):
        prepare_data("livecodebench", out)
    assert [p.question_id for p in lcb.load_problems(out / "livecodebench")] == ["s1"]  # untouched
    assert [p.name for p in out.iterdir()] == ["livecodebench"]  # no staging folder, no manifest entry


def test_unknown_code_benchmark_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="known: mbpp_plus, livecodebench"):
        prepare.prepare_data("humaneval", tmp_path)
