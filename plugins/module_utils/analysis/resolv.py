# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a node resolves and how it is configured (pure, no I/O, stdlib only).

The small part of the DNS check that runs on the nodes (node_probe) as well as on the controller:
the names to query and the resolv.conf / kubelet resolvConf parsing. Kept apart from analysis/dns.py
so that the node task ships and compiles only this.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

DEFAULT_DOMAIN = "cluster.local"


# -- names -----------------------------------------------------------------------------------
def qualify(name, domain=DEFAULT_DOMAIN):
    """Fully qualify a service name: ``svc`` -> svc.default.svc.<domain>, ``svc.ns`` ->
    svc.ns.svc.<domain>; names already under the domain (or with 3+ labels) are kept."""
    name = str(name).strip().rstrip(".")
    if not name:
        raise ValueError("empty name")
    if name.endswith("." + domain) or name == domain:
        return name
    labels = name.split(".")
    if len(labels) == 1:
        return "%s.default.svc.%s" % (name, domain)
    if len(labels) == 2:
        return "%s.%s.svc.%s" % (labels[0], labels[1], domain)
    if len(labels) == 3 and labels[2] == "svc":
        return "%s.%s" % (name, domain)
    return name


def query_plan(names=None, external_name=None, domain=DEFAULT_DOMAIN):
    """The names every node and probe pod resolves: [(fqdn, kind)], kind in cluster/user/external."""
    plan = [("kubernetes.default.svc.%s" % domain, "cluster")]
    for name in names or []:
        fq = qualify(name, domain)
        if fq not in [p[0] for p in plan]:
            plan.append((fq, "user"))
    if external_name:
        plan.append((str(external_name).rstrip("."), "external"))
    return plan


# -- resolv.conf / Corefile -------------------------------------------------------------------
def parse_resolv_conf(text):
    """Nameservers of a resolv.conf text, in order."""
    servers = []
    for line in (text or "").splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            servers.append(parts[1])
    return servers


def is_loopback(address):
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def loopback_nameservers(servers):
    return [s for s in servers if is_loopback(s)]


def parse_kubelet_resolv_conf(text):
    """The ``resolvConf`` of a KubeletConfiguration (YAML text), or None."""
    for line in (text or "").splitlines():
        m = re.match(r"^resolvConf:\s*['\"]?([^'\"\s#]+)", line)
        if m:
            return m.group(1)
    return None
