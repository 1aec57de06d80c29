"""bench/offline_wheelhouse.py: what to carry to an offline GPU host, the parts, and their reassembly (no network:
the end-to-end case resolves against a local folder of tiny wheels made here)."""
import hashlib
import json
import math
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "offline_wheelhouse.py"


@pytest.fixture(scope="module")
def wh(bench_script):
    return bench_script("offline_wheelhouse")


def make_wheel(directory: Path, name: str, version: str, requires=(), body: str = "", files=None) -> Path:
    dist = f"{name.replace('-', '_')}-{version}"
    path = directory / f"{dist}-py3-none-any.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{name.replace('-', '_')}/__init__.py", body or f"__version__ = {version!r}\n")
        for arcname, data in (files or {}).items():
            whl.writestr(arcname, data)
        whl.writestr(f"{dist}.dist-info/METADATA", meta)
        whl.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                "Tag: py3-none-any\n")
        whl.writestr(f"{dist}.dist-info/RECORD", "")
    return path


def item(name, version, requires=(), extras=None):
    return {"metadata": {"name": name, "version": version, "requires_dist": list(requires)},
            "download_info": {"url": f"https://example.invalid/{name}-{version}-py3-none-any.whl"},
            "requested_extras": extras}


# ---------------------------------------------------------------------------------------------- host file

def test_host_file_lines(wh, tmp_path):
    path = tmp_path / "host.txt"
    path.write_text("# comment\nTorch==2.11.0+cu130\n\nnumpy == 2.5.2  # pinned\nPyYAML\n")
    assert wh.read_host(path) == {"torch": "2.11.0+cu130", "numpy": "2.5.2", "pyyaml": None}
    path.write_text("numpy==2.5.2\nnot a requirement line\n")
    with pytest.raises(wh.WheelhouseError, match=r"host.txt:2: .*'not a requirement line'"):
        wh.read_host(path)


def test_shipped_host_file_parses_and_pins_the_fixed_packages(wh):
    host = wh.read_host(SCRIPT.parent / "hosts" / "nvidia-h200.txt")
    assert host["torch"] == "2.11.0+cu130"  # the CUDA build vllm 0.24.0's wheel links (libcudart.so.13)
    assert all(host.get(name) for name in wh.FIXED)


# ---------------------------------------------------------------------------------------------- selection

def test_selection_keeps_what_the_host_has_in_an_accepted_version(wh):
    report = {"install": [
        item("app", "1.0", ["lib>=2", "old<3", "vague", "torch", "big-kernels", "fresh", "opt; extra == 'x'",
                            "winonly<1; sys_platform == 'win32'", "py2only<1; python_version < '3'"]),
        item("lib", "2.1"), item("old", "2.0"), item("vague", "9.0"), item("torch", "2.11.0+cu130"),
        item("big-kernels", "1.0"), item("fresh", "0.1"), item("winonly", "5.0"), item("py2only", "5.0"),
    ]}
    host = {"lib": "1.5", "old": "2.0", "vague": None, "torch": "2.11.0+cu130", "winonly": "5.0", "py2only": "5.0"}
    chosen = wh.select(report, host, fixed={"torch"}, skip=["big-*"], top_level=["app"], python_version="3.12")
    names = {key: sorted(e["name"] for e in entries) for key, entries in chosen.items()}
    # lib: the host's 1.5 fails lib>=2; fresh: absent. A marker that is false on the host places no requirement,
    # and a package that nothing the host runs requires (winonly, py2only) is not carried.
    assert names == {"carry": ["app", "fresh", "lib"], "on_host": ["old", "torch", "vague"],
                     "skipped": ["big-kernels", "py2only", "winonly"]}
    lib = next(e for e in chosen["carry"] if e["name"] == "lib")
    assert "1.5" in lib["why"] and "lib>=2" in lib["why"]


def test_what_only_skipped_packages_need_is_neither_carried_nor_binding(wh):
    # pip resolves a skipped kernel package's needs too: its bindings (absent from the host) and a newer version of a
    # host package. Neither is carried; what the kept packages need still is.
    report = {"install": [item("app", "1.0", ["kernels", "core>=1"]), item("kernels", "1.0", ["bindings", "core>=2"]),
                          item("bindings", "13.4", ["core>=2"]), item("core", "2.0")]}
    chosen = wh.select(report, {"core": "1.5"}, fixed=set(), skip=["kernels"], top_level=["app"],
                       python_version="3.12")
    where = {e["name"]: (key, e["why"]) for key, entries in chosen.items() for e in entries}
    assert where["bindings"] == ("skipped", "not needed: only skipped packages (or other platforms) ask for it")
    assert where["core"][0] == "on_host" and where["kernels"] == ("skipped", "--skip")
    assert where["app"][0] == "carry"
    report["install"][0]["metadata"]["requires_dist"] = ["kernels", "core>=2"]  # a kept package's need binds
    chosen = wh.select(report, {"core": "1.5"}, fixed=set(), skip=["kernels"], top_level=["app"],
                       python_version="3.12")
    assert [e["name"] for e in chosen["carry"]] == ["app", "core"]


def test_an_extra_counts_only_where_it_was_asked_for(wh):
    report = {"install": [item("app", "1.0", ["lib>=2; extra == 'gpu'"], extras=["gpu"]),
                          item("tool", "1.0", ["lib>=3; extra == 'docs'", "lib"]), item("lib", "2.5")]}

    def lib(host_version):
        chosen = wh.select(report, {"lib": host_version, "app": "1.0", "tool": "1.0"}, fixed=set(), skip=[],
                           top_level=["app[gpu]", "tool"], python_version="3.12")
        return [(key, e["why"]) for key, entries in chosen.items() for e in entries if e["name"] == "lib"][0]

    where, why = lib("1.5")  # app[gpu] was asked for: its lib>=2 applies
    assert where == "carry" and "lib>=2" in why and "lib>=3" not in why
    assert lib("2.1")[0] == "on_host"  # tool[docs] was not asked for: its lib>=3 does not apply


def test_default_requirements_are_the_gpu_stack(wh):
    requirements = wh.default_requirements()
    assert "verl==0.9.1" in requirements and "vllm==0.24.0" in requirements and "TransferQueue==0.1.11" in requirements
    assert not [r for r in requirements if r.lower().startswith(("snakemake", "matplotlib"))]
    assert not [r for r in requirements if r.lower().startswith("lm-eval")]  # the eval extra only when asked


def test_the_eval_extra_adds_the_graders_for_the_evaluation_smoke(wh):
    requirements = wh.default_requirements(extras=("verl", "eval"))
    assert {"verl==0.9.1", "vllm==0.24.0", "lm-eval==0.4.13", "math-verify==0.9.0", "evalplus==0.3.1"} <= \
        set(requirements)
    with pytest.raises(wh.WheelhouseError, match="no extra evaluation in pyproject.toml; known: cpu, eval"):
        wh.default_requirements(extras=("evaluation",))


# ---------------------------------------------------------------------------------------------- parts

def here_target(wh):
    """pip's host-selection arguments for a host like this machine (the tests' wheels are pure Python)."""
    return wh.target_args(f"{sys.version_info.major}.{sys.version_info.minor}", "2.17")


def real_wheels(directory: Path, payloads: dict[str, bytes]):
    """One wheel per package, each holding ``pkg/__init__.py`` and its payload as ``pkg/blob.bin``."""
    directory.mkdir(parents=True, exist_ok=True)
    wheels = []
    for name, payload in payloads.items():
        path = make_wheel(directory, name, "1.0", files={f"{name}/blob.bin": payload})
        wheels.append({"name": name, "version": "1.0", "file": path.name,
                       "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size,
                       "why": "test"})
    return wheels


def noise(size: int, seed: int) -> bytes:
    """Incompressible bytes, so that the xz archive is about as large as the payload."""
    return b"".join(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(size // 32 + 1))[:size]


def test_parts_are_bounded_and_unpack_to_the_installed_files(wh, tmp_path):
    payloads = {"alpha": noise(5000, 0), "beta": b"x", "gamma": noise(12345, 1)}
    wheels = real_wheels(tmp_path / "wheels", payloads)
    out = tmp_path / "parts"
    manifest = wh.pack(tmp_path / "wheels", wheels, out, part_bytes=4096, manifest={"note": "kept"},
                       target=here_target(wh))
    archive_bytes = manifest["archive"]["bytes"]
    assert archive_bytes > 5000 + 12345  # the noise does not compress
    assert len(manifest["parts"]) == math.ceil(archive_bytes / 4096)
    assert all(p["bytes"] <= 4096 for p in manifest["parts"])
    # equal parts (the last shorter by less than the number of parts), not full parts and a small remainder
    sizes = [p["bytes"] for p in manifest["parts"]]
    assert max(sizes) - min(sizes) < len(sizes) and max(sizes) == math.ceil(archive_bytes / len(sizes))
    assert sum(p["bytes"] for p in manifest["parts"]) == archive_bytes
    on_disk = json.loads((out / "MANIFEST.json").read_text())
    assert on_disk["note"] == "kept" and sorted(p.name for p in out.iterdir()) == sorted(
        ["MANIFEST.json"] + [p["file"] for p in manifest["parts"]])
    site = tmp_path / "site"
    wh.unpack(out, site)
    for name, payload in payloads.items():
        assert (site / name / "blob.bin").read_bytes() == payload
        assert (site / f"{name}-1.0.dist-info" / "METADATA").is_file()  # installed, not just unzipped wheels
    assert not list(site.rglob("__pycache__"))


def test_install_runs_on_a_host_with_nothing_but_the_standard_library(wh, tmp_path):
    # on the GPU host `install` runs before the parts are unpacked: no site-packages at all (python -S), so
    # neither the script nor what it imports may need a third-party package
    wheels = real_wheels(tmp_path / "wheels", {"alpha": noise(3000, 3)})
    wh.pack(tmp_path / "wheels", wheels, tmp_path / "parts", part_bytes=1024, manifest={}, target=here_target(wh))
    proc = subprocess.run([sys.executable, "-S", str(SCRIPT), "install", "--parts", str(tmp_path / "parts"),
                           "--target", str(tmp_path / "site")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "site" / "alpha" / "blob.bin").is_file()


def test_dropped_paths_are_left_out_and_listed(wh, tmp_path):
    wheels = real_wheels(tmp_path / "wheels", {"alpha": b"kernel", "beta": b"kept"})
    manifest = wh.pack(tmp_path / "wheels", wheels, tmp_path / "parts", part_bytes=1 << 20, manifest={},
                       target=here_target(wh), drop=["alpha/blob.bin", "nothing/*"])
    assert manifest["dropped"] == ["alpha/blob.bin"]
    wh.unpack(tmp_path / "parts", tmp_path / "site")
    assert not (tmp_path / "site" / "alpha" / "blob.bin").exists()
    assert (tmp_path / "site" / "alpha" / "__init__.py").is_file()
    assert (tmp_path / "site" / "beta" / "blob.bin").read_bytes() == b"kept"


def test_a_missing_or_damaged_part_is_named(wh, tmp_path):
    wheels = real_wheels(tmp_path / "wheels", {"alpha": noise(3000, 2)})
    out = tmp_path / "parts"
    wh.pack(tmp_path / "wheels", wheels, out, part_bytes=1024, manifest={}, target=here_target(wh))
    (out / "part-001").rename(tmp_path / "aside")
    with pytest.raises(wh.WheelhouseError, match=r"1 of \d+ parts missing: part-001"):
        wh.unpack(out, tmp_path / "u1")
    (tmp_path / "aside").rename(out / "part-001")
    data = bytearray((out / "part-002").read_bytes())
    data[10] ^= 0xFF
    (out / "part-002").write_bytes(bytes(data))
    with pytest.raises(wh.WheelhouseError, match=r"damaged parts .*part-002"):
        wh.unpack(out, tmp_path / "u2")
    (out / "MANIFEST.json").unlink()
    with pytest.raises(wh.WheelhouseError, match=r"MANIFEST.json: no manifest"):
        wh.unpack(out, tmp_path / "u3")
    assert not any((tmp_path / u).exists() for u in ("u1", "u2", "u3"))


@pytest.mark.parametrize("text", ["{", '{"parts": 3}', "[]", '{"parts": [], "archive": {"sha256": "0"}}',
                                  '{"parts": [{"file": "part-000"}], "archive": {"sha256": "0"}}'])
def test_a_manifest_that_is_not_builds_is_named(wh, tmp_path, text):
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "MANIFEST.json").write_text(text)
    with pytest.raises(wh.WheelhouseError, match=r"parts/MANIFEST.json: not the manifest `build` writes"):
        wh.unpack(parts, tmp_path / "u")
    assert not (tmp_path / "u").exists()


@pytest.mark.parametrize("entry", ["../escape.txt", "link-out"])
def test_an_archive_entry_leaving_the_target_is_refused(wh, tmp_path, entry):
    wheels = real_wheels(tmp_path / "wheels", {"alpha": b"a"})
    out = tmp_path / "parts"
    manifest = wh.pack(tmp_path / "wheels", wheels, out, part_bytes=1 << 20, manifest={}, target=here_target(wh))
    evil = tmp_path / "evil.tar.xz"
    with tarfile.open(evil, "w:xz") as tar:
        (tmp_path / "ok.txt").write_text("fine")
        tar.add(tmp_path / "ok.txt", arcname="ok.txt")
        if entry == "link-out":
            link = tarfile.TarInfo("link-out")
            link.type, link.linkname = tarfile.SYMTYPE, "../../outside"
            tar.addfile(link)
        else:
            tar.add(tmp_path / "ok.txt", arcname=entry)
    data = evil.read_bytes()
    (out / "part-000").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    manifest["parts"] = [{"file": "part-000", "bytes": len(data), "sha256": digest}]
    manifest["archive"] = {"file": "site.tar.xz", "bytes": len(data), "sha256": digest}
    (out / "MANIFEST.json").write_text(json.dumps(manifest))
    site = tmp_path / "deep" / "site"
    with pytest.raises(wh.WheelhouseError, match=rf"entries outside the target or not plain: {entry}"):
        wh.unpack(out, site)
    assert not site.exists() and not (tmp_path / "deep" / "escape.txt").exists()


def test_a_failed_pack_leaves_the_previous_parts(wh, tmp_path):
    wheels = real_wheels(tmp_path / "wheels", {"alpha": b"a"})
    out = tmp_path / "parts"
    wh.pack(tmp_path / "wheels", wheels, out, part_bytes=1 << 20, manifest={"run": 1}, target=here_target(wh))
    gone = wheels + [{"name": "absent", "version": "1", "file": "absent-1-py3-none-any.whl", "sha256": "0",
                      "bytes": 0, "why": ""}]
    with pytest.raises(wh.WheelhouseError, match="absent-1-py3-none-any.whl"):
        wh.pack(tmp_path / "wheels", gone, out, part_bytes=1 << 20, manifest={"run": 2}, target=here_target(wh))
    assert json.loads((out / "MANIFEST.json").read_text())["run"] == 1


# ---------------------------------------------------------------------------------------------- end to end (pip)

def test_build_then_install_against_a_local_index(wh, tmp_path):
    index = tmp_path / "index"
    index.mkdir()
    make_wheel(index, "app", "1.0", ["lib>=2", "kept", "heavyfixed==1.0", "optional-big"])
    make_wheel(index, "lib", "1.0")
    make_wheel(index, "lib", "2.0")
    make_wheel(index, "kept", "3.0")
    make_wheel(index, "heavyfixed", "1.0", ["huge-dep"])  # the host's build stands in for it: huge-dep never comes
    make_wheel(index, "huge-dep", "1.0")
    make_wheel(index, "optional-big", "1.0")
    host = tmp_path / "host.txt"
    host.write_text("lib==1.0\nkept==3.0\nheavyfixed==1.0\n")
    out = tmp_path / "parts"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    rc = wh.main(["build", "--host", str(host), "--out", str(out), "--part-mib", "0.001", "--python-version", version,
                  "--fixed", "heavyfixed", "--skip", "optional-*", "--build", "--pip-arg=--no-index",
                  f"--pip-arg=--find-links={index}", "app"])
    assert rc == 0
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert sorted((w["name"], w["version"]) for w in manifest["wheels"]) == [("app", "1.0"), ("lib", "2.0")]
    assert sorted(e["name"] for e in manifest["on_host"]) == ["heavyfixed", "kept"]
    assert [e["name"] for e in manifest["skipped"]] == ["optional-big"]
    assert len(manifest["parts"]) > 1  # 1 KiB parts: the tar is split
    target = tmp_path / "site"
    assert wh.main(["install", "--parts", str(out), "--target", str(target)]) == 0
    proc = subprocess.run([sys.executable, "-c", "import app, lib; print(app.__version__, lib.__version__)"],
                          env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert proc.stdout.split() == ["1.0", "2.0"], proc.stderr


def test_a_fixed_package_in_the_wrong_version_stops_the_build(wh, tmp_path, capsys):
    index = tmp_path / "index"
    index.mkdir()
    make_wheel(index, "app", "1.0", ["heavyfixed==2.0"])
    make_wheel(index, "heavyfixed", "2.0")
    host = tmp_path / "host.txt"
    host.write_text("heavyfixed==1.0\n")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    rc = wh.main(["build", "--host", str(host), "--out", str(tmp_path / "parts"), "--python-version", version,
                  "--fixed", "heavyfixed", "--build", "--pip-arg=--no-index", f"--pip-arg=--find-links={index}", "app"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "pip failed to resolve" in err and "heavyfixed" in err
    assert not (tmp_path / "parts").exists()


def test_glibc_gives_every_tag_at_or_below_it(wh):
    tags = wh.manylinux_tags("2.28")
    assert tags[:2] == ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64"] and "manylinux_2_17_x86_64" in tags
    assert "manylinux_2_29_x86_64" not in tags and "manylinux2014_x86_64" in tags
    with pytest.raises(wh.WheelhouseError, match="--glibc must be 2.N"):
        wh.manylinux_tags("2.x")
