"""The HA kubeadm configurations every node gets (rendered by ansible-core), and what the install runs when
the Kubernetes package repository does not answer (tasks_from repository, the role's conditions).

Complements test_kubeadm_templates.py (the first control plane's init configuration, one joining control
plane, one worker): here every control plane of the three, the v1beta3 spelling, the kubeconfig server
with and without provisioning facts, and the offline path.
"""

import pytest

from tests.unit.roles._render import condition, expr, load_yaml, render, task_by_name
from tests.unit.roles.test_kubeadm_templates import CP_IPS, NLB, docs, ha_vars

TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "c" * 64


def _join(v):
    v["kubeadm_join_token"], v["kubeadm_join_ca_hash"] = TOKEN, CA_HASH
    return docs(render("kubeadm", "kubeadm-join.yaml.j2", v))["JoinConfiguration"]


@pytest.mark.parametrize("host", sorted(CP_IPS))
def test_every_control_plane_has_the_nlb_endpoint_and_its_own_address_in_the_sans(host, tmp_path):
    v = ha_vars(host, tmp_path)
    cc = docs(render("kubeadm", "kubeadm-config.yaml.j2", v))["ClusterConfiguration"]
    assert cc["controlPlaneEndpoint"] == NLB + ":6443"
    assert cc["apiServer"]["certSANs"] == [CP_IPS[host], NLB]
    assert cc["featureGates"] == {"ControlPlaneKubeletLocalMode": True}


def test_the_joining_control_planes_share_one_certificate_key_and_advertise_their_own_address(tmp_path):
    joins = dict((h, _join(ha_vars(h, tmp_path))) for h in ("cp2", "cp3"))
    keys = set(j["controlPlane"]["certificateKey"] for j in joins.values())
    init = docs(render("kubeadm", "kubeadm-config.yaml.j2", ha_vars("cp1", tmp_path)))["InitConfiguration"]
    assert keys == {init["certificateKey"]}
    for host, join in joins.items():
        assert join["controlPlane"]["localAPIEndpoint"] == {"advertiseAddress": CP_IPS[host], "bindPort": 6443}
        assert join["discovery"]["bootstrapToken"] == {"apiServerEndpoint": NLB + ":6443", "token": TOKEN,
                                                       "caCertHashes": [CA_HASH]}
        assert join["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "node-ip", "value": CP_IPS[host]}]


def test_ha_v1beta3_for_kubernetes_before_1_31(tmp_path):
    v = ha_vars("cp2", tmp_path, kubeadm_version="1.30.8")
    join = _join(v)
    assert join["apiVersion"] == "kubeadm.k8s.io/v1beta3"
    assert join["nodeRegistration"]["kubeletExtraArgs"] == {"node-ip": CP_IPS["cp2"]}
    assert join["controlPlane"]["certificateKey"] == v["kubeadm_certificate_key"]
    out = docs(render("kubeadm", "kubeadm-config.yaml.j2", ha_vars("cp1", tmp_path, kubeadm_version="1.30.8")))
    assert out["ClusterConfiguration"]["controlPlaneEndpoint"] == NLB + ":6443"
    assert out["InitConfiguration"]["certificateKey"] == v["kubeadm_certificate_key"]


@pytest.mark.parametrize("published, private, server", [
    # provisioning ran in the same run (site.yml): the NLB's name
    (True, False, "https://%s:6443" % NLB),
    # install.yml on its own reads the same facts with ec2_nodes' endpoint entry point first; without them the
    # first control plane's public address is all the inventory knows
    (False, False, "https://203.0.113.1:6443"),
    # a controller inside the VPC without provisioning facts keeps admin.conf's server (the NLB name)
    (False, True, ""),
])
def test_ha_kubeconfig_server(published, private, server, tmp_path):
    v = ha_vars("cp1", tmp_path, published=published, kubeadm_ec2_api_private_endpoint=private)
    assert v["kubeadm_kubeconfig_server"] == server


def test_endpoint_name_resolves_locally_on_control_planes_only_with_ha(tmp_path):
    v = ha_vars("cp2", tmp_path)
    assert v["kubeadm_endpoint_host"] == NLB
    assert v["kubeadm_endpoint_is_name"] is True and v["kubeadm_local_endpoint"] is True
    task = task_by_name("kubeadm", "join.yml", "Resolve the API endpoint name to this control plane's own API server (no NLB hairpin)")
    assert expr(task["ansible.builtin.lineinfile"]["line"], v) == "127.0.0.1 " + NLB


# --- the Kubernetes package repository (tasks_from repository) and what runs without it ------------------------

def _answered(v, status, install_packages=True):
    task = task_by_name("kubeadm", "repository.yml", "Record whether the repository answered")
    v["kubeadm_install_packages"] = install_packages
    v["kubeadm_repository_probe"] = {"status": status, "msg": "Status code was -1: <urlopen error [Errno -3]>"}
    for key, value in task["vars"].items():
        v[key] = value
    return (expr(task["ansible.builtin.set_fact"]["kubeadm_package_repository_reachable"], v),
            expr(task["ansible.builtin.set_fact"]["kubeadm_package_repository_error"], v))


@pytest.mark.parametrize("status, install_packages, reachable", [
    (200, True, True), (302, True, True), (-1, True, False), (404, True, False), (503, True, False),
    # packages preinstalled (golden AMI): the repository does not matter
    (-1, False, True),
])
def test_repository_answer(status, install_packages, reachable, tmp_path):
    got, error = _answered(ha_vars("cp1", tmp_path), status, install_packages)
    assert got is reachable
    if reachable:
        assert error == ""
    else:
        assert error == ("https://pkgs.k8s.io/core:/stable: did not answer cp1 within 5 s: Status code was -1: "
                         "<urlopen error [Errno -3]>")


def test_repository_probe_is_bounded_and_read_only():
    task = task_by_name("kubeadm", "repository.yml", "Ask the Kubernetes package repository for its signing key (bounded)")
    assert task["ansible.builtin.uri"]["method"] == "HEAD"
    assert task["ansible.builtin.uri"]["timeout"] == "{{ kubeadm_repository_timeout | int }}"
    assert task["check_mode"] is False and task["failed_when"] is False
    assert load_yaml("kubeadm", "defaults", "main.yml")["kubeadm_repository_timeout"] == 5


MAIN = {
    "packages": "Install kubelet, kubeadm and kubectl from pkgs.k8s.io",
    "init": "Initialise the first control-plane node",
    "join": "Join the other control planes (kubeadm join --control-plane) and the workers",
    "kubeconfig": "Write the admin kubeconfig to the controller",
}


@pytest.mark.parametrize("reachable, install_packages, runs", [
    (True, True, {"packages", "init", "kubeconfig"}),
    # no answer: no packages, no init/join; the kubeconfig fetch still runs (it writes only an existing admin.conf)
    (False, True, {"kubeconfig"}),
    # packages preinstalled: the repository's answer does not matter
    (False, False, {"init", "kubeconfig"}),
])
def test_what_the_first_control_plane_runs(reachable, install_packages, runs, tmp_path):
    v = ha_vars("cp1", tmp_path, kubeadm_install_packages=install_packages)
    v["kubeadm_package_repository_reachable"] = reachable
    got = set(k for k, name in MAIN.items()
              if all(condition(c, v) for c in task_by_name("kubeadm", "main.yml", name)["when"]))
    assert got == runs


def test_a_joining_node_without_packages_does_not_join(tmp_path):
    v = ha_vars("cp2", tmp_path)
    v["kubeadm_package_repository_reachable"] = False
    assert not all(condition(c, v) for c in task_by_name("kubeadm", "main.yml", MAIN["join"])["when"])


def test_the_kubeconfig_is_written_only_from_an_existing_admin_conf():
    tasks = load_yaml("kubeadm", "tasks", "kubeconfig.yml")
    assert tasks[0]["ansible.builtin.stat"]["path"] == "{{ kubeadm_admin_conf_path }}"
    assert tasks[0]["check_mode"] is False
    slurp = task_by_name("kubeadm", "kubeconfig.yml", "Read the admin kubeconfig")
    assert slurp["ansible.builtin.slurp"]["src"] == "{{ kubeadm_admin_conf_path }}"
    assert slurp["when"] == "kubeadm_admin_conf_found.stat.exists"
    assert load_yaml("kubeadm", "defaults", "main.yml")["kubeadm_admin_conf_path"] == "/etc/kubernetes/admin.conf"


def test_install_stops_or_skips_without_the_repository():
    plays = load_yaml("..", "playbooks", "install.yml")
    prepare = next(p for p in plays if p["name"].startswith("Prepare nodes"))
    names = [t["name"] for t in prepare["pre_tasks"]]
    assert names == ["Check that every node reaches the Kubernetes package repository (bounded)",
                     "Stop if the Kubernetes package repository does not answer (install_require_package_repository)",
                     "Say what is skipped without the Kubernetes packages"]
    gated = dict((t["ansible.builtin.include_role"]["name"], t.get("when")) for t in prepare["tasks"])
    assert gated == {"node_prep": "kubeadm_package_repository_reachable | bool", "kubeadm": None,
                     "calico": "kubeadm_package_repository_reachable | bool",
                     "coredns": "kubeadm_package_repository_reachable | bool"}
    stop = prepare["pre_tasks"][1]["ansible.builtin.assert"]
    assert "install_require_package_repository=false" in stop["fail_msg"]
    assert "kubeadm_install_packages=false" in stop["fail_msg"]
