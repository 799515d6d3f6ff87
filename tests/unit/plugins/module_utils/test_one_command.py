"""Issue 11: a root cause's fix is ONE command (plus the role variable) and its verify is ONE command.

The rule itself (catalogue.is_one_command), that every error finding which can be a root cause gives
one (a scan of the plugins' finding() calls), and that the commands do what they say where a real
tool runs here (sed on a CoreDNS ConfigMap; the JSON a ``kubectl apply`` gets, judged again).
"""

import ast
import glob
import json
import os
import re
import shlex
import subprocess

import pytest
import yaml

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import catalogue as cat
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import dns
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import netpol
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import paths
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import finding

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


@pytest.mark.parametrize("text", [
    cat.self_ref_cli("sg-1"),
    cat.self_ref_verify("sg-1"),
    cat.coredns_forward_cli(),
    cat.dns_verify("example.test"),
    cat.validate_cli(),
    cat.validate_cli("dns"),
    cat.host_firewall_cli(["node1", "node2"]),
    cat.nacl_cli(["subnet-1"]),
    "kubectl -n shop patch service api -p '{\"spec\":{\"selector\":{\"app\":\"backend\"}}}'",
    "echo '{\"a\": \"b; c\"}' | kubectl apply -f -",
])
def test_one_command(text):
    assert cat.is_one_command(text), text


@pytest.mark.parametrize("text", [
    "",
    "on node3: sudo iptables -S; sudo nft list ruleset",
    "aws ec2 describe-security-groups --group-ids sg-1 (must list sg-1)",
    "kubectl get pods; then ansible-playbook playbooks/validate.yml",
    "docker buildx build -t x --push DIR, or pin the workload to arm64 nodes",
    "kubectl apply -f - <<'EOF'\nkind: NetworkPolicy\nEOF",
    "kubectl get pods && kubectl get svc",
    "add the self-referencing rule: aws ec2 authorize-security-group-ingress",
    "kubectl patch svc x -p '{unbalanced",
    "Fix the image field",
])
def test_not_one_command(text):
    assert not cat.is_one_command(text), text


def test_finding_rejects_a_cli_that_is_not_one_command():
    with pytest.raises(ValueError, match="cli must be one command"):
        finding("SG_NO_SELF_REF", "o", "w", "r", cli="do this; then that")
    assert finding("SG_NO_SELF_REF", "o", "w", "r", cli=cat.self_ref_cli("sg-1"))["cli"] == cat.self_ref_cli("sg-1")
    assert "cli" not in finding("NODE_PORT_BLOCKED", "o", "w", "r")


def _finding_calls():
    for path in sorted(glob.glob(os.path.join(ROOT, "plugins", "**", "*.py"), recursive=True)):
        with open(path) as fh:
            tree = ast.parse(fh.read())
        for node in ast.walk(tree):
            name = getattr(node.func, "id", getattr(node.func, "attr", None)) if isinstance(node, ast.Call) else None
            if name == "finding" and node.args and isinstance(node.args[0], ast.Constant):
                yield os.path.relpath(path, ROOT), node


def test_every_error_finding_that_can_be_a_cause_gives_one_command():
    calls = list(_finding_calls())
    assert len(calls) > 30  # the scan sees the checks' finding() calls
    missing = []
    for path, node in calls:
        fid = node.args[0].value
        if cat.entry(fid)["kind"] == cat.OBSERVATION:
            continue
        kws = {k.arg: k.value for k in node.keywords}
        severity = kws.get("severity")
        if isinstance(severity, ast.Name) and severity.id == "WARNING":
            continue
        if "cli" not in kws:
            missing.append("%s:%d %s" % (path, node.lineno, fid))
    assert not missing, ("error findings that can be a root cause must pass cli= (ONE command that fixes it, "
                         "catalogue.is_one_command): %s" % ", ".join(missing))


COREDNS_CM = """apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        kubernetes cluster.local in-addr.arpa ip6.arpa {
           pods insecure
        }
        forward . %s
        cache 30
        loop
    }
"""


@pytest.mark.parametrize("forward", ["/etc/resolv.conf {\n           max_concurrent 1000\n        }", "8.8.8.8",
                                     "10.0.0.2 10.0.0.3"])
def test_coredns_forward_cli_rewrites_the_corefile(forward):
    """The sed stage of the loop / upstream fix, run by the real sed on a kubeadm-like ConfigMap."""
    cli = cat.coredns_forward_cli()
    stages = [s.strip() for s in cli.split("|")]
    assert stages[0] == "kubectl -n kube-system get configmap coredns -o yaml"
    assert stages[-1] == "kubectl apply -f -"
    out = subprocess.run(shlex.split(stages[1]), input=COREDNS_CM % forward, capture_output=True, text=True,
                         check=True).stdout
    corefile = yaml.safe_load(out)["data"]["Corefile"]
    forwards = [line.strip() for line in corefile.splitlines() if line.strip().startswith("forward")]
    assert forwards and all(re.match(r"forward \. 169\.254\.169\.253( \{)?$", f) for f in forwards), forwards
    assert corefile.count("{") == corefile.count("}")  # a forward block keeps its braces
    assert "kubernetes cluster.local" in corefile


def _applied(cli):
    """The objects the one command's ``echo '<json>' | kubectl apply -f -`` creates."""
    m = re.match(r"^echo '(.*)' \| kubectl apply -f -$", cli)
    assert m, cli
    body = json.loads(m.group(1))
    return body["items"] if body.get("kind") == "List" else [body]


def test_allow_dns_object_equals_the_heredoc():
    docs = re.findall(r"<<'EOF'\n(.*?)\nEOF", dns.allow_dns_policy_yaml("shop"), re.S)
    (from_yaml,) = [yaml.safe_load(d) for d in docs]
    assert dns.allow_dns_policy("shop") == from_yaml
    assert _applied(netpol.apply_cli([dns.allow_dns_policy("shop")])) == [from_yaml]


def test_path_fix_command_makes_the_path_pass():
    """A path blocked at two layers (DNS egress and the flow itself): its ONE command creates every
    policy needed, and the path then passes."""
    from tests.unit.plugins.module_utils.test_paths import DENY_ALL, judge, world

    objs = world([DENY_ALL])
    _results, findings = judge(objs)
    (f,) = findings
    assert f["details"]["failed_layers"] == ["dns", "netpol"]
    assert cat.is_one_command(f["cli"])
    objs["network_policies"] += _applied(f["cli"])
    assert judge(objs)[1] == []


def test_service_selector_fix_command():
    from tests.unit.plugins.module_utils.test_paths import judge, world

    objs = world()
    svc = next(s for s in objs["services"] if s["metadata"]["name"] == "recommendations")
    svc["spec"]["selector"] = {"app": "recommendation"}
    _results, findings = judge(objs)
    (f,) = findings
    assert f["cli"].startswith("kubectl -n shop patch service recommendations -p ")
    patch = json.loads(shlex.split(f["cli"])[-1])
    svc["spec"]["selector"].update(patch["spec"]["selector"])
    assert judge(objs)[1] == []


def test_paths_module_does_not_lose_the_cli():
    assert "apply" in paths._layer("failed", "d", apply=[{}]) and "cli" in paths._layer("ok", "d")
