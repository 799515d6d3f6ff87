"""Rendered kubeadm configuration (by ansible-core): schema, CIDRs, endpoint, kubelet resolvConf logic, join config."""

import ipaddress

import pytest
import yaml

from tests.unit.roles._render import assert_holds, condition, contract_problem, expr, load_yaml, render, role_vars, task_by_name

CP_IP = "10.42.1.10"
WORKER_IP = "10.42.1.20"

# Fields kubeadm accepts per kind (subset of the v1beta3/v1beta4 and kubelet v1beta1 types used here);
# anything else would be rejected by `kubeadm config validate` (strict decoding).
SCHEMA = {
    "InitConfiguration": {"apiVersion", "kind", "localAPIEndpoint", "nodeRegistration", "bootstrapTokens",
                          "certificateKey", "skipPhases", "patches", "timeouts"},
    "ClusterConfiguration": {"apiVersion", "kind", "clusterName", "kubernetesVersion", "controlPlaneEndpoint",
                             "networking", "apiServer", "controllerManager", "scheduler", "etcd", "dns",
                             "certificatesDir", "imageRepository", "featureGates"},
    "JoinConfiguration": {"apiVersion", "kind", "discovery", "nodeRegistration", "controlPlane", "caCertPath",
                          "skipPhases", "patches", "timeouts"},
    "KubeletConfiguration": {"apiVersion", "kind", "cgroupDriver", "resolvConf", "clusterDNS", "clusterDomain"},
}
NODE_REGISTRATION = {"criSocket", "name", "kubeletExtraArgs", "ignorePreflightErrors", "taints",
                     "imagePullPolicy"}


def hostvars_for(cp_ip=CP_IP, worker_ip=WORKER_IP):
    return {
        "cp1": {"private_ip_address": cp_ip, "ansible_facts": {}},
        "w1": {"private_ip_address": worker_ip, "ansible_facts": {}},
    }


def kubeadm_vars(resolved_active=False, host="cp1", **overrides):
    hostvars = hostvars_for()
    facts = {
        "inventory_hostname": host,
        "groups": {"control_plane": ["cp1"], "workers": ["w1"], "k8s_cluster": ["cp1", "w1"]},
        "hostvars": hostvars,
        "private_ip_address": hostvars[host]["private_ip_address"],
        "ansible_facts": {"default_ipv4": {"address": "172.31.0.5"}, "os_family": "Debian"},
    }
    v = role_vars("kubeadm", facts, overrides)
    # tasks/resolv_conf.yml: the stat result, then the set_fact expression evaluated as Ansible would
    v["kubeadm_resolved_conf"] = {"stat": {"exists": resolved_active}}
    fact = task_by_name("kubeadm", "resolv_conf.yml", "Choose the kubelet resolvConf")
    v["kubeadm_kubelet_resolv_conf_effective"] = expr(
        fact["ansible.builtin.set_fact"]["kubeadm_kubelet_resolv_conf_effective"], v)
    return v


def docs(text):
    loaded = [d for d in yaml.safe_load_all(text) if d is not None]
    for d in loaded:
        assert d["kind"] in SCHEMA, d["kind"]
        unknown = set(d) - SCHEMA[d["kind"]]
        assert not unknown, "%s has unknown fields %s" % (d["kind"], sorted(unknown))
        if "nodeRegistration" in d:
            assert not set(d["nodeRegistration"]) - NODE_REGISTRATION
    return {d["kind"]: d for d in loaded}


def test_default_init_config_is_valid_yaml_with_the_issue_cidrs():
    v = kubeadm_vars()
    out = docs(render("kubeadm", "kubeadm-config.yaml.j2", v))
    assert list(out) == ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"]
    cc = out["ClusterConfiguration"]
    assert cc["apiVersion"] == "kubeadm.k8s.io/v1beta4"          # kubeadm_version 1.31.x
    assert cc["kubernetesVersion"] == "v" + v["kubeadm_version"]
    assert cc["networking"] == {"podSubnet": "192.168.0.0/16", "serviceSubnet": "10.96.0.0/12",
                                "dnsDomain": "cluster.local"}
    ipaddress.ip_network(cc["networking"]["podSubnet"])
    ipaddress.ip_network(cc["networking"]["serviceSubnet"])
    assert cc["controlPlaneEndpoint"] == CP_IP + ":6443"
    assert CP_IP in cc["apiServer"]["certSANs"]
    init = out["InitConfiguration"]
    assert init["localAPIEndpoint"] == {"advertiseAddress": CP_IP, "bindPort": 6443}
    assert init["nodeRegistration"]["criSocket"] == "unix:///run/containerd/containerd.sock"
    assert init["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "node-ip", "value": CP_IP}]
    assert "ignorePreflightErrors" not in init["nodeRegistration"]
    kubelet = out["KubeletConfiguration"]
    assert kubelet["cgroupDriver"] == "systemd"
    # the cluster DNS IP is derived from the service CIDR (10th address), not typed
    assert kubelet["clusterDNS"] == ["10.96.0.10"]
    assert ipaddress.ip_address(kubelet["clusterDNS"][0]) in ipaddress.ip_network(cc["networking"]["serviceSubnet"])
    assert kubelet["clusterDomain"] == cc["networking"]["dnsDomain"] == "cluster.local"
    assert cc["clusterName"] == "kubeadm-ec2"


@pytest.mark.parametrize("overrides, pod, svc, dns_ip, domain", [
    ({"kubeadm_ec2_pod_cidr": "10.244.0.0/16", "kubeadm_ec2_service_cidr": "10.100.0.0/16",
      "kubeadm_ec2_dns_domain": "k8s.internal"}, "10.244.0.0/16", "10.100.0.0/16", "10.100.0.10", "k8s.internal"),
    # the names of the previous release still work (aliases read by roles/cluster_defaults)
    ({"kubeadm_pod_subnet": "10.32.0.0/12", "kubeadm_service_subnet": "172.20.0.0/16",
      "kubeadm_dns_domain": "corp.local"}, "10.32.0.0/12", "172.20.0.0/16", "172.20.0.10", "corp.local"),
])
def test_networking_follows_the_contract(overrides, pod, svc, dns_ip, domain):
    out = docs(render("kubeadm", "kubeadm-config.yaml.j2", kubeadm_vars(**overrides)))
    assert out["ClusterConfiguration"]["networking"] == {"podSubnet": pod, "serviceSubnet": svc, "dnsDomain": domain}
    assert out["KubeletConfiguration"]["clusterDNS"] == [dns_ip]
    assert out["KubeletConfiguration"]["clusterDomain"] == domain


def test_v1beta3_for_kubernetes_before_1_31_uses_a_map_of_kubelet_args():
    v = kubeadm_vars(kubeadm_version="1.30.8")
    out = docs(render("kubeadm", "kubeadm-config.yaml.j2", v))
    assert out["InitConfiguration"]["apiVersion"] == "kubeadm.k8s.io/v1beta3"
    assert out["InitConfiguration"]["nodeRegistration"]["kubeletExtraArgs"] == {"node-ip": CP_IP}
    assert v["kubeadm_minor"] == "1.30"


@pytest.mark.parametrize("setting, resolved_active, expected", [
    ("auto", True, "/run/systemd/resolve/resolv.conf"),   # Ubuntu: 127.0.0.53 stub -> use resolved's upstream file
    ("auto", False, None),                                 # Debian/AL2023 without resolved: kubelet default
    ("/etc/k8s-resolv.conf", True, "/etc/k8s-resolv.conf"),
    ("/etc/k8s-resolv.conf", False, "/etc/k8s-resolv.conf"),
])
def test_kubelet_resolv_conf_logic(setting, resolved_active, expected):
    v = kubeadm_vars(resolved_active=resolved_active, kubeadm_kubelet_resolv_conf=setting)
    kubelet = docs(render("kubeadm", "kubeadm-config.yaml.j2", v))["KubeletConfiguration"]
    assert kubelet.get("resolvConf") == expected


def test_explicit_endpoint_and_preflight_names():
    v = kubeadm_vars(kubeadm_control_plane_endpoint="k8s-api.internal:6443",
                     kubeadm_ignore_preflight_errors=["NumCPU"])
    out = docs(render("kubeadm", "kubeadm-config.yaml.j2", v))
    assert out["ClusterConfiguration"]["controlPlaneEndpoint"] == "k8s-api.internal:6443"
    assert "k8s-api.internal" in out["ClusterConfiguration"]["apiServer"]["certSANs"]
    assert out["InitConfiguration"]["nodeRegistration"]["ignorePreflightErrors"] == ["NumCPU"]


def test_node_ip_falls_back_to_default_ipv4_without_private_ip_address():
    v = kubeadm_vars()
    v.pop("private_ip_address")
    assert v["kubeadm_node_ip"] == "172.31.0.5"


def test_join_config_for_a_worker():
    v = kubeadm_vars(host="w1")
    v["kubeadm_join_token"] = "abcdef.0123456789abcdef"
    v["kubeadm_join_ca_hash"] = "sha256:" + "a" * 64
    out = docs(render("kubeadm", "kubeadm-join.yaml.j2", v))
    join = out["JoinConfiguration"]
    assert join["discovery"]["bootstrapToken"] == {
        "apiServerEndpoint": CP_IP + ":6443",
        "token": "abcdef.0123456789abcdef",
        "caCertHashes": ["sha256:" + "a" * 64],
    }
    assert join["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "node-ip", "value": WORKER_IP}]
    assert join["nodeRegistration"]["name"] == "w1"


def test_join_token_and_hash_are_parsed_from_print_join_command():
    task = task_by_name("kubeadm", "join.yml", "Render the kubeadm join configuration")
    stdout = ("kubeadm join 10.42.1.10:6443 --token abcdef.0123456789abcdef "
              "--discovery-token-ca-cert-hash sha256:" + "b" * 64 + " \n")
    v = {"kubeadm_join_command": {"stdout": stdout}}
    assert expr(task["vars"]["kubeadm_join_token"], v) == "abcdef.0123456789abcdef"
    assert expr(task["vars"]["kubeadm_join_ca_hash"], v) == "sha256:" + "b" * 64
    assert task["no_log"] == "{{ kubeadm_no_log }}"


@pytest.mark.parametrize("pod, svc, overlap", [
    ("192.168.0.0/16", "10.96.0.0/12", False),
    ("10.96.0.0/16", "10.96.0.0/12", True),
    ("10.0.0.0/8", "10.96.0.0/12", True),
    ("10.112.0.0/12", "10.96.0.0/12", False),
])
def test_subnet_overlap_assert(pod, svc, overlap):
    problem = contract_problem(kubeadm_vars(kubeadm_ec2_pod_cidr=pod, kubeadm_ec2_service_cidr=svc))
    assert (problem is None) is (not overlap)
    if overlap:
        assert "overlaps kubeadm_ec2_service_cidr" in problem
    assert ipaddress.ip_network(pod).overlaps(ipaddress.ip_network(svc)) is overlap


def test_init_and_join_guards():
    init = task_by_name("kubeadm", "init.yml", "Run kubeadm init")
    assert init["when"] == "not kubeadm_admin_conf.stat.exists"
    assert "ignore-preflight-errors" not in str(init["ansible.builtin.command"])
    stat = task_by_name("kubeadm", "init.yml", "Check whether the control plane is already initialised")
    assert stat["ansible.builtin.stat"]["path"] == "{{ kubeadm_admin_conf_path }}"
    assert load_yaml("kubeadm", "defaults", "main.yml")["kubeadm_admin_conf_path"] == "/etc/kubernetes/admin.conf"
    join = task_by_name("kubeadm", "join.yml", "Run kubeadm join")
    assert join["ansible.builtin.command"]["creates"] == "/etc/kubernetes/kubelet.conf"
    assert join["no_log"] == "{{ kubeadm_no_log }}"


def test_join_is_skipped_in_check_mode_and_cleans_up_the_token_file():
    block = task_by_name("kubeadm", "join.yml", "Join this node to the cluster")
    assert block["when"] == ["not kubeadm_kubelet_conf.stat.exists", "not ansible_check_mode"]
    (cleanup,) = block["always"]
    assert cleanup["ansible.builtin.file"] == {"path": "{{ kubeadm_join_config_path }}", "state": "absent"}
    token = task_by_name("kubeadm", "join.yml", "Create a fresh bootstrap token on the first control-plane node")
    assert token["delegate_to"] == "{{ kubeadm_first_control_plane }}"
    assert token["no_log"] == "{{ kubeadm_no_log }}"


# --- API endpoint, kubeconfig server and HA (issue 13) ------------------------------------------------------------

NLB = "kc-api-0123456789.elb.us-east-1.amazonaws.com"
CP_IPS = {"cp1": "10.42.1.10", "cp2": "10.42.2.11", "cp3": "10.42.1.12"}


def ha_vars(host, tmp_path, published=True, **overrides):
    """Three control planes in two subnets and one worker; ``published`` = provisioning ran in the same run and
    left its facts on localhost (docs/provisioning.md)."""
    hostvars = {h: {"private_ip_address": ip, "public_ip_address": "203.0.113.%d" % (i + 1), "ansible_facts": {}}
                for i, (h, ip) in enumerate(sorted(CP_IPS.items()))}
    hostvars["w1"] = {"private_ip_address": WORKER_IP, "ansible_facts": {}}
    hostvars["localhost"] = {}
    if published:
        hostvars["localhost"] = {"ec2_nodes_api_endpoint_kind": "nlb", "ec2_nodes_api_endpoint": NLB,
                                 "ec2_nodes_api_server_url": "https://%s:6443" % NLB,
                                 "ec2_nodes_control_plane_endpoint": NLB + ":6443",
                                 "ec2_nodes_api_cert_sans": [NLB]}
    facts = {
        "inventory_hostname": host,
        "groups": {"control_plane": sorted(CP_IPS), "workers": ["w1"], "k8s_cluster": sorted(CP_IPS) + ["w1"]},
        "hostvars": hostvars,
        "private_ip_address": hostvars[host]["private_ip_address"],
        "ansible_facts": {"default_ipv4": {"address": "172.31.0.5"}, "os_family": "Debian"},
        "ansible_inventory_sources": [str(tmp_path)],
    }
    v = role_vars("kubeadm", facts, overrides)
    v["kubeadm_kubelet_resolv_conf_effective"] = ""
    return v


def test_ha_init_config_puts_the_nlb_in_front(tmp_path):
    v = ha_vars("cp1", tmp_path)
    out = docs(render("kubeadm", "kubeadm-config.yaml.j2", v))
    cc, init = out["ClusterConfiguration"], out["InitConfiguration"]
    assert cc["controlPlaneEndpoint"] == NLB + ":6443"
    assert cc["apiServer"]["certSANs"] == [CP_IPS["cp1"], NLB]
    # kubelets of control planes talk to their own API server, never hairpin through the NLB
    assert cc["featureGates"] == {"ControlPlaneKubeletLocalMode": True}
    # init --upload-certs encrypts the certificates with this key; it is stable across runs (kept on the controller)
    key = init["certificateKey"]
    assert len(key) == 64 and int(key, 16) >= 0 and key == key.lower()
    assert ha_vars("cp1", tmp_path)["kubeadm_certificate_key"] == key
    key_file = tmp_path / "artifacts" / "kubeadm-ec2-certificate-key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert init["localAPIEndpoint"] == {"advertiseAddress": CP_IPS["cp1"], "bindPort": 6443}
    init_task = task_by_name("kubeadm", "init.yml", "Run kubeadm init")
    assert init_task["ansible.builtin.command"]["argv"][-1] == "--upload-certs"


def test_ha_join_configuration_of_a_control_plane(tmp_path):
    v = ha_vars("cp2", tmp_path)
    key = v["kubeadm_certificate_key"]
    v["kubeadm_join_token"] = "abcdef.0123456789abcdef"
    v["kubeadm_join_ca_hash"] = "sha256:" + "c" * 64
    join = docs(render("kubeadm", "kubeadm-join.yaml.j2", v))["JoinConfiguration"]
    assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == NLB + ":6443"
    assert join["controlPlane"] == {"localAPIEndpoint": {"advertiseAddress": CP_IPS["cp2"], "bindPort": 6443},
                                    "certificateKey": key}
    assert join["nodeRegistration"]["name"] == "cp2"
    assert v["kubeadm_joins_as_control_plane"] is True


def test_ha_worker_joins_through_the_nlb_without_control_plane_section(tmp_path):
    v = ha_vars("w1", tmp_path)
    v["kubeadm_join_token"] = "abcdef.0123456789abcdef"
    v["kubeadm_join_ca_hash"] = "sha256:" + "c" * 64
    join = docs(render("kubeadm", "kubeadm-join.yaml.j2", v))["JoinConfiguration"]
    assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == NLB + ":6443"
    assert "controlPlane" not in join
    assert v["kubeadm_joins_as_control_plane"] is False


def test_ha_join_tasks_upload_certs_serially_and_hide_the_key():
    upload = task_by_name("kubeadm", "join.yml", "Upload the control-plane certificates from the first control plane")
    assert upload["ansible.builtin.command"]["argv"][:5] == ["kubeadm", "init", "phase", "upload-certs", "--upload-certs"]
    assert upload["delegate_to"] == "{{ kubeadm_first_control_plane }}"
    assert upload["no_log"] == "{{ kubeadm_no_log }}"
    cp_join = task_by_name("kubeadm", "join.yml", "Run kubeadm join --control-plane (one control plane at a time)")
    assert cp_join["throttle"] == 1 and cp_join["no_log"] == "{{ kubeadm_no_log }}"
    assert cp_join["ansible.builtin.command"]["creates"] == "/etc/kubernetes/kubelet.conf"
    render_task = task_by_name("kubeadm", "join.yml", "Render the kubeadm join configuration")
    assert render_task["no_log"] == "{{ kubeadm_no_log }}"
    assert load_yaml("kubeadm", "defaults", "main.yml")["kubeadm_no_log"] is True


@pytest.mark.parametrize("host, joins", [("cp1", False), ("cp2", True), ("cp3", True), ("w1", True)])
def test_who_joins(host, joins, tmp_path):
    v = ha_vars(host, tmp_path)
    main = task_by_name("kubeadm", "main.yml", "Join the other control planes (kubeadm join --control-plane) and the workers")
    assert all(condition(c, v) for c in main["when"]) is joins


def test_ha_needs_a_load_balanced_endpoint(tmp_path):
    task = task_by_name("kubeadm", "assert.yml",
                        "Stop if there are several control planes but no load-balanced kubeadm_control_plane_endpoint")
    assert assert_holds(task, ha_vars("cp1", tmp_path)) is True
    assert assert_holds(task, ha_vars("cp1", tmp_path, published=False)) is False
    assert "kubeadm_control_plane_endpoint" in task["ansible.builtin.assert"]["fail_msg"]
    assert assert_holds(task, kubeadm_vars()) is True                      # one control plane: no NLB needed


@pytest.mark.parametrize("private, published, server, sans", [
    # provisioning published the single control plane's public address (and its private one for the SANs)
    (False, {"ec2_nodes_api_server_url": "https://203.0.113.9:6443", "ec2_nodes_control_plane_endpoint": CP_IP + ":6443",
             "ec2_nodes_api_cert_sans": ["203.0.113.9", CP_IP]}, "https://203.0.113.9:6443", [CP_IP, "203.0.113.9"]),
    # no provisioning facts: the inventory's public_ip_address
    (False, None, "https://198.51.100.4:6443", [CP_IP, "198.51.100.4"]),
    # a controller inside the VPC: the private endpoint, the kubeconfig keeps admin.conf's server
    (True, None, "", [CP_IP]),
])
def test_kubeconfig_server_and_cert_sans(private, published, server, sans):
    v = kubeadm_vars(kubeadm_ec2_api_private_endpoint=private)
    hostvars = dict(hostvars_for(), localhost=published or {})
    hostvars["cp1"]["public_ip_address"] = "198.51.100.4"
    v["hostvars"] = hostvars
    assert v["kubeadm_kubeconfig_server"] == server
    cc = docs(render("kubeadm", "kubeadm-config.yaml.j2", v))["ClusterConfiguration"]
    assert cc["apiServer"]["certSANs"] == sans
    assert cc["controlPlaneEndpoint"] == CP_IP + ":6443"                    # nodes use the private address
    assert "featureGates" not in cc
    assert "certificateKey" not in docs(render("kubeadm", "kubeadm-config.yaml.j2", v))["InitConfiguration"]


ADMIN_CONF = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0EK
    server: https://10.42.1.10:6443
  name: kubeadm-ec2
contexts:
- context: {cluster: kubeadm-ec2, user: kubernetes-admin}
  name: kubernetes-admin@kubeadm-ec2
current-context: kubernetes-admin@kubeadm-ec2
kind: Config
users:
- name: kubernetes-admin
  user: {client-certificate-data: Q0VSVAo=, client-key-data: S0VZCg==}
"""


@pytest.mark.parametrize("server, expected", [("https://%s:6443" % NLB, "https://%s:6443" % NLB),
                                              ("", "https://10.42.1.10:6443")])
def test_the_written_kubeconfig_points_at_the_chosen_server(server, expected):
    import base64
    task = task_by_name("kubeadm", "kubeconfig.yml", "Write the admin kubeconfig to kubeadm_ec2_kubeconfig on the controller")
    assert task["delegate_to"] == "localhost" and task["become"] is False
    assert task["no_log"] == "{{ kubeadm_no_log }}" and task["ansible.builtin.copy"]["mode"] == "0600"
    v = kubeadm_vars(kubeadm_kubeconfig_server=server)
    v["kubeadm_admin_kubeconfig"] = {"content": base64.b64encode(ADMIN_CONF.encode()).decode()}
    for key, value in task["vars"].items():
        v[key] = value
    written = yaml.safe_load(expr(task["ansible.builtin.copy"]["content"], v))
    assert written["clusters"][0]["cluster"] == {"certificate-authority-data": "Q0EK", "server": expected}
    assert written["users"] == yaml.safe_load(ADMIN_CONF)["users"]
    assert written["current-context"] == "kubernetes-admin@kubeadm-ec2"
