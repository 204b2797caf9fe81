"""The containers' image, built without any registry: a debootstrap root file system imported
with ``docker import``.

No ``docker pull`` and no ``RUN apt-get``: the engine's namespace has no uplink, and the image
must not depend on a registry. ``debootstrap --variant=minbase --include=<PACKAGES>`` builds a
Debian root file system (about 45 s here, once), which is packed into a tarball cached under
``/var/cache/seconetbench/images/<hash>.tar`` with a manifest (package versions, build time).
The hash covers everything that decides the image's content (suite, variant, package list,
recipe version), and the image is tagged ``seconetbench/base:<hash>``. A new engine (a new data
root) then only needs ``docker import`` of the cached tarball (about 2 s).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seconetbench import proc
from seconetbench.engines.apt_sources import debian_mirror
from seconetbench.errors import DeployError
from seconetbench.fsutil import atomic_path, write_text_atomic

if TYPE_CHECKING:
    import docker

CACHE_DIR = Path(os.environ.get("SECONETBENCH_IMAGE_CACHE", "/var/cache/seconetbench/images"))
SUITE = "bookworm"
VARIANT = "minbase"
# What runs inside the containers: the generators of every workload (ping, iperf3, D-ITG's
# ITGSend/ITGRecv/ITGDec), and the tools a filter or a person may need in there (ip, iptables,
# nft, ps). uperf is not in Debian: the throughput workload's uperf tool needs another image.
# python3: the policy_update workload's prober (standard library only) runs in the containers
PACKAGES = ("d-itg", "iperf3", "iproute2", "iptables", "iputils-ping", "nftables", "procps", "python3")
# Bump when the way the tarball or the image is made changes (excludes, import changes).
RECIPE_VERSION = 1
REPOSITORY = "seconetbench/base"
# Left out of the tarball: package caches and documentation (89 MB instead of 225 MB).
EXCLUDES = ("./var/cache/apt/archives/*.deb", "./var/lib/apt/lists/*", "./usr/share/doc/*",
            "./usr/share/man/*", "./usr/share/locale/*", "./usr/share/info/*")
# The container's command is given at `docker run`; this default keeps a bare run alive.
IMPORT_CHANGES = ('CMD ["/bin/sleep", "infinity"]',)
DEBOOTSTRAP_TIMEOUT_S = 900


def packages_hash() -> str:
    recipe = {"suite": SUITE, "variant": VARIANT, "packages": sorted(PACKAGES), "recipe": RECIPE_VERSION}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def tag() -> str:
    return f"{REPOSITORY}:{packages_hash()}"


def tarball_path() -> Path:
    return CACHE_DIR / f"{packages_hash()}.tar"


def manifest_path() -> Path:
    return CACHE_DIR / f"{packages_hash()}.json"


def cached() -> dict[str, Any] | None:
    """The manifest of the cached tarball, or None when there is none (or it is incomplete)."""
    try:
        manifest = json.loads(manifest_path().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return manifest if tarball_path().exists() else None


def build_tarball() -> dict[str, Any]:
    """The cached tarball's manifest, building it first if needed (debootstrap, ~45 s). Several
    processes may ask at once: one builds, the others wait for its result."""
    import filelock

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(CACHE_DIR / f"{packages_hash()}.lock")):
        manifest = cached()
        if manifest is not None:
            return {**manifest, "built_now": False}
        return {**_build(), "built_now": True}


def _build() -> dict[str, Any]:
    log = CACHE_DIR / f"{packages_hash()}.build.log"  # kept: the build directory is removed
    workdir = Path(tempfile.mkdtemp(prefix=f"build-{packages_hash()}-", dir=CACHE_DIR))
    rootfs = workdir / "rootfs"
    try:
        mirror, debootstrap_s = debootstrap(rootfs, PACKAGES, log, "the container image",
                                            "or set testbed.docker.image to an image the engine already has")
        versions = package_versions(rootfs)
        excludes = [f"--exclude={pattern}" for pattern in EXCLUDES]
        with atomic_path(tarball_path()) as partial:
            proc.run(["tar", "-C", str(rootfs), "--numeric-owner", *excludes, "-cf", str(partial), "."], timeout=None)
        manifest = {
            "tag": tag(), "packages_hash": packages_hash(), "suite": SUITE, "variant": VARIANT,
            "packages": sorted(PACKAGES), "versions": versions, "mirror": mirror,
            "debootstrap_s": round(debootstrap_s, 1), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "tarball_bytes": tarball_path().stat().st_size,
        }
        write_text_atomic(manifest_path(), json.dumps(manifest, indent=1))
        return manifest
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def debootstrap(rootfs: Path, packages: Sequence[str], log: Path, what: str, alternative: str = "",
                timeout_s: float = DEBOOTSTRAP_TIMEOUT_S) -> tuple[str, float]:
    """A Debian SUITE root file system at *rootfs* (``debootstrap --variant=VARIANT`` with
    *packages*) from this machine's own mirror; its output goes to *log*. Returns the mirror and
    the seconds it took. DeployError naming *what* was built, the log's tail and the fix (with
    *alternative*: what the user may do instead) when debootstrap is missing or fails."""
    if shutil.which("debootstrap") is None:
        raise DeployError("debootstrap is missing: install the Debian package debootstrap (tools/setup.sh "
                          f"does){', ' + alternative if alternative else ''}")
    mirror = debian_mirror(SUITE)  # the machine's own apt mirror, or $SECONETBENCH_DEBIAN_MIRROR
    started = time.monotonic()
    argv = ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(packages)}", SUITE, str(rootfs), mirror]
    with open(log, "wb") as out:
        try:
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise DeployError(f"debootstrap did not finish within {timeout_s:.0f} s (log: {log})") from None
    if result.returncode != 0:
        detail = rootfs / "debootstrap" / "debootstrap.log"  # debootstrap's own, more detailed
        if detail.exists():
            with open(log, "ab") as out:
                out.write(b"\n--- debootstrap/debootstrap.log ---\n" + detail.read_bytes())
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-4:])
        raise DeployError(f"debootstrap of {what} failed (exit {result.returncode}; it needs "
                          f"{mirror}, or set SECONETBENCH_DEBIAN_MIRROR): {tail} (full log: {log})")
    return mirror, time.monotonic() - started


def package_versions(rootfs: Path, packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Versions of *packages* as installed in *rootfs* (its dpkg database)."""
    result = subprocess.run(["dpkg-query", f"--admindir={rootfs / 'var/lib/dpkg'}", "-W",
                             "-f", "${Package}\t${Version}\n", *packages], capture_output=True, text=True)
    return dict(line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)


def ensure(client: docker.DockerClient, name: str | None = None) -> dict[str, Any]:
    """Make sure the engine behind *client* has the image and describe it for the facts.

    *name* is testbed.docker.image: an image the user provides, which must already be in the
    engine (nothing is pulled). None: the built image, imported from the cache (built first if
    the cache has none)."""
    import docker

    if name is not None:
        try:
            image = client.images.get(name)
        except docker.errors.ImageNotFound:
            raise DeployError(f"testbed.docker.image '{name}' is not in the engine (the docker backend never "
                              "pulls): load it with `docker load` or `docker import`, or set "
                              "testbed.docker.image: null to use the image SeCoNetBench builds") from None
        return {"tag": name, "id": image.id, "built_by": "user"}
    facts: dict[str, Any] = {"tag": tag(), "packages_hash": packages_hash(), "built_by": "seconetbench"}
    try:
        image = client.images.get(tag())
        manifest = cached() or {}
    except docker.errors.ImageNotFound:
        manifest = build_tarball()
        started = time.monotonic()
        repository, version = tag().split(":")
        client.api.import_image_from_file(str(tarball_path()), repository=repository, tag=version,
                                          changes=list(IMPORT_CHANGES))
        try:
            image = client.images.get(tag())
        except docker.errors.ImageNotFound:
            raise DeployError(f"docker import of {tarball_path()} did not create {tag()}; remove the "
                              "tarball to rebuild it") from None
        facts["import_s"] = round(time.monotonic() - started, 3)
        facts["built_now"] = manifest.get("built_now", False)
    facts["id"] = image.id
    facts["versions"] = manifest.get("versions")
    return facts
