"""Helpers shared by the image check integration tests: run a playbook, build fake-cluster objects."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOKS = os.path.join(ROOT, "tests", "integration", "playbooks")
BIN = os.path.dirname(sys.executable)


def run_cases(cases, tmp_path, timeout=180):
    """Run playbooks/image_arch_check.yml over cases (dicts of module options, optional check_mode).

    Returns (rc, output, [registered result per case])."""
    return run_playbook("image_arch_check.yml", {"image_check_cases": cases}, tmp_path, timeout=timeout)


def run_playbook(name, extra_vars, tmp_path, inventory="localhost,", check=False, timeout=120):
    """ansible-playbook with the repo's ansible.cfg; returns (rc, output, written result or None)."""
    out = os.path.join(str(tmp_path), "result-%s.json" % os.urandom(4).hex())
    extra = dict(extra_vars, image_check_out=out, ansible_python_interpreter=sys.executable)
    varfile = os.path.join(str(tmp_path), "vars-%s.json" % os.urandom(4).hex())
    with open(varfile, "w") as fh:
        json.dump(extra, fh)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_LOCAL_TEMP=str(tmp_path),
               PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, "-e", "@" + varfile,
           os.path.join(PLAYBOOKS, name)]
    if check:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    result = None
    if os.path.exists(out):
        with open(out) as fh:
            result = json.load(fh)
    return proc.returncode, proc.stdout + proc.stderr, result


def node(name, arch):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
        "kubernetes.io/arch": arch, "kubernetes.io/os": "linux", "kubernetes.io/hostname": name}},
        "status": {"nodeInfo": {"architecture": arch, "operatingSystem": "linux",
                                "kubeletVersion": "v1.31.4", "containerRuntimeVersion": "containerd://1.7.24"}}}


def deployment(name, namespace, image, node_selector=None, init_image=None):
    spec = {"containers": [{"name": name, "image": image}]}
    if init_image:
        spec["initContainers"] = [{"name": "init", "image": init_image}]
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def failing_pod(name, namespace, image, owner=None, node_name="node-1"):
    """A pod whose container waits in ErrImagePull because of the platform (containerd's message)."""
    msg = ('failed to pull and unpack image "%s": no match for platform in manifest: not found' % image)
    meta = {"name": name, "namespace": namespace, "labels": {"app": name.rsplit("-", 2)[0]}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                    "uid": "u-" + owner, "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node_name, "containers": [{"name": "app", "image": image}]},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "app", "image": image, "imageID": "", "ready": False, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull", "message": msg}}}]}}


def pull_event(pod_name, namespace, image):
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": pod_name + ".17f0", "namespace": namespace},
            "involvedObject": {"kind": "Pod", "namespace": namespace, "name": pod_name, "apiVersion": "v1"},
            "reason": "Failed", "type": "Warning", "count": 3,
            "message": 'Failed to pull image "%s": failed to pull and unpack image "%s": no match for platform '
                       'in manifest: not found' % (image, image)}
