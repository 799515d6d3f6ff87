"""Multi-arch images built with Debian's buildah, offline, from scratch, pushed to a test registry.

Each image is ``scratch`` plus ``/app``, a tiny static executable for its architecture
(tests/support/elf.py), as its entrypoint. buildah runs with the vfs storage driver, its own
root/runroot, an accept-anything signature policy and an empty registries.conf, all in the
builder's private directory; every reference carries a transport (``docker://HOST/REPO:TAG``), so
nothing is looked up on a public registry.
"""

import json
import os
import subprocess

from tests.support.elf import executable
from tests.support.lifecycle import Substrate

BUILDAH = "/usr/bin/buildah"
# the --format spellings of `buildah push` / `manifest push` (commit says "oci" / "docker")
FORMATS = {"oci": "oci", "docker": "v2s2"}


class Buildah(Substrate):
    prefix = "buildah-"
    timeout = 120

    def __init__(self, binary=BUILDAH):
        super(Buildah, self).__init__()
        self.binary = binary
        self.env = None
        self.policy = None
        self._count = 0

    def _start(self):
        self.policy = self.path("policy.json")
        with open(self.policy, "w") as fh:
            json.dump({"default": [{"type": "insecureAcceptAnything"}]}, fh)
        conf = self.path("registries.conf")
        with open(conf, "w") as fh:
            fh.write("unqualified-search-registries = []\n")
        self.env = dict(os.environ, CONTAINERS_REGISTRIES_CONF=conf, REGISTRIES_CONFIG_PATH=conf,
                        BUILDAH_ISOLATION="chroot", TMPDIR=self.workdir)
        self.buildah("--version")

    def buildah(self, *args):
        cmd = [self.binary, "--storage-driver", "vfs", "--root", self.path("root"), "--runroot", self.path("run")]
        proc = subprocess.run(cmd + list(args), capture_output=True, text=True, env=self.env, timeout=self.timeout,
                              check=False)
        if proc.returncode:
            raise RuntimeError("buildah %s failed (%d): %s" % (" ".join(args), proc.returncode, proc.stderr.strip()))
        return proc.stdout.strip()

    def _container(self, spec):
        """A working container from scratch for ``spec`` ("arm64", "arm/v7") with /app as entrypoint."""
        arch, _sep, variant = spec.partition("/")
        args = ["from", "--arch", arch, "--os", "linux"] + (["--variant", variant] if variant else []) + ["scratch"]
        ctr = self.buildah(*args)
        self._count += 1
        app = self.path("app-%d" % self._count)
        with open(app, "wb") as fh:
            fh.write(executable(arch))
        os.chmod(app, 0o755)
        self.buildah("copy", "--chmod", "0755", ctr, app, "/app")
        self.buildah("config", "--entrypoint", '["/app"]', ctr)
        return ctr

    def push_index(self, host, repo, tag, specs, media="oci"):
        """An OCI image index (media="oci") or Docker manifest list (media="docker") of one image per
        platform in ``specs``, pushed to ``host`` over plain HTTP. Returns the reference."""
        name = "list-%s-%s" % (repo.replace("/", "-"), tag)
        self.buildah("manifest", "create", name)
        for spec in specs:
            ctr = self._container(spec)
            self.buildah("commit", "--signature-policy", self.policy, "--format", media, "--manifest", name,
                         ctr)
            self.buildah("rm", ctr)
        ref = "%s/%s:%s" % (host, repo, tag)
        self.buildah("manifest", "push", "--signature-policy", self.policy, "--all", "--format", FORMATS[media],
                     "--tls-verify=false", name, "docker://" + ref)
        return ref

    def push_single(self, host, repo, tag, spec, media="oci"):
        """One image manifest (no index) for ``spec``, pushed to ``host``. Returns the reference."""
        ctr = self._container(spec)
        image = self.buildah("commit", "--signature-policy", self.policy, "--format", media, ctr)
        self.buildah("rm", ctr)
        ref = "%s/%s:%s" % (host, repo, tag)
        self.buildah("push", "--signature-policy", self.policy, "--format", FORMATS[media], "--tls-verify=false",
                     image, "docker://" + ref)
        return ref
