"""Carry a Python stack to a GPU host that reaches no package index, in parts small enough to transfer.

Here, with the index (``build``):

    python bench/offline_wheelhouse.py build --host bench/hosts/nvidia-h200.txt --out .whl

resolves the GPU stack (default: this project's ``verl`` extra and runtime dependencies, plus environment.yml's
vLLM pin) for the host's Python and platform, keeps what the host already has in a version that every
requirement accepts, leaves out the optional packages named by ``--skip``, downloads the remaining wheels,
installs them here for the host (pip ``--target`` with the host's Python and platform tags), removes the installed
files named by ``--drop`` (kernels and tools the host never loads), and packs the folder as one xz-compressed tar in
parts of at most ``--part-mib`` MiB plus ``MANIFEST.json`` (what was carried, left on the host, skipped or dropped,
and why; the sha256 of every wheel, the archive and every part). Installed and xz-compressed, the H200 stack takes
about half the bytes of its wheels, whose kernels are only deflated: fewer parts, fewer calls to a host that takes
64 MiB a call.

On the host (``install``; the standard library only):

    python3 bench/offline_wheelhouse.py install --parts STAGE_DIR --target /tmp/site
    export PYTHONPATH=/tmp/site

checks every part against the manifest (a missing or damaged part is named), reassembles the archive, checks it,
and unpacks it into the target; the host's own packages stay where they are and the carried ones come first on
PYTHONPATH.

The host file lists what the host has, one ``name==version`` (or a bare ``name`` when the version is unknown) per
line. The ``--fixed`` packages (default: the CUDA build of torch and its companions) are taken as the host has them
and never replaced: the resolution fails, naming them, if a requirement needs another version. A bare name is
assumed to satisfy every requirement.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # mgrpo from this checkout: on the host it travels with the repo, uninstalled
from mgrpo.atomic import atomic_dir  # noqa: E402  (standard library only: `install` runs before anything is)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

MANIFEST = "MANIFEST.json"
ARCHIVE = "site.tar.xz"
PART_PREFIX = "part-"
FIXED = ("torch", "torchvision", "torchaudio", "triton")
# Not needed on a GPU host that only trains (the workflow and figures run where Snakemake runs).
NOT_FOR_GPU_HOST = ("snakemake", "snakemake-executor-plugin-slurm", "matplotlib")
# Left out by default (~1 GiB of the ~1.4 GiB the host lacks): what vLLM 0.24.0 imports only for features the smoke
# test and the paper's runs do not use (FlashInfer, MLA / Mamba / FP4 kernels and their CUDA compilers, audio and
# video, an outlines backend), and tools rather than libraries. Checked on 2026-12-01 by importing vLLM's engine,
# worker and OpenAI server, verl's trainer, workers and vLLM server, and mgrpo's verl backend under Python 3.12 with
# PyPI's torch 2.11.0 and this wheelhouse (xgrammar and llguidance are imported there, so they are carried).
# numpy: the host's stays (numba's and mistral-common's upper bounds concern paths not taken here; a second numpy
# under the host's compiled packages is the larger risk).
SKIP = ("numpy", "flashinfer-cubin", "flashinfer-python", "tokenspeed-triton", "tokenspeed-mla", "tilelang",
        "quack-kernels", "humming-kernels", "nvidia-cutlass-dsl*", "cuda-tile", "nvidia-cuda-tileiras",
        "nvidia-cuda-nvcc", "nvidia-nvvm", "nvidia-cuda-crt", "nvidia-cuda-cccl", "outlines-core", "av", "torchcodec",
        "z3-solver", "wandb", "tensorboard", "tensorboard-data-server", "py-spy", "virtualenv")
# Sdist-only packages built here into pure-Python wheels (hydra-core needs antlr 4.9.*, which has no wheel).
BUILD = ("antlr4-python3-runtime==4.9.3",)
# Files of the installed stack left out by default, as globs under the site folder: what a Hopper host running a
# dense model never loads. FlashAttention-2's kernels (vLLM takes FlashAttention-3 on compute capability 9.0; 78 MiB
# compressed; keep them for an older GPU with --drop and the rest of this list), vLLM's Rust front end (used only
# with VLLM_RUST_FRONTEND_PATH), Ray's Java workers, and static libraries for C++ builds against xgrammar.
DROP = ("vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so", "vllm/vllm-rs", "ray/jars", "xgrammar/lib/*.a")
GLIBC = "2.39"  # the host's C library (Ubuntu 24.04, whose Python is the 3.12 the H200 machine runs)
NOT_NEEDED = "not needed: only skipped packages (or other platforms) ask for it"
NAME_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==\s*(\S+))?$")


class WheelhouseError(RuntimeError):
    """Bad input or a failed step; the message names the file, package or part."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def is_skipped(name: str, skip: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, canonical(pattern)) for pattern in skip)


# ---------------------------------------------------------------------------------------------- what to carry

def read_host(path: Path) -> dict[str, str | None]:
    """``{canonical name: version or None}`` from a host file (pip-freeze lines; ``#`` comments)."""
    host = {}
    for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = NAME_LINE.match(line)
        if not match:
            raise WheelhouseError(f"{path}:{number}: expected 'name' or 'name==version', got {raw.strip()!r}")
        host[canonical(match.group(1))] = match.group(2)
    return host


def default_requirements(repo: Path = REPO, extras: tuple[str, ...] = ("verl",)) -> list[str]:
    """The project's runtime dependencies and ``extras`` (default: the ``verl`` extra; ``eval`` adds lm-eval,
    math-verify and evalplus for bench/gpu_eval_smoke.py), less NOT_FOR_GPU_HOST, plus environment.yml's vllm."""
    import yaml
    from packaging.requirements import Requirement

    def name(requirement: str) -> str:
        return canonical(Requirement(requirement).name)

    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    unknown = [e for e in extras if e not in project["optional-dependencies"]]
    if unknown:
        raise WheelhouseError(f"no extra {', '.join(unknown)} in pyproject.toml; known: "
                              f"{', '.join(project['optional-dependencies'])}")
    wanted = list(project["dependencies"]) + [r for e in extras for r in project["optional-dependencies"][e]]
    env = yaml.safe_load((repo / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    vllm = [line for line in pip if not line.startswith("-") and name(line) == "vllm"]
    return [r for r in wanted if name(r) not in NOT_FOR_GPU_HOST] + vllm


def target_environment(python_version: str) -> dict[str, str]:
    """Marker values of a CPython Linux x86-64 host (for the requirements' environment markers)."""
    return {"python_version": python_version, "python_full_version": f"{python_version}.0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"}


def requirements_on(report: dict, top_level: list[str], python_version: str,
                    reached: dict[str, set[str]] | None = None) -> dict[str, list]:
    """``{canonical name: [Requirement, ...]}``: every requirement that the top level and the resolved packages (only
    those in ``reached``, with the extras asked of them there) place on a package, with environment markers
    evaluated for the host (an extra counts where it was asked for)."""
    from packaging.requirements import Requirement

    env = target_environment(python_version)
    on: dict[str, list] = {}

    def add(text: str, extras: set[str]) -> None:
        req = Requirement(text)
        if req.marker is not None and not any(req.marker.evaluate(env | {"extra": e}) for e in (extras or {""})):
            return
        on.setdefault(canonical(req.name), []).append(req)

    for text in top_level:
        add(text, set())
    for item in report["install"]:
        name = canonical(item["metadata"]["name"])
        if reached is not None and name not in reached:
            continue
        extras = set(item.get("requested_extras") or []) | (reached or {}).get(name, set())
        for text in item["metadata"].get("requires_dist") or []:
            add(text, extras)
    return on


def needed(report: dict, top_level: list[str], skip: list[str], python_version: str) -> dict[str, set[str]]:
    """``{name: extras asked of it}`` for the resolved packages reachable from the top level without passing
    through a skipped one: what the host runs. pip resolves the skipped packages' own needs too (cuda-python for a
    skipped kernel package, say), and carrying those would replace host packages for nothing. Extras are followed
    along the way (``ray[default]`` asked by verl), which pip's report records for the top level only."""
    from packaging.requirements import Requirement

    env = target_environment(python_version)
    items = {canonical(item["metadata"]["name"]): item for item in report["install"]}
    reached: dict[str, set[str]] = {}
    stack = [(Requirement(text), set()) for text in top_level]
    while stack:
        req, asker_extras = stack.pop()
        name = canonical(req.name)
        if req.marker is not None and not any(req.marker.evaluate(env | {"extra": e})
                                              for e in (asker_extras or {""})):
            continue
        if name not in items or is_skipped(name, skip):
            continue
        if name in reached and set(req.extras) <= reached[name]:
            continue
        extras = reached.setdefault(name, set())
        extras |= set(req.extras) | set(items[name].get("requested_extras") or [])
        stack += [(Requirement(text), set(extras)) for text in items[name]["metadata"].get("requires_dist") or []]
    return reached


def select(report: dict, host: dict[str, str | None], fixed: set[str], skip: list[str], top_level: list[str],
           python_version: str) -> dict[str, list[dict]]:
    """Split pip's resolution into what to carry, what the host has, and what is skipped (each with the reason)."""
    from packaging.version import Version

    reached = needed(report, top_level, skip, python_version)
    on = requirements_on(report, top_level, python_version, reached)
    chosen: dict[str, list[dict]] = {"carry": [], "on_host": [], "skipped": []}
    for item in report["install"]:
        name, version = canonical(item["metadata"]["name"]), item["metadata"]["version"]
        entry = {"name": name, "version": version, "url": item["download_info"]["url"],
                 "sha256": (item["download_info"].get("archive_info") or {}).get("hashes", {}).get("sha256")}
        if name in fixed:
            chosen["on_host"].append(entry | {"why": f"fixed: the host's {host.get(name)}"})
        elif is_skipped(name, skip):
            chosen["skipped"].append(entry | {"why": "--skip"})
        elif name not in reached:
            chosen["skipped"].append(entry | {"why": NOT_NEEDED})
        elif name in host and host[name] is None:
            chosen["on_host"].append(entry | {"why": "on the host (version unknown: assumed to satisfy)"})
        elif name in host:
            on_host = Version(host[name])
            rejecting = [str(r) for r in on.get(name, []) if not r.specifier.contains(on_host, prereleases=True)]
            if rejecting:
                why = f"the host's {host[name]} is rejected by {', '.join(rejecting)}"
                chosen["carry"].append(entry | {"why": why})
            else:
                chosen["on_host"].append(entry | {"why": f"the host's {host[name]} satisfies every requirement"})
        else:
            chosen["carry"].append(entry | {"why": "not on the host"})
    return chosen


# ---------------------------------------------------------------------------------------------- pip

def manylinux_tags(glibc: str) -> list[str]:
    """Every x86-64 wheel platform tag a host with this glibc accepts (pip matches tags exactly)."""
    match = re.fullmatch(r"2\.(\d+)", glibc)
    if not match or int(match.group(1)) < 17:
        raise WheelhouseError(f"--glibc must be 2.N with N >= 17 (got {glibc!r})")
    tags = [f"manylinux_2_{n}_x86_64" for n in range(int(match.group(1)), 16, -1)]
    return tags + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]


def target_args(python_version: str, glibc: str) -> list[str]:
    """pip's options selecting wheels for the host rather than for this machine."""
    args = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for platform in manylinux_tags(glibc):
        args += ["--platform", platform]
    return args


def run_pip(args: list[str], what: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr + proc.stdout).splitlines() if "WARNING: Location" not in line]
        raise WheelhouseError(f"pip failed to {what}:\n" + "\n".join(lines[-15:]))


def stub_wheel(directory: Path, name: str, version: str) -> Path:
    """A metadata-only wheel standing for a package the host has: the resolver takes it and follows no dependency."""
    dist = f"{re.sub(r'[-.]+', '_', name)}-{version}"
    path = directory / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        whl.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: offline_wheelhouse\n"
                                                "Root-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{dist}.dist-info/RECORD", "")
    return path


def resolve(requirements: list[str], host: dict[str, str | None], fixed: set[str], build: list[str],
            target: list[str], scratch: Path, pip_args: list[str]) -> dict:
    """pip's resolution for the host (``pip install --dry-run --report``), the fixed packages stubbed at the host's
    versions and the BUILD sdists built into local wheels."""
    links = scratch / "links"
    links.mkdir(parents=True, exist_ok=True)
    constraints = []
    for name in sorted(fixed):
        version = host.get(name)
        if not version:
            raise WheelhouseError(f"fixed package {name!r} needs a version in the host file (name==version)")
        # A local label makes the stub the only candidate the constraint admits (indexes carry no local versions).
        version = version if "+" in version else f"{version}+host"
        stub_wheel(links, name, version)
        constraints.append(f"{name}=={version}")
    (scratch / "constraints.txt").write_text("\n".join(constraints) + "\n")
    if build:
        run_pip(["wheel", "--no-deps", "--quiet", "-w", str(links), *pip_args, *build], f"build {', '.join(build)}")
    report = scratch / "report.json"
    run_pip(["install", "--dry-run", "--ignore-installed", "--report", str(report),
             "--target", str(scratch / "unused"), "--find-links", str(links), "-c", str(scratch / "constraints.txt"),
             *target, *pip_args, *requirements],
            f"resolve the requirements for the host with its fixed packages ({', '.join(constraints) or 'none'})")
    return json.loads(report.read_text())


def fetch(entries: list[dict], dest: Path, target: list[str], pip_args: list[str]) -> list[dict]:
    """Each carried wheel into ``dest`` (copied from a local link, else ``pip download`` of its URL), hash-checked."""
    dest.mkdir(parents=True, exist_ok=True)
    remote = [e["url"] for e in entries if not e["url"].startswith("file:")]
    if remote:
        run_pip(["download", "--no-deps", "--quiet", "-d", str(dest), *target, *pip_args, *remote],
                "download the wheels")
    wheels = []
    for entry in entries:
        filename = unquote(entry["url"].rsplit("/", 1)[-1].split("#", 1)[0])
        path = dest / filename
        if entry["url"].startswith("file:"):
            shutil.copyfile(unquote(urlparse(entry["url"]).path), path)
        digest = sha256(path)
        if entry.get("sha256") and digest != entry["sha256"]:
            raise WheelhouseError(f"{filename}: sha256 {digest} differs from the index's {entry['sha256']}")
        wheels.append({"name": entry["name"], "version": entry["version"], "file": filename, "sha256": digest,
                       "bytes": path.stat().st_size, "why": entry["why"]})
    return wheels


# ---------------------------------------------------------------------------------------------- parts

def install_site(wheel_dir: Path, wheels: list[dict], site: Path, target: list[str], drop: list[str],
                 pip_args: list[str]) -> list[str]:
    """The wheels installed here into ``site`` for the host (pip ``--target`` with the host's tags), then every path
    matching a ``drop`` glob (relative to ``site``) and every ``__pycache__`` removed; returns what was dropped."""
    run_pip(["install", "--no-deps", "--no-compile", "--quiet", "--target", str(site), *target, *pip_args,
             *(str(wheel_dir / w["file"]) for w in wheels)], f"install {len(wheels)} wheels for the host")
    dropped = []
    for pattern in [*drop, "**/__pycache__"]:
        for path in sorted(site.glob(pattern), reverse=True):  # deepest first: a match inside a dropped folder
            if path.exists() or path.is_symlink():
                if pattern != "**/__pycache__":
                    dropped.append(path.relative_to(site).as_posix())
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    return sorted(dropped)


def compress(site: Path, archive: Path) -> None:
    """``archive``: a tar of ``site``, xz-compressed (the installed kernels shrink ~40 % more than in their wheels).
    The xz program compresses on every core; the host needs only Python's lzma to read it."""
    xz = shutil.which("xz")
    if xz is None:
        raise WheelhouseError("the xz program is not installed here (Debian: apt-get install xz-utils)")
    with open(archive, "wb") as out:
        proc = subprocess.Popen([xz, "-9", "-T0", "-c"], stdin=subprocess.PIPE, stdout=out)
        with tarfile.open(fileobj=proc.stdin, mode="w|") as tar:
            for path in sorted(site.iterdir()):
                tar.add(path, arcname=path.name)
        proc.stdin.close()
        if proc.wait() != 0:
            raise WheelhouseError(f"xz failed (exit {proc.returncode}) compressing {site}")


def pack(wheel_dir: Path, wheels: list[dict], out: Path, part_bytes: int, manifest: dict, target: list[str],
         drop: list[str] = (), pip_args: list[str] = ()) -> dict:
    """``out/part-NNN`` (consecutive slices of one xz tar of the wheels installed for the host, less ``drop``: the
    fewest of at most ``part_bytes``, of equal size to a byte or so) + MANIFEST.json. ``out`` is written whole or not
    at all."""
    if part_bytes < 1:
        raise WheelhouseError(f"part size must be at least 1 byte (got {part_bytes})")
    with atomic_dir(out) as tmp, tempfile.TemporaryDirectory(prefix="site-") as site:
        dropped = install_site(wheel_dir, wheels, Path(site), target, list(drop), list(pip_args))
        archive = tmp / ARCHIVE
        compress(Path(site), archive)
        parts = []
        # as few parts as part_bytes allows, of equal size: each call that carries one then has the same room
        # left beside it for the tree (a full part beside a small last one leaves the full ones almost none)
        size = archive.stat().st_size
        slice_bytes = -(-size // max(1, -(-size // part_bytes)))
        with open(archive, "rb") as handle:
            for index, block in enumerate(iter(lambda: handle.read(slice_bytes), b"")):
                part = tmp / f"{PART_PREFIX}{index:03d}"
                part.write_bytes(block)
                parts.append({"file": part.name, "bytes": len(block), "sha256": hashlib.sha256(block).hexdigest()})
        manifest = manifest | {"wheels": wheels, "dropped": dropped,
                               "archive": {"file": ARCHIVE, "bytes": archive.stat().st_size,
                                           "sha256": sha256(archive)}, "parts": parts}
        archive.unlink()
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(path: Path) -> dict:
    """The manifest ``build`` wrote: {"parts": [{"file", "sha256", ...}], "archive": {"sha256", ...}, ...}."""
    try:
        manifest = json.loads(path.read_text())
        parts, archive = manifest["parts"], manifest["archive"]
        if not (isinstance(parts, list) and parts and isinstance(archive, dict) and "sha256" in archive
                and all(isinstance(p, dict) and {"file", "sha256"} <= set(p) for p in parts)):
            raise TypeError
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError):
        raise WheelhouseError(f"{path}: not the manifest `build` writes (JSON with the parts' and archive's "
                              "sha256): carry the one built with the parts") from None
    return manifest


def unpack(parts_dir: Path, target: Path) -> dict:
    """Check every part, reassemble the archive and unpack it into ``target`` (the folder for PYTHONPATH); an entry
    that would land outside ``target`` or is no plain file, folder or inside link is refused, naming it, before
    anything is written. Returns the manifest."""
    manifest_path = parts_dir / MANIFEST
    if not manifest_path.is_file():
        raise WheelhouseError(f"{manifest_path}: no manifest (carry it with the parts)")
    manifest = read_manifest(manifest_path)
    missing = [p["file"] for p in manifest["parts"] if not (parts_dir / p["file"]).is_file()]
    if missing:
        raise WheelhouseError(f"{parts_dir}: {len(missing)} of {len(manifest['parts'])} parts missing: "
                              f"{', '.join(missing)}")
    damaged = [p["file"] for p in manifest["parts"] if sha256(parts_dir / p["file"]) != p["sha256"]]
    if damaged:
        raise WheelhouseError(f"{parts_dir}: damaged parts (sha256 differs from {MANIFEST}): {', '.join(damaged)}")
    with tempfile.TemporaryDirectory(prefix="wheelhouse-") as scratch:
        archive = Path(scratch) / ARCHIVE
        with open(archive, "wb") as out:
            for part in manifest["parts"]:
                with open(parts_dir / part["file"], "rb") as handle:
                    shutil.copyfileobj(handle, out)
        if sha256(archive) != manifest["archive"]["sha256"]:
            raise WheelhouseError(f"{archive}: the reassembled archive's sha256 differs from {MANIFEST}")
        with tarfile.open(archive, "r:xz") as tar:
            members = tar.getmembers()
            bad = [m.name for m in members if not inside(target, m)]
            if bad:
                raise WheelhouseError(f"{ARCHIVE}: entries outside the target or not plain: {', '.join(bad[:5])}")
            target.mkdir(parents=True, exist_ok=True)
            tar.extractall(target, members=members, filter="data")  # and the standard library's own guard
    return manifest


def inside(target: Path, member: tarfile.TarInfo) -> bool:
    """A plain file, folder or symbolic link whose path (and a link's destination) stays inside ``target``."""
    root = target.resolve()
    path = (root / member.name).resolve()
    if not path.is_relative_to(root) or not (member.isfile() or member.isdir() or member.issym()):
        return False
    return not member.issym() or (path.parent / member.linkname).resolve().is_relative_to(root)


# ---------------------------------------------------------------------------------------------- commands

def build(args) -> int:
    host = read_host(args.host)
    fixed = {canonical(n) for n in args.fixed}
    requirements = args.requirements or default_requirements(extras=tuple(args.extra or ["verl"]))
    target = target_args(args.python_version, args.glibc)
    with tempfile.TemporaryDirectory(prefix="wheelhouse-") as scratch:
        scratch = Path(scratch)
        report = resolve(requirements, host, fixed, list(args.build), target, scratch, args.pip_arg)
        chosen = select(report, host, fixed, list(args.skip), requirements, args.python_version)
        wheels = fetch(chosen["carry"], scratch / "wheels", target, args.pip_arg)
        manifest = {"requirements": requirements, "host_file": str(args.host), "python_version": args.python_version,
                    "glibc": args.glibc, "fixed": sorted(fixed), "skip": list(args.skip), "drop": list(args.drop),
                    "on_host": chosen["on_host"], "skipped": chosen["skipped"]}
        manifest = pack(scratch / "wheels", wheels, args.out, int(args.part_mib * 2**20), manifest, target,
                        args.drop, args.pip_arg)
    mib, packed = sum(w["bytes"] for w in wheels) / 2**20, manifest["archive"]["bytes"] / 2**20
    print(f"{len(wheels)} wheels ({mib:.0f} MiB), installed and compressed to {packed:.0f} MiB in "
          f"{len(manifest['parts'])} parts under {args.out}; "
          f"{len(chosen['on_host'])} left to the host, {len(chosen['skipped'])} skipped")
    for wheel in sorted(wheels, key=lambda w: -w["bytes"])[:10]:
        print(f"  {wheel['bytes'] / 2**20:7.1f} MiB  {wheel['name']}=={wheel['version']}  ({wheel['why']})")
    return 0


def install(args) -> int:
    manifest = unpack(args.parts, args.target)
    print(f"installed {len(manifest['wheels'])} packages into {args.target}: export PYTHONPATH={args.target}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="resolve, download, install and pack what a host lacks (needs the index)")
    b.add_argument("--host", type=Path, required=True, help="what the host has: name==version or name per line")
    b.add_argument("--out", type=Path, required=True, help="folder for the parts and MANIFEST.json (replaced)")
    b.add_argument("--part-mib", type=float, default=62.0,
                   help="largest part, MiB (default 62: a part and the ~1-MiB tree fit a 64-MiB device call)")
    b.add_argument("--python-version", default="3.12", help="the host's Python (default 3.12)")
    b.add_argument("--glibc", default=GLIBC, help=f"the host's glibc, 2.N (`ldd --version`; default {GLIBC})")
    b.add_argument("--fixed", nargs="*", default=list(FIXED), help="host packages never replaced")
    b.add_argument("--skip", nargs="*", default=list(SKIP), help="packages (globs) left out")
    b.add_argument("--drop", nargs="*", default=list(DROP), help="installed paths (globs) left out")
    b.add_argument("--build", nargs="*", default=list(BUILD), help="sdist-only packages to build into wheels here")
    b.add_argument("--pip-arg", action="append", default=[], help="extra pip argument (e.g. --no-index)")
    b.add_argument("--extra", action="append", default=None,
                   help="the project's extras to carry (repeatable; default: verl; add eval for gpu_eval_smoke.py)")
    b.add_argument("requirements", nargs="*", help="default: the project's GPU stack")
    b.set_defaults(handler=build)
    i = commands.add_parser("install", help="check, reassemble and unpack the parts (on the host)")
    i.add_argument("--parts", type=Path, required=True, help="folder holding every part and MANIFEST.json")
    i.add_argument("--target", type=Path, required=True, help="folder to unpack into (put it on PYTHONPATH)")
    i.set_defaults(handler=install)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (WheelhouseError, FileNotFoundError) as err:
        print(f"offline_wheelhouse {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
