"""The collection as users get it (issue 13 item 6): `ansible-galaxy collection build` leaves the developer's
files out, the tarball installs into a fresh collections path, and from an empty directory the collection
playbooks kubeadm_ec2.cluster.site / .validate / .teardown resolve with the shipped example inventory (the
aws_ec2 plugin config, pointed at moto's server) and its group_vars; teardown really runs (a no-op on an empty
account). `ansible-builder create` renders the execution environment's build context."""

import json
import os
import shutil
import subprocess
import tarfile

import pytest
import yaml

from tests.integration.moto_harness import MotoServer
from tests.support.ansible import BIN, ROOT, PlaybookResult, ansible_env
from tests.support.lifecycle import private_dir

with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as _fh:
    GALAXY = yaml.safe_load(_fh)
TARBALL = "kubeadm_ec2-cluster-%s.tar.gz" % GALAXY["version"]
LEFT_OUT = ("tests/", "bench/", "molecule/", ".ci/", "scripts/", ".venv", ".cache/", ".build/", ".collections/",
            "dist/", "artifacts/")
LEFT_OUT_FILES = ("Makefile", "ansible.cfg", "site.yml", "requirements-test.txt", ".ansible-lint", ".gitignore")
SHIPPED = ("MANIFEST.json", "FILES.json", "meta/runtime.yml", "execution-environment.yml",
           "playbooks/site.yml", "playbooks/provision.yml", "playbooks/install.yml", "playbooks/validate.yml",
           "playbooks/teardown.yml", "inventories/aws/aws_ec2.yml", "inventories/aws/k8s_cluster.yml",
           "inventories/aws/group_vars/all.yml", "roles/cluster_defaults/defaults/main.yml",
           "plugins/filter/cluster.py", "plugins/module_utils/analysis/calico.py", "README.md")


def _run(cmd, cwd, env, timeout=600):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def built():
    """The tarball, built from the working tree as `ansible-galaxy collection build` does."""
    out = private_dir("kec2-build-")
    try:
        proc = _run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", out, ROOT],
                    cwd=out, env=ansible_env())
        assert proc.returncode == 0, proc.stdout + proc.stderr
        path = os.path.join(out, TARBALL)
        assert os.path.exists(path), os.listdir(out)
        yield path
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_the_tarball_leaves_the_developers_files_out(built):
    with tarfile.open(built) as tar:
        names = [m.name for m in tar.getmembers()]
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    for name in SHIPPED:
        assert name in names, name
    leaked = [n for n in names if n.startswith(LEFT_OUT) or n in LEFT_OUT_FILES or "__pycache__" in n
              or n.endswith((".pyc", ".tar.gz", "-admin.conf", "-certificate-key"))]
    assert not leaked, leaked
    assert manifest["collection_info"]["dependencies"] == GALAXY["dependencies"]
    # what the collection's own roles and playbooks call is declared
    for needed in ("amazon.aws", "community.aws", "kubernetes.core", "community.general", "ansible.posix"):
        assert needed in manifest["collection_info"]["dependencies"], needed


@pytest.fixture(scope="module")
def installed(built):
    """A fresh collections path with only this collection; its dependencies come from the ansible package."""
    home = private_dir("kec2-user-")
    try:
        collections = os.path.join(home, "collections")
        # the checkout's ansible.cfg would show this collection as installed already (.collections): not used
        env = ansible_env(ANSIBLE_CONFIG=os.path.join(home, "no-ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=collections)
        proc = _run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--no-deps", "-p", collections,
                     built], cwd=home, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield {"home": home, "collections": collections,
               "path": os.path.join(collections, "ansible_collections", "kubeadm_ec2", "cluster")}
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def user_dir(installed, moto):
    """An empty directory a user starts from: only the example inventory copied out of the installed
    collection, no ansible.cfg, no checkout on any path."""
    work = private_dir("kec2-empty-")
    try:
        shutil.copytree(os.path.join(installed["path"], "inventories", "aws"), os.path.join(work, "inventory"))
        env = ansible_env(base=moto.env(with_endpoint=True), ANSIBLE_CONFIG=os.path.join(work, "no-ansible.cfg"),
                          ANSIBLE_COLLECTIONS_PATH=installed["collections"],
                          ANSIBLE_LOCAL_TEMP=os.path.join(work, ".ansible-tmp"),
                          KUBEADM_EC2_CLUSTER_NAME="pkg", KUBEADM_EC2_REGION=moto.region,
                          KUBEADM_EC2_ENDPOINT_URL=moto.endpoint_url, KUBEADM_EC2_ADMIN_CIDR="203.0.113.7/32")
        env.pop("ANSIBLE_ROLES_PATH", None)
        yield {"dir": work, "env": env}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _playbook(user_dir, name, *args, callback="default"):
    env = dict(user_dir["env"], ANSIBLE_STDOUT_CALLBACK="ansible.posix.json" if callback == "json" else "default")
    proc = _run([os.path.join(BIN, "ansible-playbook"), "-i", "inventory", "kubeadm_ec2.cluster." + name] + list(args),
                cwd=user_dir["dir"], env=env)
    return PlaybookResult(proc.returncode, proc.stdout, proc.stderr, 0.0, callback == "json")


# roles from the installed collection show with their FQCN; validate includes its roles at run time
C = "kubeadm_ec2.cluster."


@pytest.mark.parametrize("name, expected", [
    # provisioning imports its roles (listed with their FQCN); the install includes node_prep, kubeadm, calico
    # and coredns at run time (a role that cannot run without the package repository is skipped whole), so
    # its tasks are listed by their include names
    ("site", [C + "cluster_defaults : Check the cluster-wide contract (stops naming the variable to fix)", C + "ec2_network : ",
              C + "ec2_nodes : ", "Prepare the nodes (swap, kernel, containerd, time sync)",
              "Install the Kubernetes packages, bootstrap with kubeadm", "Install Calico", "Configure CoreDNS",
              "play #5"]),
    ("validate", ["play #1", "play #2"]),
    ("teardown", ["Terminate the cluster's instances and wait until they are gone"]),
])
def test_collection_playbooks_resolve_from_an_empty_directory(user_dir, name, expected):
    result = _playbook(user_dir, name, "--list-tasks")
    assert result.returncode == 0, result.stdout + result.stderr
    for text in expected:
        assert text in result.stdout, (text, result.stdout[-3000:])
    # the roles come from the installed collection, not from a checkout
    assert ROOT not in result.stdout + result.stderr


def test_teardown_runs_from_the_installed_collection_and_changes_nothing(user_dir):
    result = _playbook(user_dir, "teardown", callback="json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert result.changed() == 0 and result.failures() == 0, result.stats


def test_the_example_inventory_parses_against_ec2(user_dir):
    proc = _run([os.path.join(BIN, "ansible-inventory"), "-i", "inventory", "--list"], cwd=user_dir["dir"],
                env=user_dir["env"])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data["k8s_cluster"]["children"]) >= {"control_plane", "workers"}
    # its group_vars example carries the contract's inputs from the environment
    assert "amazon.aws.aws_ec2" in open(os.path.join(user_dir["dir"], "inventory", "aws_ec2.yml")).read()
    assert "[WARNING]" not in proc.stderr or "Failed to parse" not in proc.stderr, proc.stderr


def test_ansible_builder_renders_the_build_context(built):
    work = private_dir("kec2-ee-")
    try:
        shutil.copy(os.path.join(ROOT, "execution-environment.yml"), work)
        os.makedirs(os.path.join(work, "dist"))
        shutil.copy(built, os.path.join(work, "dist"))
        context = os.path.join(work, "context")
        proc = _run([os.path.join(BIN, "ansible-builder"), "create", "-f", "execution-environment.yml",
                     "-c", context, "--output-filename", "Containerfile", "-v", "3"], cwd=work, env=ansible_env())
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "No matches" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        with open(os.path.join(context, "Containerfile"), encoding="utf-8") as fh:
            containerfile = fh.read()
        build = os.path.join(context, "_build")
        # the collection tarball is in the context and installed in the galaxy stage, after its dependencies
        assert os.path.exists(os.path.join(build, "collection", TARBALL))
        assert ("RUN ansible-galaxy collection install --no-deps --collections-path /usr/share/ansible/collections "
                "/build/collection/kubeadm_ec2-cluster-*.tar.gz") in containerfile
        assert containerfile.index("-r requirements.yml") < containerfile.index("/build/collection/")
        assert 'ARG EE_BASE_IMAGE="quay.io/fedora/fedora:41"' in containerfile and "FROM $EE_BASE_IMAGE AS base" in containerfile
        assert "ansible-core==2.19.14" in containerfile
        with open(os.path.join(build, "requirements.yml"), encoding="utf-8") as fh:
            galaxy = yaml.safe_load(fh)
        assert {c["name"]: c["version"] for c in galaxy["collections"]} == GALAXY["dependencies"]
        with open(os.path.join(build, "requirements.txt"), encoding="utf-8") as fh:
            python = fh.read().split()
        with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as fh:
            pinned = [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]
        # the EE pins the controller libraries the tests run with
        for req in ("boto3", "botocore", "kubernetes", "jmespath"):
            line = [p for p in pinned if p.startswith(req + "==")][0]
            assert line in python, (line, python)
    finally:
        shutil.rmtree(work, ignore_errors=True)
