"""The VM hosts' disk image: a Debian root file system with everything a lab host needs, built
once with debootstrap and cached outside the repository (docs/vm.md).

    manifest = ensure_image()   # builds it the first time (minutes), then only reads the manifest
    manifest["rootfs"], manifest["kernel"], manifest["initrd"], manifest["key"], ...

The kernel is Debian's stock kernel installed on this machine by the package
``linux-image-amd64`` (tools/setup.sh installs it): QEMU boots its ``/boot/vmlinuz-K`` directly
with an initramfs of the image's own (:func:`make_initrd`: only the modules that mount the root
file system), and its modules (``/lib/modules/K``) are copied into the image.
The root file system is ``debootstrap --variant=minbase`` of the machine's own mirror
(engines/image.py's helper) with the packages of :func:`image_packages`, configured for a VM
(below), packed into a raw ext4 file with ``mkfs.ext4 -d``. A VM opens it with
``snapshot=on``: its writes go to a temporary overlay, the cached file never changes.

Configured in the image, so that one image serves every VM:

- the two virtio NICs get fixed names by their PCI slot (systemd .link files): ``ctl0`` (slot 3,
  the control network: sshd) and ``data0`` (slot 4, the data network: the ssh backend's
  underlay_dev);
- ``scn-net.service`` puts the control address and the host name from the kernel command line
  (``scn.ctl=198.18.6.1/24 scn.name=vm1``) on the machine before sshd starts;
- ``scn-ready.service`` writes :data:`READY_MARK` and the host name to the serial console once
  sshd runs: the event the boot waits for;
- IPv6 is off (sysctl), as in every namespace of the testbed;
- sshd takes root by key only (the client key pair is made at build time and kept beside the
  image), MaxSessions 100 (one master connection carries every command of a deployment);
- the daemons of the packages (Open vSwitch, strongSwan, OpenVPN, tinc, iperf3) are masked:
  the framework starts its own, per deployment, as on every other host.

The cache directory holds one subdirectory per recipe hash (:func:`recipe_hash`: suite, package
list, recipe version, kernel release and its package version); a new recipe is built beside the
old ones, which are removed once the new one is complete. A file lock makes sure only one process
builds; the others wait and read its manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from seconetbench import proc
from seconetbench.engines import image as container_image
from seconetbench.errors import DeployError
from seconetbench.fsutil import atomic_directory

IMAGE_DIR = Path(os.environ.get("SECONETBENCH_VM_CACHE", "/var/cache/seconetbench/vm"))
KERNEL_PACKAGE = "linux-image-amd64"  # Debian's metapackage: it depends on the stock kernel's package
# Bump when anything below changes what ends up in the image (files written, units masked).
RECIPE_VERSION = 4
# What the VM itself needs beyond what its hosts run: an init, device names, module loading,
# sshd and the tools the tests and a person use on it.
VM_PACKAGES = ("systemd-sysv", "udev", "kmod", "openssh-server", "iproute2", "iputils-ping", "procps",
               "socat", "e2fsprogs", "python3", "python3-psutil")
# PCI slots of the two NICs (QEMU -device ...,addr=) and their names in the guest.
CONTROL_SLOT, DATA_SLOT = 3, 4
CONTROL_IF, DATA_IF = "ctl0", "data0"
READY_MARK = "SECONETBENCH-VM-READY"
# Daemons the packages would start at boot: the framework starts its own per deployment.
MASKED_UNITS = (
    "openvswitch-switch.service", "ovs-vswitchd.service", "ovsdb-server.service", "ovs-record-hostname.service",
    "strongswan.service", "strongswan-starter.service", "ipsec.service",
    "openvpn.service", "tinc.service", "iperf3.service",
    # nothing to log in to on the consoles; periodic jobs that would compete with a measurement
    "getty@tty1.service", "serial-getty@ttyS0.service", "apt-daily.timer", "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer", "e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer",
    "systemd-timesyncd.service", "getty-static.service",
    # what a VM host never uses, each a unit start on the one emulated CPU during the boot
    "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount", "dev-hugepages.mount", "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount", "sys-fs-fuse-connections.mount", "systemd-pstore.service", "modprobe@drm.service",
    "modprobe@dm_mod.service", "modprobe@efi_pstore.service", "modprobe@fuse.service",
)
# The VM's own initramfs holds only what mounts its root file system (virtio disk, ext4): the
# stock one (MODULES=most, 747 modules, 30 MB) took 13 s longer to boot under TCG. The NIC
# driver is left to the root file system's udev, which names the NICs by the .link files.
INITRD_MODULES = ("virtio_pci", "virtio_blk", "ext4", "crc32c_generic")
# Drivers udev would load for the emulated PC's devices that a VM host never uses (IDE, floppy,
# PC speaker, PS/2 input, SMBus) and KVM itself (TCG's `-cpu max` offers SVM): each a module load
# on the one emulated CPU during the boot. The CPU-feature crypto modules stay: ESP and WireGuard
# take their usual implementations.
BLACKLISTED_MODULES = ("ata_piix", "ata_generic", "pata_acpi", "floppy", "pcspkr", "psmouse", "serio_raw", "evdev",
                       "i2c_piix4", "kvm", "kvm_amd", "kvm_intel", "ccp", "joydev", "intel_rapl_msr")
# Left out of the image: what apt downloaded, documentation.
PRUNED = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info")
FREE_SPACE_BYTES = 1 << 30  # room for what a run writes (in the snapshot overlay, but df shows it)
BUILD_TIMEOUT_S = 1800


def image_packages() -> tuple[str, ...]:
    """Every Debian package of the image: the VM's own (VM_PACKAGES), what every lab host needs
    (remote.hosts BASE_PACKAGES), the package of every binary a technology or workload may run
    (remote.hosts BINARY_PACKAGES), and the plugins and headers the technologies check for
    (strongSwan's plugin packages, the eBPF headers)."""
    from seconetbench.bpf import HEADERS
    from seconetbench.remote.hosts import BASE_PACKAGES, BINARY_PACKAGES
    from seconetbench.tunnels.ipsec import PACKAGES as STRONGSWAN_PLUGINS

    return tuple(sorted({*VM_PACKAGES, *BASE_PACKAGES, *BINARY_PACKAGES.values(), *STRONGSWAN_PLUGINS.values(),
                         *HEADERS.values()}))


def stock_kernel() -> tuple[str, str]:
    """The release (``6.1.0-57-amd64``) and package version of the kernel linux-image-amd64
    installed on this machine; DeployError naming the fix when it or its files are missing."""
    result = subprocess.run(["dpkg-query", "-W", "-f", "${Status}\t${Depends}", KERNEL_PACKAGE],
                            capture_output=True, text=True)
    status, _, depends = result.stdout.partition("\t")
    if result.returncode != 0 or "install ok installed" not in status:
        raise DeployError(f"the VM hosts boot Debian's stock kernel, and {KERNEL_PACKAGE} is not installed: "
                          f"apt-get install --no-install-recommends {KERNEL_PACKAGE} (tools/setup.sh does)")
    release = kernel_release_of(depends)
    version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", f"linux-image-{release}"],
                             capture_output=True, text=True).stdout.strip()
    for path in (kernel_path(release), Path("/lib/modules") / release):
        if not path.exists():
            raise DeployError(f"{path} of the stock kernel {release} is missing: reinstall it "
                              f"(apt-get install --reinstall linux-image-{release})")
    return release, version


def kernel_release_of(depends: str) -> str:
    """The kernel release that linux-image-amd64's Depends field names: 'linux-image-6.1.0-57-amd64
    (= 6.1.192-3)' -> '6.1.0-57-amd64'."""
    for alternative in depends.replace("|", ",").split(","):
        name = alternative.strip().split(" ")[0]
        if name.startswith("linux-image-") and name[len("linux-image-"):][:1].isdigit():
            return name[len("linux-image-"):]
    raise DeployError(f"cannot tell the stock kernel from {KERNEL_PACKAGE}'s dependencies {depends!r}; "
                      f"reinstall {KERNEL_PACKAGE}")


def kernel_path(release: str) -> Path:
    return Path("/boot") / f"vmlinuz-{release}"


def recipe_hash(packages: tuple[str, ...], kernel_release: str, kernel_version: str) -> str:
    """What decides the image's content, hashed: suite, variant, packages, this recipe's version,
    and the kernel (its modules are in the image)."""
    recipe = {"suite": container_image.SUITE, "variant": container_image.VARIANT, "packages": sorted(packages),
              "recipe": RECIPE_VERSION, "kernel": kernel_release, "kernel_version": kernel_version}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def ensure_image() -> dict[str, Any]:
    """The cached image's manifest (module docstring), building it first when the cache has none
    for the current recipe. Several processes may ask at once: one builds, the others wait for it.
    "built_now" says whether this call built it."""
    import filelock

    release, version = stock_kernel()
    packages = image_packages()
    digest = recipe_hash(packages, release, version)
    IMAGE_DIR.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(IMAGE_DIR / f"{digest}.lock")):
        manifest = cached(digest)
        if manifest is not None:
            return {**manifest, "built_now": False}
        manifest = _build(digest, packages, release, version)
        for other in IMAGE_DIR.iterdir():  # older recipes; a VM still running keeps its open files
            if other.name.startswith((digest, ".")):
                continue
            if other.is_dir():
                shutil.rmtree(other, ignore_errors=True)
            elif other.suffix in (".log", ".lock"):
                other.unlink(missing_ok=True)
        return {**manifest, "built_now": True}


def cached(digest: str) -> dict[str, Any] | None:
    """The manifest of the image of recipe *digest*, or None when there is none (or it is incomplete)."""
    try:
        manifest = json.loads((IMAGE_DIR / digest / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return manifest if all(Path(manifest[key]).exists() for key in ("rootfs", "kernel", "initrd", "key")) else None


def _build(digest: str, packages: tuple[str, ...], release: str, version: str) -> dict[str, Any]:
    for tool, package in (("mkfs.ext4", "e2fsprogs"), ("ssh-keygen", "openssh-client"), ("mkinitramfs", "initramfs-tools")):
        if shutil.which(tool) is None:
            raise DeployError(f"building the VM image needs {tool}: install the Debian package {package}")
    started = time.monotonic()
    log = IMAGE_DIR / f"{digest}.build.log"  # kept: the build directory is removed
    final = IMAGE_DIR / digest
    with atomic_directory(final) as directory:
        rootfs = directory / "rootfs"
        mirror, debootstrap_s = container_image.debootstrap(rootfs, packages, log, "the VM image", timeout_s=BUILD_TIMEOUT_S)
        versions = container_image.package_versions(rootfs, packages)
        configure_rootfs(rootfs, release, directory / "id_ed25519")
        make_initrd(release, directory / "initrd.img", directory / "initramfs-conf")
        host_key_pub = " ".join((rootfs / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2])
        for pruned in PRUNED:
            shutil.rmtree(rootfs / pruned, ignore_errors=True)
            (rootfs / pruned).mkdir(parents=True, exist_ok=True)
        image = directory / "root.img"
        used = int(proc.run(["du", "-sb", str(rootfs)], timeout=300).stdout.split()[0])
        size = ((used * 5 // 4 + FREE_SPACE_BYTES) >> 20) + 1  # MiB; ext4's own metadata needs the quarter
        proc.run(["mkfs.ext4", "-q", "-F", "-L", "scnroot", "-d", str(rootfs), str(image), f"{size}M"], timeout=600)
        shutil.rmtree(rootfs)
        manifest = {
            "rootfs": str(final / "root.img"), "kernel": str(kernel_path(release)), "initrd": str(final / "initrd.img"),
            "kernel_release": release, "kernel_version": version, "key": str(final / "id_ed25519"),
            "host_key_pub": host_key_pub, "packages": versions, "recipe_hash": digest, "mirror": mirror,
            "debootstrap_s": round(debootstrap_s, 1), "build_s": round(time.monotonic() - started, 1),
            "image_bytes": size << 20, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        missing = [p for p in packages if p not in versions]
        if missing:
            raise DeployError(f"the VM image lacks packages it was built with: {missing} (see {log})")
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def make_initrd(release: str, output: Path, confdir: Path) -> None:
    """The VM's initramfs for kernel *release* (mkinitramfs with MODULES=list of INITRD_MODULES and
    a configuration of its own in *confdir*, not this machine's /etc/initramfs-tools)."""
    for sub in ("conf.d", "hooks", "scripts"):
        (confdir / sub).mkdir(parents=True, exist_ok=True)
    (confdir / "initramfs.conf").write_text("MODULES=list\nBUSYBOX=auto\nCOMPRESS=zstd\nRUNSIZE=10%\n")
    (confdir / "modules").write_text("".join(f"{module}\n" for module in INITRD_MODULES))
    proc.run(["mkinitramfs", "-d", str(confdir), "-o", str(output), release], timeout=300)
    shutil.rmtree(confdir)


def configure_rootfs(rootfs: Path, release: str, client_key: Path) -> None:
    """Make the debootstrap root file system a VM host (module docstring); *client_key* is made
    here and authorised for root."""
    shutil.copytree(Path("/lib/modules") / release, rootfs / "lib/modules" / release, symlinks=True)
    # build/ and source/ point into this machine's kernel headers, which the image does not have
    for link in ("build", "source"):
        (rootfs / "lib/modules" / release / link).unlink(missing_ok=True)
    container_ssh = rootfs / "root/.ssh"
    container_ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "seconetbench-vm-client", "-f", str(client_key)])
    _write(container_ssh / "authorized_keys", client_key.with_suffix(".pub").read_text(), 0o600)
    host_key = rootfs / "etc/ssh/ssh_host_ed25519_key"
    if not host_key.exists():  # openssh-server's postinst makes them; a recipe change may not
        proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "seconetbench-vm", "-f", str(host_key)])
    for path, text, mode in guest_files():
        _write(rootfs / path, text, mode)
    for unit in MASKED_UNITS:
        link = rootfs / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    wants = rootfs / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for unit in ("scn-net.service", "scn-ready.service"):
        (wants / unit).unlink(missing_ok=True)
        (wants / unit).symlink_to(f"/etc/systemd/system/{unit}")


def guest_files() -> list[tuple[str, str, int]]:
    """(path in the image, content, mode) of every file the recipe writes into the image."""
    from seconetbench.backends.netns import NO_IPV6

    link = "[Match]\nPath=pci-0000:00:{slot:02x}.0\n\n[Link]\nName={name}\n"
    net_script = f"""#!/bin/sh
# seconetbench: this VM's control address and name, from the kernel command line (one image, many VMs)
set -e
for word in $(cat /proc/cmdline); do
    case $word in
        scn.ctl=*) ctl=${{word#scn.ctl=}} ;;
        scn.name=*) name=${{word#scn.name=}} ;;
    esac
done
ip link set lo up
if [ -n "$name" ]; then hostname "$name"; fi
ip link set {DATA_IF} up
if [ -n "$ctl" ]; then ip addr add "$ctl" dev {CONTROL_IF}; fi
ip link set {CONTROL_IF} up
"""
    devices = " ".join(f"sys-subsystem-net-devices-{name}.device" for name in (CONTROL_IF, DATA_IF))
    net_unit = f"""[Unit]
Description=seconetbench: control address and host name from the kernel command line
Wants={devices}
After={devices}
Before=ssh.service network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/scn-net

[Install]
WantedBy=multi-user.target
"""
    ready_unit = f"""[Unit]
Description=seconetbench: tell the serial console that sshd runs
After=ssh.service scn-net.service
Requires=ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'echo "{READY_MARK} $(hostname)" > /dev/ttyS0'

[Install]
WantedBy=multi-user.target
"""
    sshd = "\n".join([
        "# seconetbench VM host: root by key only, one master connection carrying many sessions",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UseDNS no",
        "MaxSessions 100",
        "MaxStartups 100:30:200",
        "",
    ])
    return [
        (f"etc/systemd/network/10-scn-{CONTROL_IF}.link", link.format(slot=CONTROL_SLOT, name=CONTROL_IF), 0o644),
        (f"etc/systemd/network/10-scn-{DATA_IF}.link", link.format(slot=DATA_SLOT, name=DATA_IF), 0o644),
        ("usr/local/sbin/scn-net", net_script, 0o755),
        ("etc/systemd/system/scn-net.service", net_unit, 0o644),
        ("etc/systemd/system/scn-ready.service", ready_unit, 0o644),
        ("etc/ssh/sshd_config.d/seconetbench.conf", sshd, 0o644),
        ("etc/fstab", "/dev/vda / ext4 rw,relatime,errors=remount-ro 0 0\n", 0o644),
        ("etc/hostname", "vm\n", 0o644),
        # as in every namespace of the testbed (backends/netns.py NO_IPV6): no router solicitations
        # or MLD reports of the VMs on the data network, where the underlay captures listen
        ("etc/sysctl.d/90-seconetbench.conf", "".join(f"{key} = {value}\n" for key, value in NO_IPV6.items()), 0o644),
        ("etc/modprobe.d/seconetbench.conf", "".join(f"blacklist {module}\n" for module in BLACKLISTED_MODULES), 0o644),
        ("etc/systemd/journald.conf.d/seconetbench.conf", "[Journal]\nStorage=volatile\n", 0o644),
    ]


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def manifest_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The image's facts for meta.json: what it is, not where this machine keeps it."""
    return {key: manifest[key] for key in ("recipe_hash", "kernel_release", "kernel_version", "build_s", "built_at")
            if key in manifest}


if __name__ == "__main__":  # python -m seconetbench.testbed.vmimage: build (or show) the cached image
    print(json.dumps(ensure_image(), indent=1))
