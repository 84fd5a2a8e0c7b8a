#!/usr/bin/env python3
"""The aarch64 test lane: a Raspberry Pi OS-like arm64 userland under qemu-user, and edgert's Pi tests run in it.

What a Pi user has is Debian 12 (bookworm) arm64 with Python 3.11 and one of two runtimes. This lane builds that
on an x86-64 Debian-like host and runs the tests that matter to such a user there:

- an arm64 Debian 12 root filesystem made by ``mmdebstrap`` (cached: about 12 minutes to build);
- two venvs inside it, cached: ``tflite-runtime`` (tflite-runtime 2.14 + numpy<2, the frozen runtime of many Pi
  images; edgert installed ``--no-deps`` as the Makefile's Pi venv does) and ``ai-edge-litert`` (``pip install
  edgert[camera]``: ai-edge-litert + numpy 2 + OpenCV);
- on every run: edgert is installed afresh from the clone into both venvs, a smoke run of the installed package
  from outside the clone (import without TensorFlow, ``edgert inspect``/``predict``/``bench``), then :data:`LANE_TESTS`.

Emulation pitfalls this lane handles (each changes results silently or crashes; see issue 14):

- qemu 7.2 shows the guest the host's x86 ``/proc/cpuinfo`` and ai-edge-litert then segfaults in ``Interpreter()``:
  an Arm cpuinfo of the pinned CPU is bind-mounted over it;
- qemu's default CPU advertises SVE2/SME and qemu 7.2 computes XNNPACK's SME kernels wrongly: the CPU is pinned
  with ``QEMU_CPU`` (``cortex-a72``, a Pi 4, by default; ``cortex-a76`` is a Pi 5);
- binfmt must be registered for the isolated child that safe loading starts ("Exec format error" otherwise).

Needs root (chroot, mounts) and a Debian-like host for the packages (``qemu-user-static mmdebstrap
binfmt-support``, installed when missing). When it cannot run it says why in one line and exits 0, or 1 under
``CI=true`` so CI never passes by skipping.

Usage: python3 tools/aarch64_lane.py [--cpu cortex-a72] [--venv tflite-runtime|ai-edge-litert] [--jobs 2] [--bench]
[-- pytest args...]. The two venvs run side by side on two cores (each is one emulated process), their outputs
printed whole as each ends.

Cache: ``$EDGERT_AARCH64_CACHE`` (default ``~/.cache/edgert/aarch64``), keyed by the recipe: a changed package list
rebuilds what it changes. ``--rebuild`` starts over.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

import tomllib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from edgert.files import atomic_write, exclusive_lock  # noqa: E402  (stdlib only: the lane runs on the host's python3)

SHARED = Path(os.environ.get("EDGERT_SHARED", ROOT.parent / "shared")).resolve()
CACHE = Path(os.environ.get("EDGERT_AARCH64_CACHE", Path.home() / ".cache" / "edgert" / "aarch64"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

HOST_PACKAGES = ["qemu-user-static", "mmdebstrap", "binfmt-support"]
SUITE = "bookworm"  # Debian 12, what Raspberry Pi OS bookworm is built on (Python 3.11)
MIRROR = os.environ.get("EDGERT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
ROOTFS_PACKAGES = ["python3", "python3-venv", "ca-certificates"]

# What runs under emulation (slow: about 40x a host core). Chosen to cover what a Pi user does: the runtime and
# its equality claims on every conformance model, inspect, predict and bench through the CLI, safe loading in an
# isolated child, the run loop over an image folder, a video and a serial port (a pty), and the three samples.
LANE_TESTS = [
    "tests/runtime/test_imports.py",
    "tests/runtime/test_predict.py",
    "tests/runtime/test_cli.py",
    "tests/runtime/test_safe.py",
    "tests/model/test_inspect.py",
    "tests/loop/test_cli.py",
    "tests/loop/test_serial.py",
    "tests/loop/test_video_camera.py",
]

# /proc/cpuinfo lines of the CPUs QEMU_CPU may name (from the Arm TRMs' MIDR values and Linux's hwcaps).
ARM_CPUS = {
    "cortex-a72": ("0xd08", "0x0", "3", "fp asimd evtstrm crc32 cpuid"),
    "cortex-a76": ("0xd0b", "0x4", "1",
                   "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"),
}


class LaneUnavailable(Exception):
    """The host cannot run the lane (no root, no packages, no binfmt); the message says what to do."""


def log(message: str) -> None:
    print(f"[aarch64] {message}", flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kwargs)


def digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def venv_specs() -> dict[str, list[str]]:
    """The two Pi venvs' packages, installed once (cached); edgert itself is installed ``--no-deps`` on every run."""
    project = pyproject()
    camera = project["optional-dependencies"]["camera"]
    pi_packages = shlex.split(os.environ.get("EDGERT_PI_PACKAGES", "")) or [
        "tflite-runtime==2.14.*", "numpy<2", "pillow", "pyserial", "flatbuffers", "tflite", "pytest"]
    return {
        # The Makefile's Pi venv (PI_PACKAGES, passed in by `make test-aarch64`) plus OpenCV for the video tests.
        "tflite-runtime": [*pi_packages, *camera],
        # What `pip install edgert[camera]` gives a Pi user: ai-edge-litert and numpy 2.
        "ai-edge-litert": [*project["dependencies"], *camera, "pytest"],
    }


def ensure_host() -> None:
    """Root, the host packages and binfmt for aarch64; installs/registers what is missing, or says why it cannot."""
    if os.geteuid() != 0:
        raise LaneUnavailable("needs root (chroot and mounts); run it as root, e.g. `sudo make test-aarch64`")
    missing = [p for p, exe in zip(HOST_PACKAGES, ["qemu-aarch64-static", "mmdebstrap", "update-binfmts"], strict=True)
               if not shutil.which(exe)]
    if missing:
        if not shutil.which("apt-get"):
            raise LaneUnavailable(f"needs {' '.join(missing)} (a Debian-like host); install them and run again")
        log(f"installing {' '.join(missing)}")
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", *missing], stdout=subprocess.DEVNULL)
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        if subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], capture_output=True).returncode:
            raise LaneUnavailable("binfmt_misc cannot be mounted here (a container without that privilege); "
                                  "run on a host or a privileged container")
    if not (binfmt / "qemu-aarch64").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    entry = binfmt / "qemu-aarch64"
    if not entry.exists() or "enabled" not in entry.read_text():
        raise LaneUnavailable("binfmt for qemu-aarch64 is not registered; run `update-binfmts --enable qemu-aarch64`")


def ensure_rootfs(rebuild: bool) -> Path:
    """The cached arm64 Debian 12 root filesystem; built into a temporary directory and renamed when complete."""
    rootfs = CACHE / f"rootfs-{SUITE}-{digest(SUITE, ROOTFS_PACKAGES)}"
    if rebuild and rootfs.exists():
        shutil.rmtree(rootfs)
    if (rootfs / "usr" / "bin" / "python3").exists():
        log(f"root filesystem: {rootfs} (cached)")
        return rootfs
    partial = rootfs.with_name(rootfs.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    log(f"building the arm64 Debian 12 root filesystem in {rootfs} (about 12 minutes, once)")
    started = time.monotonic()
    run(["mmdebstrap", "--arch=arm64", "--variant=apt", "--include=" + ",".join(ROOTFS_PACKAGES),
         SUITE, str(partial), MIRROR])
    for d in ("src", "shared"):
        (partial / d).mkdir(exist_ok=True)
    partial.rename(rootfs)
    log(f"root filesystem built in {time.monotonic() - started:.0f} s")
    return rootfs


def cpuinfo(cpu: str) -> str:
    part, variant, revision, features = ARM_CPUS[cpu]
    block = ("processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
             "CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n\n")
    return "".join(block.format(n=n, features=features, variant=variant, part=part, revision=revision)
                   for n in range(os.cpu_count() or 1))


def provide(path: Path, data: bytes) -> None:
    """Make ``path`` hold ``data``: an atomic replace when it differs, nothing when it already does."""
    if not path.is_file() or path.read_bytes() != data:
        atomic_write(path, data)


def chroot(rootfs: Path, cpu: str, command: str, *, venv: str | None = None, check: bool = True,
           output: IO[bytes] | None = None) -> int:
    """Run a shell command in the arm64 userland, in a private mount namespace (mounts vanish with it).

    The clone is /src and ../shared is /shared, both read-only; /tmp is a fresh tmpfs. ``output``: a file that
    takes stdout and stderr (default: this process's).
    """
    # Two venvs run side by side and bind these files: replace them atomically, and only when they changed.
    provide(rootfs / "etc" / "edgert-cpuinfo", cpuinfo(cpu).encode())
    provide(rootfs / "etc" / "resolv.conf", Path("/etc/resolv.conf").read_bytes())
    host_ca = Path("/etc/ssl/certs/ca-certificates.crt")  # the host's trust store (it may hold a proxy's CA)
    if host_ca.exists():
        provide(rootfs / "etc" / "edgert-host-ca.crt", host_ca.read_bytes())
    r = shlex.quote(str(rootfs))
    mounts = [
        f"mount -t proc proc {r}/proc",
        f"mount --bind {r}/etc/edgert-cpuinfo {r}/proc/cpuinfo",
        f"mount --rbind /dev {r}/dev",
        f"mount --rbind /sys {r}/sys",
        f"mount -t tmpfs tmpfs {r}/tmp",
        f"mount --bind {shlex.quote(str(ROOT))} {r}/src",
        f"mount -o remount,bind,ro {r}/src",
    ]
    if SHARED.is_dir():
        mounts += [f"mount --bind {shlex.quote(str(SHARED))} {r}/shared", f"mount -o remount,bind,ro {r}/shared"]
    path = "/usr/local/bin:/usr/bin:/bin" if venv is None else f"/opt/edgert/{venv}/bin:/usr/local/bin:/usr/bin:/bin"
    env = {
        "PATH": path, "HOME": "/tmp/home", "LANG": "C.UTF-8", "QEMU_CPU": cpu, "CI": os.environ.get("CI", ""),
        "EDGERT_CONFORMANCE": "/shared/conformance", "PYTHONDONTWRITEBYTECODE": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_DEFAULT_TIMEOUT": "180", "PIP_CERT": "/etc/edgert-host-ca.crt",
        "PIP_ROOT_USER_ACTION": "ignore",
    }
    inner = "mkdir -p /tmp/home && cd /tmp && " + command
    script = " && ".join(mounts) + " && exec chroot " + r + " /usr/bin/env -i " + " ".join(
        f"{k}={shlex.quote(v)}" for k, v in env.items()) + " /bin/sh -c " + shlex.quote(inner)
    rc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], stdout=output,
                        stderr=subprocess.STDOUT if output is not None else None).returncode
    if check and rc:
        raise subprocess.CalledProcessError(rc, command)
    return rc


def ensure_venv(rootfs: Path, cpu: str, name: str, packages: list[str]) -> None:
    """A cached venv in the rootfs at /opt/edgert/<name>, rebuilt when its package list changes."""
    stamp_value = digest(packages)
    stamp = rootfs / "opt" / "edgert" / name / ".edgert-spec"
    if stamp.exists() and stamp.read_text() == stamp_value:
        log(f"venv {name}: cached")
        return
    shutil.rmtree(stamp.parent, ignore_errors=True)
    log(f"venv {name}: installing {' '.join(packages)} (4-8 minutes under emulation, once)")
    started = time.monotonic()
    deps = " ".join(shlex.quote(p) for p in packages)
    chroot(rootfs, cpu, f"python3 -m venv /opt/edgert/{name} && /opt/edgert/{name}/bin/python -m pip install -q "
                        f"--upgrade pip 'setuptools>=77' wheel && /opt/edgert/{name}/bin/python -m pip install -q {deps}")
    stamp.write_text(stamp_value)
    log(f"venv {name}: ready in {time.monotonic() - started:.0f} s")


# Run on every lane run in each venv, from outside the clone so that the *installed* edgert is what answers.
SMOKE = """
set -e
mkdir -p /tmp/edgert-src && cp -r /src/pyproject.toml /src/README.md /src/edgert /src/firmware_tools /src/targets /tmp/edgert-src/
python -m pip install -q --no-build-isolation --force-reinstall --no-deps /tmp/edgert-src
# The tflite-runtime venv has edgert without its default backend on purpose (as on a Pi image with tflite-runtime):
# pip check may name that one missing requirement and nothing else.
python -m pip check > /tmp/pip-check.txt || ! grep -v "requires ai-edge-litert, which is not installed" /tmp/pip-check.txt
python - <<'EOF'
import json, platform, sys
import edgert, edgert.runtime, edgert.loop
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'torch', 'cv2', 'tflite_micro'})
assert platform.machine() == 'aarch64', platform.machine()
assert not heavy, heavy
assert edgert.__file__.startswith(sys.prefix), edgert.__file__
print('[aarch64] installed edgert imports without TensorFlow on', platform.machine(), 'from', edgert.__file__)
EOF
m=/shared/conformance/models/visual_wake_words__vww_96_int8.tflite
edgert inspect "$m" > /dev/null
edgert predict "$m" /shared/conformance/inputs/tflm__person_detection__person.bmp --json > /dev/null
edgert bench "$m" --runs 3 --json > /dev/null
echo "[aarch64] edgert inspect/predict/bench from the installed console script: ok"
"""


def check_venv(rootfs: Path, name: str, args: argparse.Namespace, output: IO[bytes] | None) -> str | None:
    """Install edgert into one venv, smoke-run it, run the tests; None when all passed, else what failed."""
    if chroot(rootfs, args.cpu, SMOKE, venv=name, check=False, output=output):
        return f"{name}: install/smoke"
    if args.bench:
        chroot(rootfs, args.cpu, "python /src/benchmarks/loop_throughput.py --kernels auto --frames 200 --repeats 1",
               venv=name, check=False, output=output)
    tests = " ".join(shlex.quote(t) for t in (args.pytest_args or LANE_TESTS))
    rc = chroot(rootfs, args.cpu, f"cd /src && python -m pytest -q -p no:cacheprovider {tests}", venv=name,
                check=False, output=output)
    return f"{name}: tests" if rc else None


def lane(args: argparse.Namespace) -> int:
    ensure_host()
    CACHE.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(CACHE / "lane.lock"):  # one lane at a time per cache (a CI job and a developer)
        rootfs = ensure_rootfs(args.rebuild)
        specs = venv_specs()
        names = [args.venv] if args.venv else list(specs)
        for name in names:
            ensure_venv(rootfs, args.cpu, name, specs[name])
        jobs = max(1, min(args.jobs, len(names)))
        log(f"install edgert from the clone, smoke run, then {len(LANE_TESTS)} test files in "
            f"{', '.join(names)} (QEMU_CPU={args.cpu}, {jobs} at a time)")

        def one(name: str) -> str | None:
            started = time.monotonic()
            if jobs == 1:  # alone: its output goes straight to the terminal
                failed = check_venv(rootfs, name, args, None)
            else:  # side by side: each venv's output is kept and printed whole when it ends
                with tempfile.TemporaryFile() as out:
                    failed = check_venv(rootfs, name, args, out)
                    out.seek(0)
                    with printing:
                        log(f"venv {name}: output")
                        sys.stdout.buffer.write(out.read())
                        sys.stdout.flush()
            log(f"venv {name}: {'FAILED' if failed else 'passed'} in {time.monotonic() - started:.0f} s")
            return failed

        printing = threading.Lock()
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            failed = [f for f in pool.map(one, names) if f]
    if failed:
        log("failed: " + "; ".join(failed))
        return 1
    log("passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", default="cortex-a72", choices=sorted(ARM_CPUS),
                        help="the emulated CPU (QEMU_CPU): cortex-a72 is a Pi 4, cortex-a76 a Pi 5")
    parser.add_argument("--venv", choices=sorted(venv_specs()), help="run in one venv only (default: both)")
    parser.add_argument("--jobs", type=int, default=min(2, len(os.sched_getaffinity(0))),
                        help="venvs tested side by side (default: 2 when there are 2 cores; each is one emulated process)")
    parser.add_argument("--bench", action="store_true", help="also run benchmarks/loop_throughput.py once (information)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached root filesystem")
    parser.add_argument("pytest_args", nargs="*", help=f"test paths/options instead of the lane's {len(LANE_TESTS)} files")
    args = parser.parse_args(argv)
    try:
        return lane(args)
    except LaneUnavailable as e:
        print(f"aarch64 lane {'FAILED' if IN_CI else 'skipped'}: {e}", file=sys.stderr)
        return 1 if IN_CI else 0
    except subprocess.CalledProcessError as e:
        print(f"aarch64 lane FAILED: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
