"""Debian's containerd as the reference image puller, with a private root, state and socket.

``Containerd()`` is a substrate (tests/support/lifecycle.py): containerd runs with its CRI plugin
disabled, everything under the private 0700 work directory, and the ``ctr`` client talks to its
socket. Each ``outcome()`` uses a fresh containerd namespace, so one case never sees another's
content.

What ``outcome(ref, platform)`` records, as a kubelet would meet it on a node of that platform:

* ``pull``: ``ctr image pull --platform P --plain-http REF``: ``ok``, or the error containerd
  prints (1.6: "no match for platform in manifest sha256:...: not found" for an index without P);
* ``fallback``: ctr's pull fetches only the exact platform but unpacks with containerd's platform
  matcher, which also accepts a fallback (386 on amd64, 32-bit arm on arm64): such a pull fails with
  "content digest ...: not found". Fetching every platform first (``ctr content fetch
  --all-platforms``) then lets the same pull succeed, as the kubelet's pull (one matcher for both)
  does: ``fallback`` is then true;
* ``elf``: the architecture of the ``/app`` containerd unpacked for P (``ctr image mount``), which
  is what the node's kernel would be asked to execute;
* ``start``: for the host's own platform only, ``ctr run --rm`` through runc: ``ok`` or the error
  ("exec format error").
"""

import os
import platform as _platform
import subprocess

from tests.support.lifecycle import Substrate

CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
# e_machine -> OCI architecture
_ELF_MACHINES = {3: "386", 40: "arm", 62: "amd64", 183: "arm64", 21: "ppc64le", 22: "s390x", 243: "riscv64"}
HOST_PLATFORM = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}.get(_platform.machine(), "")


def elf_arch(path):
    """The architecture an ELF file is built for (None when it is not ELF)."""
    with open(path, "rb") as fh:
        head = fh.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "big" if head[5] == 2 else "little"
    return _ELF_MACHINES.get(int.from_bytes(head[18:20], order), "machine-%d" % int.from_bytes(head[18:20], order))


class Containerd(Substrate):
    prefix = "ctrd-"
    timeout = 60

    def __init__(self, binary=CONTAINERD, ctr=CTR):
        super(Containerd, self).__init__()
        self.binary = binary
        self.ctr_binary = ctr
        self.socket = None
        self._ns = 0

    def _start(self):
        self.socket = self.path("containerd.sock")
        config = self.path("config.toml")
        with open(config, "w") as fh:
            fh.write('version = 2\nroot = "%s"\nstate = "%s"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                     '[grpc]\n  address = "%s"\n[ttrpc]\n  address = "%s"\n'
                     % (self.path("root"), self.path("state"), self.socket, self.socket + ".ttrpc"))
        proc = self.spawn([self.binary, "--config", config, "--log-level", "warn"], "containerd.log")
        self.wait_until(lambda: os.path.exists(self.socket) and self.ctr("version").returncode == 0, 30,
                        "containerd", proc, "containerd.log", interval=0.1)

    def ctr(self, *args, namespace="default"):
        return subprocess.run([self.ctr_binary, "--address", self.socket, "--namespace", namespace] + list(args),
                              capture_output=True, text=True, timeout=self.timeout, check=False)

    @staticmethod
    def _message(proc):
        text = (proc.stderr or proc.stdout or "").strip().splitlines()
        return text[-1].replace("ctr: ", "", 1) if text else "exit %d" % proc.returncode

    def outcome(self, ref, platform):
        """What containerd does with ``ref`` on a node of ``platform`` (see the module docstring)."""
        self._ns += 1
        ns = "case%d" % self._ns
        pull_args = ["image", "pull", "--plain-http", "--snapshotter", "native", "--platform", platform, ref]
        proc = self.ctr(*pull_args, namespace=ns)
        out = {"platform": platform, "pull": "ok" if proc.returncode == 0 else self._message(proc), "fallback": False,
               "elf": None, "start": None}
        if proc.returncode and "content digest" in out["pull"] and "not found" in out["pull"]:
            fetched = self.ctr("content", "fetch", "--plain-http", "--all-platforms", ref, namespace=ns)
            if fetched.returncode == 0 and self.ctr(*pull_args, namespace=ns).returncode == 0:
                out["fallback"] = True
        if out["pull"] != "ok" and not out["fallback"]:
            return out
        target = self.path("mnt-" + ns)
        os.mkdir(target)
        mounted = self.ctr("image", "mount", "--snapshotter", "native", "--platform", platform, ref, target,
                           namespace=ns)
        if mounted.returncode == 0:
            try:
                out["elf"] = elf_arch(os.path.join(target, "app"))
            finally:
                self.ctr("image", "unmount", target, namespace=ns)
        if platform == HOST_PLATFORM:
            run = self.ctr("run", "--rm", "--snapshotter", "native", "--platform", platform, ref, ns + "-app",
                           namespace=ns)
            out["start"] = "ok" if run.returncode == 0 else self._message(run)
        return out
