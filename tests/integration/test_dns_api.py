"""dns_check's Kubernetes API layer through ansible-playbook, the real ``kubernetes`` client and the
API fake (tests/fakes/k8s_api.py): CoreDNS state, kube-dns endpoints, NetworkPolicies, Services and the
probe pods' termination messages. Each check is proven both ways (broken -> finding, healthy -> pass)."""

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from tests.fakes.k8s_api import FakeKubeAPI
from tests.lab.dnslab import LOOP_COREFILE, localhost_inventory, probe_message, probe_plan, run_playbook, terminate_pod

NODES = ("node1", "node2", "node3")
HEALTHY_COREFILE = LOOP_COREFILE.replace("forward . /etc/resolv.conf", "forward . 169.254.169.253")


def ns_obj(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}


def node_obj(name, i):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.1.%d" % (10 + i)}]}}


def coredns_pod(i, node, ready=True):
    cs = {"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.11.3", "ready": ready,
          "restartCount": 0 if ready else 6, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}
    if not ready:
        cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}}
        loop_msg = ('[FATAL] plugin/loop: Loop (127.0.0.1:41279 -> :53) detected for zone ".", see '
                    'https://coredns.io/plugins/loop#troubleshooting')
        cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "message": loop_msg}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "coredns-7db6d8ff4d-%d" % i, "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns", "pod-template-hash": "7db6d8ff4d"}},
            "spec": {"nodeName": node, "containers": [{"name": "coredns", "image": cs["image"], "ports": [
                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": "192.168.%d.10" % i,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [cs]}}


def app_pod(name, ns, labels, port):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": "node2", "containers": [{"name": "app", "image": "nginx:1.27",
                                                          "ports": [{"containerPort": port, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": "192.168.2.20"}}


def service(name, ns, selector, port, target):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.%d.%d" % (len(name), port % 250), "selector": selector,
                     "ports": [{"name": "http", "port": port, "targetPort": target, "protocol": "TCP"}]}}


def cluster_objects(broken):
    """The seeds' cluster, healthy or with every seeded DNS/service breakage at once."""
    objs = [ns_obj("default"), ns_obj("kube-system"), ns_obj("shop")]
    objs += [node_obj(n, i) for i, n in enumerate(NODES, 1)]
    pods = [coredns_pod(1, "node1", ready=not broken), coredns_pod(2, "node2", ready=not broken)]
    objs += pods
    objs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system"},
                 "spec": {"clusterIP": "10.96.0.10", "selector": {"k8s-app": "kube-dns"}, "ports": [
                     {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                     {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}})
    eps = [] if broken else [{"addresses": [p["status"]["podIP"]], "nodeName": p["spec"]["nodeName"],
                              "conditions": {"ready": True}, "targetRef": {"kind": "Pod", "name": p["metadata"]["name"]}}
                             for p in pods]
    objs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": "kube-dns-abcde", "namespace": "kube-system",
                              "labels": {"kubernetes.io/service-name": "kube-dns"}},
                 "addressType": "IPv4", "endpoints": eps, "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]})
    objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"},
                 "data": {"Corefile": LOOP_COREFILE if broken else HEALTHY_COREFILE}})
    # the shop: backend pods (app: backend, port 80) behind Services "api" and "backend"
    objs += [app_pod("backend-6d4cf56db6-%s" % s, "shop", {"app": "backend"}, 80) for s in ("q7x2z", "m3k9p")]
    objs.append(service("api", "shop", {"app": "api"} if broken else {"app": "backend"}, 80, 80))
    objs.append(service("backend", "shop", {"app": "backend"}, 80, 8080 if broken else 80))
    objs.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": "default-deny-all", "namespace": "shop"},
                 "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}})
    if not broken:
        objs.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                     "metadata": {"name": "allow-dns", "namespace": "shop"},
                     "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
                         "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                 "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}})
    return objs


def kubelet_by_node(behaviour):
    """on_create hook: behaviour[nodeName] in ok / nxdomain / timeout / upstream / pending / garbage."""
    def hook(pod, cluster):
        mode = behaviour.get(pod["spec"]["nodeName"], "ok")
        if mode == "pending":
            pod["status"] = {"phase": "Pending", "containerStatuses": [{"name": "probe", "ready": False, "restartCount": 0,
                                                                        "state": {"waiting": {"reason": "ContainerCreating"}}}]}
            return
        if mode == "garbage":
            terminate_pod(pod, "sh: nslookup: not found\n", exit_code=127)
            return
        rows = []
        for name, kind in probe_plan(pod):
            status = "ok"
            if mode == "nxdomain" and kind == "user":
                status = "nxdomain"
            elif mode == "timeout":
                status = "timeout"
            elif mode == "upstream" and kind == "external":
                status = "timeout"
            rows.append((name, kind, status, "10.96.0.1" if status == "ok" else ""))
        terminate_pod(pod, probe_message(rows), 0 if all(r[2] == "ok" for r in rows) else 1)
    return hook


@pytest.fixture()
def api():
    fake = FakeKubeAPI().start()
    tmp = tempfile.mkdtemp(prefix="kdnsapi-")
    fake.kubeconfig = fake.write_kubeconfig(os.path.join(tmp, "kubeconfig"))
    yield fake
    fake.stop()


def play(fake, args=(), **evars):
    base = {"validate_dns_kubeconfig": fake.kubeconfig, "validate_dns_external_name": "example.test",
            "validate_dns_probe_timeout": 10, "validate_dns_timeout": 1}
    base.update(evars)
    return run_playbook("dns_api.yml", localhost_inventory(), base, timeout=120, args=args)


def by_id(findings):
    out = {}
    for f in findings:
        out.setdefault(f["id"], []).append(f)
    return out


def test_seeded_cluster_breakages_all_reported(api):
    api.cluster.add_all(cluster_objects(broken=True))
    rc, res, wall, out, report = play(api, validate_dns_pod_probe=False)
    assert rc != 0, out
    f = by_id(res["findings"])
    assert sorted(f) == ["COREDNS_NOT_READY", "DNS_NO_ENDPOINTS", "NETPOL_BLOCKS_DNS", "SVC_NO_ENDPOINTS"], out
    # CrashLoopBackOff with the loop Corefile -> the loop hint
    assert len(f["COREDNS_NOT_READY"]) == 2
    loop = f["COREDNS_NOT_READY"][0]
    assert "CrashLoopBackOff" in loop["observed"] and "Loop (127.0.0.1:41279 -> :53) detected" in loop["observed"]
    assert "forwards '.' to /etc/resolv.conf" in loop["why"]
    assert "resolvConf: /run/systemd/resolve/resolv.conf" in loop["remediation"]
    # empty kube-dns endpoints
    assert f["DNS_NO_ENDPOINTS"][0]["where"] == "kube-system/kube-dns"
    assert "none of the 2 CoreDNS pod(s) is Ready" in f["DNS_NO_ENDPOINTS"][0]["why"]
    # the deny-all policy
    np = f["NETPOL_BLOCKS_DNS"][0]
    assert np["where"] == "namespace shop" and np["details"]["policies"] == ["default-deny-all"]
    assert np["details"]["pods"] == ["backend-6d4cf56db6-m3k9p", "backend-6d4cf56db6-q7x2z"]
    assert "name: allow-dns, namespace: shop" in np["remediation"]
    # wrong selector (app: api vs app: backend) and the port mismatch
    svc = {x["where"]: x for x in f["SVC_NO_ENDPOINTS"]}
    assert sorted(svc) == ["service shop/api", "service shop/backend"]
    assert svc["service shop/api"]["observed"].startswith("selector app=api matches no pod in namespace shop")
    assert '"selector":{"app":"backend"}' in svc["service shop/api"]["remediation"]
    assert svc["service shop/backend"]["observed"] == (
        "port http targetPort 8080/TCP matches no containerPort of the 2 selected pod(s) (declared: 80/TCP)")
    # the failure message carries what/where/why/fix
    assert res["msg"].startswith("dns_check: 6 problem(s) found") and "fix: add an allow-dns egress policy" in res["msg"]
    from tests.lab.dnslab import task_results
    assert task_results(report, "Fail with every DNS finding")["localhost"]["failed"] is True


def test_tutorial_allow_dns_explained_by_its_namespace_label(api):
    """The tutorial's "fixed" namespace: allow-dns selects namespaces by name=kube-system, a label no
    namespace carries. The finding names it, the label kube-system does carry, and one patch that fixes it."""
    objs = [o for o in cluster_objects(broken=False) if o["metadata"].get("name") != "allow-dns"]
    objs.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": "allow-dns", "namespace": "shop"},
                 "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
                     "to": [{"namespaceSelector": {"matchLabels": {"name": "kube-system"}}}],
                     "ports": [{"protocol": "UDP", "port": 53}]}]}})
    api.cluster.add_all(objs)
    rc, res, _wall, out, _report = play(api, validate_dns_pod_probe=False)
    assert rc != 0, out
    f = by_id(res["findings"])
    assert sorted(f) == ["NETPOL_BLOCKS_DNS"], out  # the near miss is explained in it, not repeated
    np = f["NETPOL_BLOCKS_DNS"][0]
    assert np["details"]["blocked"] == ["UDP", "TCP"]
    assert np["observed"].endswith("nearest rule shop/allow-dns egress rule 0: namespaceSelector name=kube-system "
                                   "does not select namespace kube-system (it carries kubernetes.io/metadata.name="
                                   "kube-system)")
    assert np["remediation"].startswith("select namespace kube-system by the label the control plane sets")
    assert ('"path":"/spec/egress/0/to/0/namespaceSelector","value":{"matchLabels":{"kubernetes.io/metadata.name":'
            '"kube-system"}}' in np["remediation"])


def test_healthy_cluster_passes_with_probe_pods(api):
    api.cluster.add_all(cluster_objects(broken=False))
    api.cluster.on_create["pods"] = kubelet_by_node({})
    rc, res, wall, out, _report = play(api, validate_dns_names=["api.shop"])
    assert rc == 0, out
    assert res["findings"] == [], out
    assert res["summary"] == ["node1: probe pod finished (3 names)", "node2: probe pod finished (3 names)",
                              "node3: probe pod finished (3 names)"]
    assert api.cluster.objects("api/v1", "pods") and not [
        p for p in api.cluster.objects("api/v1", "pods") if p["metadata"]["namespace"] == "default"]


def test_check_mode_reads_but_starts_no_probe_pod(api):
    api.cluster.add_all(cluster_objects(broken=True))
    rc, res, wall, out, _report = play(api, args=["--check"])
    assert rc != 0, out  # the read-only analysis still runs and reports
    assert "NETPOL_BLOCKS_DNS" in {f["id"] for f in res["findings"]}
    assert [m for m, p in api.cluster.requests if m in ("POST", "DELETE", "PATCH")] == []


def test_probe_pod_outcomes_and_cleanup(api):
    api.cluster.add_all(cluster_objects(broken=False))
    api.cluster.add(node_obj("node4", 4))
    api.cluster.add(node_obj("node5", 5))
    api.cluster.add(node_obj("node6", 6))
    api.cluster.on_create["pods"] = kubelet_by_node(
        {"node1": "ok", "node2": "nxdomain", "node3": "upstream", "node4": "pending", "node5": "garbage",
         "node6": "timeout"})
    start = time.time()
    rc, res, wall, out, _report = play(api, validate_dns_names=["missing.shop"], validate_dns_probe_timeout=4)
    assert rc != 0, out
    f = by_id(res["findings"])
    assert f["DNS_NAME_NOT_FOUND"][0]["observed"] == (
        "cluster DNS answered NXDOMAIN for missing.shop.svc.cluster.local (from pod on node2)")
    lookups = {x["where"]: x for x in f["DNS_LOOKUP_FAILED"]}
    assert sorted(lookups) == ["node3", "node6"], out
    assert lookups["node3"]["details"]["external_only"] is True  # cluster names resolved in the same pod
    probe_failed = {x["where"]: x for x in f["DNS_PROBE_FAILED"]}
    assert sorted(probe_failed) == ["node4", "node5"], out
    assert "did not finish within 4s (phase Pending, waiting: ContainerCreating)" in probe_failed["node4"]["observed"]
    assert "exit 127): sh: nslookup: not found" in probe_failed["node5"]["observed"]
    # the probe on node6 timed out on every name: DNS through the service is unreachable from its pods
    assert lookups["node6"]["details"]["external_only"] is False
    assert ("kubernetes.default.svc.cluster.local -> timeout, missing.shop.svc.cluster.local -> timeout"
            in lookups["node6"]["observed"])
    assert "DNS_SERVICE_UNREACHABLE" not in f and "UPSTREAM_TIMEOUT" not in f
    # bounded: the pending pod costs the probe timeout, not more
    assert time.time() - start < 4 + 25, wall
    # every probe pod deleted, the pending one too
    assert [p for p in api.cluster.objects("api/v1", "pods") if p["metadata"]["namespace"] == "default"] == []
    deletes = [p for m, p in api.cluster.requests if m == "DELETE" and "/namespaces/default/pods/" in p]
    assert len(deletes) == 6


def run_module_directly(module, args):
    """Run a module file as Ansible's module debugging does (``python module.py args.json``): no
    ansible-playbook start-up, the same AnsibleModule argument handling."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tmp = tempfile.mkdtemp(prefix="kdnsargs-")
    path = os.path.join(tmp, "args.json")
    with open(path, "w") as fh:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, fh)
    env = dict(os.environ, PYTHONPATH=os.path.join(root, ".collections"))
    return subprocess.Popen([sys.executable, os.path.join(root, "plugins", "modules", module + ".py"), path],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_bad_input_names_the_parameter():
    svc = {"service_ip": "10.96.0.10"}
    cases = [
        ("node_probe", {"node": "n1", "dns": dict(svc, timeout=-1)}, "dns.timeout must be > 0"),
        ("node_probe", {"node": "n1", "dns": {"service_ip": "not-an-ip"}}, "dns.service_ip must be an IP address"),
        ("node_probe", {"node": "n1", "dns": dict(svc, names=[" "])}, "dns.names: empty name"),
        ("node_probe", {"node": "n1", "dns": dict(svc, port=70000)}, "dns.port must be 1-65535"),
        # no part selected: the module has one action, it refuses to do nothing
        ("node_probe", {"node": "n1"}, "one of the following is required: reachability, dns"),
        ("dns_cluster_info", {"kubeconfig": "/nonexistent/kubeconfig"}, "cannot load kubeconfig /nonexistent/kubeconfig"),
        ("dns_probe_pods", {"probe_timeout": 0}, "probe_timeout must be > 0"),
    ]
    procs = [run_module_directly(case[0], case[1]) for case in cases]
    for (_module, args, expected), proc in zip(cases, procs):
        out = proc.communicate(timeout=60)[0]
        result = json.loads(out[out.index("{"):])
        assert result.get("failed") is True, (args, out)
        assert expected in result["msg"] and "Traceback" not in out, (args, out)


def test_bad_input_and_unreachable_api_through_ansible():
    tmp = tempfile.mkdtemp(prefix="kdnsapi-")
    fake = FakeKubeAPI().start()
    kubeconfig = fake.write_kubeconfig(os.path.join(tmp, "kubeconfig"))
    fake.stop()  # nothing listens there any more
    cases = [
        ({"node": "node1", "dns": {"service_ip": "10.96.0.10", "endpoints": [{"ip": "x", "node": "node1"}]}},
         "dns.endpoints[0].ip must be an IP address"),
        ({"kubeconfig": kubeconfig, "api_timeout": 2},
         "dns_check (cluster reads): read service kube-system/kube-dns failed: cannot reach the Kubernetes API"),
    ]
    rc, _res, _wall, out, report = run_playbook("dns_bad_input.yml", localhost_inventory(),
                                                {"dns_bad_node_cases": [cases[0][0]],
                                                 "dns_bad_cluster_cases": [cases[1][0]]},
                                                result_task=None)
    assert rc == 0, out
    from tests.lab.dnslab import task_results
    msgs = [r.get("msg", "") for task in ("Run one bad node_probe case", "Run one bad dns_cluster_info case")
            for r in task_results(report, task)["localhost"]["results"]]
    assert len(msgs) == len(cases)
    for (case, expected), msg in zip(cases, msgs):
        assert expected in msg, (case, msg)
        assert "Traceback" not in msg
