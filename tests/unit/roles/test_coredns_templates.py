"""Rendered Corefile (by ansible-core): loop-safe forward target, structure, and the loop guards of the coredns role."""

import base64

import pytest
import yaml

from tests.unit.roles._render import assert_holds, expr, load_yaml, render, role_vars, task_by_name


def coredns_vars(**overrides):
    return role_vars("coredns", {"groups": {"control_plane": ["cp1"]}, "inventory_hostname": "cp1"}, overrides)


def corefile(**overrides):
    return render("coredns", "Corefile.j2", coredns_vars(**overrides))


def forward_line(text):
    (line,) = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("forward ")]
    return line


def test_default_forwards_to_the_vpc_resolver():
    assert load_yaml("coredns", "defaults", "main.yml")["coredns_forward_target"] == "169.254.169.253"
    text = corefile()
    assert forward_line(text) == "forward . 169.254.169.253 {"
    assert text.count("{") == text.count("}")
    assert text.startswith(".:53 {")
    for plugin in ("errors", "health {", "ready", "kubernetes cluster.local in-addr.arpa ip6.arpa {",
                   "prometheus :9153", "cache 30", "loop", "reload", "loadbalance", "max_concurrent 1000"):
        assert "\n    %s" % plugin in text or "\n       %s" % plugin in text, plugin


def kubernetes_zones(text):
    (line,) = [ln.split() for ln in text.splitlines() if ln.strip().startswith("kubernetes ")]
    assert line[-1] == "{"
    return line[1:-1]


def test_several_upstreams_and_custom_domain():
    text = corefile(coredns_forward_target="10.0.0.2 10.0.0.3", kubeadm_ec2_dns_domain="k8s.internal")
    assert forward_line(text) == "forward . 10.0.0.2 10.0.0.3 {"
    assert kubernetes_zones(text) == ["k8s.internal", "in-addr.arpa", "ip6.arpa"]


@pytest.mark.parametrize("overrides", [{"kubeadm_ec2_dns_domain": "corp.local"},
                                       {"kubeadm_dns_domain": "corp.local"},        # names of the last release
                                       {"coredns_cluster_domain": "corp.local"}])
def test_cluster_domain_follows_the_contract(overrides):
    assert kubernetes_zones(corefile(**overrides))[0] == "corp.local"


LOOP_ASSERT = "Stop if coredns_forward_target is a loopback address (CoreDNS would forward to itself)"


@pytest.mark.parametrize("target, safe", [
    ("169.254.169.253", True),
    ("10.0.0.2", True),
    ("/etc/resolv.conf", True),          # allowed here, then checked against the kubelet resolv.conf
    ("127.0.0.53", False),               # systemd-resolved stub
    ("127.0.0.11", False),               # docker embedded DNS
    ("10.0.0.2 127.0.0.1", False),
    ("::1", False),
])
def test_loopback_forward_targets_are_refused(target, safe):
    task = task_by_name("coredns", "main.yml", LOOP_ASSERT)
    v = coredns_vars(coredns_forward_target=target)
    assert assert_holds(task, v) is safe
    assert "coredns_forward_target" in task["ansible.builtin.assert"]["fail_msg"]


RESOLV_ASSERT = ("Stop if coredns_forward_target=/etc/resolv.conf while the kubelet resolv.conf lists a "
                 "loopback resolver")


@pytest.mark.parametrize("resolv_conf, safe", [
    ("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch ec2.internal\n", False),   # Ubuntu stub file
    ("# resolved upstream\nnameserver 10.0.0.2\nsearch ec2.internal\n", True),        # /run/systemd/resolve/resolv.conf
    ("nameserver 169.254.169.253\n", True),
    ("search ec2.internal\n", False),                                                  # no nameserver at all
])
def test_resolv_conf_target_checked_against_the_kubelet_file(resolv_conf, safe):
    task = task_by_name("coredns", "main.yml", RESOLV_ASSERT)
    v = coredns_vars(coredns_forward_target="/etc/resolv.conf")
    assert v["coredns_forwards_to_resolv_conf"] is True
    v["coredns_node_resolv_conf"] = {"content": base64.b64encode(resolv_conf.encode()).decode()}
    assert assert_holds(task, v) is safe


def _b64(text):
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("kubelet_config, explicit, expected", [
    # what the kubeadm role renders (KubeletConfiguration.resolvConf) is read back from the node
    ({"kind": "KubeletConfiguration", "resolvConf": "/run/systemd/resolve/resolv.conf"}, "",
     "/run/systemd/resolve/resolv.conf"),
    ({"kind": "KubeletConfiguration"}, "", "/etc/resolv.conf"),            # kubelet default
    ({"kind": "KubeletConfiguration", "resolvConf": "/run/systemd/resolve/resolv.conf"}, "/etc/k8s-resolv.conf",
     "/etc/k8s-resolv.conf"),                                             # set explicitly: the node is not read
])
def test_the_checked_file_is_the_kubelets_resolv_conf(kubelet_config, explicit, expected):
    v = coredns_vars(coredns_forward_target="/etc/resolv.conf", coredns_kubelet_resolv_conf=explicit)
    read = task_by_name("coredns", "main.yml", "Read the kubelet configuration (its resolvConf is what CoreDNS pods get)")
    assert read["ansible.builtin.slurp"]["src"] == "{{ coredns_kubelet_config }}"
    assert v["coredns_kubelet_config"] == "/var/lib/kubelet/config.yaml"
    if explicit:
        assert expr("{{ %s }}" % read["when"], v) is False
    else:
        v["coredns_kubelet_config_file"] = {"content": _b64(yaml.safe_dump(kubelet_config))}
    assert v["coredns_kubelet_resolv_conf_path"] == expected


def test_rollout_is_triggered_by_the_corefile_hash_and_bounded():
    task = task_by_name("coredns", "configure.yml",
                        "Roll out CoreDNS when the Corefile changes and wait until it is available")
    k8s = task["kubernetes.core.k8s"]
    annotations = k8s["definition"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"kubeadm-ec2.cluster/corefile-sha256": "{{ coredns_corefile | hash('sha256') }}"}
    assert k8s["wait"] is True
    assert k8s["wait_timeout"] == "{{ coredns_rollout_timeout }}"
