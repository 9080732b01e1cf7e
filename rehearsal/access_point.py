"""The shared DAG folder as the EFS access point presents it: every file owned by the access point's
uid/gid (its PosixUser in the synthesized template, stacks/constructs/shared_fs.py), and chown/chgrp
refused, even for root. bindfs over FUSE gives a directory these semantics. Both rehearsal profiles
mount their EFS folder this way; neither falls back to a plain directory, which would accept what the
access point refuses."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from rehearsal.services import MissingPrerequisite

FUSE_DEVICE = Path("/dev/fuse")


class AccessPointUnavailable(MissingPrerequisite):
    pass


def require_bindfs() -> None:
    """bindfs and /dev/fuse, or an error that says what is missing and how to get it."""
    if not shutil.which("bindfs"):
        raise AccessPointUnavailable(
            "bindfs is not installed: the rehearsal mounts the shared DAG folder with the EFS access point's "
            "semantics through it: apt-get install bindfs, or run `bash scripts/setup-machine.sh demo`"
        )
    if not FUSE_DEVICE.exists():
        raise AccessPointUnavailable(
            f"{FUSE_DEVICE} is missing: bindfs needs FUSE to give the shared DAG folder the EFS access point's "
            "semantics. On a VM or host: modprobe fuse; in a container: start it with --device /dev/fuse "
            "--cap-add SYS_ADMIN; in a chroot: bind-mount the host's /dev into it"
        )


class AccessPointMount:
    """`mount` shows the directory `backing` at `mount_point` with the access point's semantics."""

    def __init__(self, backing: Path, mount_point: Path, uid: str, gid: str):
        self.backing = backing
        self.mount_point = mount_point
        self.uid = uid
        self.gid = gid
        self.mounted = False

    def mount(self) -> AccessPointMount:
        require_bindfs()
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mount_point.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                "bindfs",
                f"--force-user={self.uid}",
                f"--force-group={self.gid}",
                "--chown-deny",
                "--chgrp-deny",
                str(self.backing),
                str(self.mount_point),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode:
            raise AccessPointUnavailable(
                f"bindfs could not mount {self.mount_point} (is FUSE usable here? a container needs "
                "--device /dev/fuse --cap-add SYS_ADMIN, and --security-opt apparmor:unconfined where AppArmor "
                f"confines it): {result.stderr.strip()}"
            )
        self.mounted = True
        return self

    def unmount(self) -> None:
        if not self.mounted:
            return
        fusermount = shutil.which("fusermount3") or shutil.which("fusermount")
        command = [fusermount, "-u", str(self.mount_point)] if fusermount else ["umount", str(self.mount_point)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode:
            # A process still inside the folder keeps it busy: detach it so the workdir can go.
            subprocess.run(
                [fusermount, "-u", "-z", str(self.mount_point)]
                if fusermount
                else ["umount", "-l", str(self.mount_point)],
                capture_output=True,
                check=False,
            )
        self.mounted = False
