# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster-wide contract's input checks (pure): plain values in, the first problem out.

roles/cluster_defaults runs them once per run through the contract_check action. Each message starts
with "Stop:" and names the variable to fix.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import calico

IPV4_CIDR = re.compile(r"^((25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])"
                       r"/([0-9]|[12][0-9]|3[0-2])$")
DNS_DOMAIN = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?[.])*[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# the values checked, by the contract variable that carries each
VARIABLES = {
    "cluster_name": "kubeadm_ec2_cluster_name",
    "control_plane_group": "kubeadm_ec2_control_plane_group",
    "workers_group": "kubeadm_ec2_workers_group",
    "nodes_group": "kubeadm_ec2_nodes_group",
    "pod_cidr": "kubeadm_ec2_pod_cidr",
    "service_cidr": "kubeadm_ec2_service_cidr",
    "cluster_dns_ip": "kubeadm_ec2_cluster_dns_ip",
    "dns_domain": "kubeadm_ec2_dns_domain",
    "calico_encapsulation": "kubeadm_ec2_calico_encapsulation",
    "kubeconfig": "kubeadm_ec2_kubeconfig",
}

# the old names still read for one release (roles/cluster_defaults/defaults/main.yml maps each to its
# kubeadm_ec2_* variable); setting one prints a deprecation line
ALIASES = (
    "kubeadm_cluster_name", "kubeadm_control_plane_group", "calico_control_plane_group", "coredns_control_plane_group",
    "validate_network_control_plane_group", "kubeadm_workers_group", "validate_network_group",
    "validate_images_nodes_group", "validate_nodes_group", "kubeadm_pod_subnet", "calico_ippool_cidr",
    "kubeadm_service_subnet", "kubeadm_dns_domain", "coredns_cluster_domain", "calico_encapsulation",
    "kubeadm_kubeconfig_local_path", "kubeadm_python_venv",
)
ALIASES_REMOVED_IN = "0.3.0"


def used_aliases(names):
    """The old names among ``names`` (the variables that are set), sorted."""
    names = set(names)
    return sorted(a for a in ALIASES if a in names)


def deprecation_line(aliases):
    """The one line that says which old names are set, or None."""
    if not aliases:
        return None
    return ("DEPRECATED (removed in %s): %s; set the kubeadm_ec2_* variables instead (docs/contract.md)."
            % (ALIASES_REMOVED_IN, ", ".join(aliases)))


def _text(value):
    return "" if value is None else str(value)


def _overlap(a, b):
    return ipaddress.ip_network(a, strict=False).overlaps(ipaddress.ip_network(b, strict=False))


def first_problem(values):
    """The first contract problem of ``values`` (keys of VARIABLES) as a "Stop: ..." line, or None."""
    v = dict((k, _text(values.get(k))) for k in VARIABLES)
    if not v["cluster_name"].strip():
        return "Stop: kubeadm_ec2_cluster_name is empty; it names the cluster (tag kubeadm_ec2/cluster, kubeadm clusterName)."
    if not (v["control_plane_group"].strip() and v["workers_group"].strip() and v["nodes_group"].strip()):
        return ("Stop: the inventory group names must not be empty (kubeadm_ec2_control_plane_group='%s', "
                "kubeadm_ec2_workers_group='%s', kubeadm_ec2_nodes_group='%s')."
                % (v["control_plane_group"], v["workers_group"], v["nodes_group"]))
    if not (IPV4_CIDR.match(v["pod_cidr"]) and IPV4_CIDR.match(v["service_cidr"])):
        return ("Stop: kubeadm_ec2_pod_cidr ('%s') and kubeadm_ec2_service_cidr ('%s') must be IPv4 CIDRs such as "
                "192.168.0.0/16 and 10.96.0.0/12." % (v["pod_cidr"], v["service_cidr"]))
    if _overlap(v["pod_cidr"], v["service_cidr"]):
        return ("Stop: kubeadm_ec2_pod_cidr (%s) overlaps kubeadm_ec2_service_cidr (%s); pods and Services need "
                "separate ranges." % (v["pod_cidr"], v["service_cidr"]))
    try:
        inside = ipaddress.ip_address(v["cluster_dns_ip"]) in ipaddress.ip_network(v["service_cidr"], strict=False)
    except ValueError:
        inside = False
    if not inside:
        return ("Stop: kubeadm_ec2_cluster_dns_ip (%s) is not in kubeadm_ec2_service_cidr (%s). It is derived from "
                "the service CIDR: do not set it." % (v["cluster_dns_ip"], v["service_cidr"]))
    if not DNS_DOMAIN.match(v["dns_domain"]):
        return "Stop: kubeadm_ec2_dns_domain must be a DNS domain such as cluster.local (got '%s')." % v["dns_domain"]
    if v["calico_encapsulation"] not in calico.ENCAPSULATIONS:
        return ("Stop: kubeadm_ec2_calico_encapsulation must be one of %s (got '%s')."
                % (", ".join(calico.ENCAPSULATIONS), v["calico_encapsulation"]))
    if not v["kubeconfig"].strip():
        return "Stop: kubeadm_ec2_kubeconfig is empty; it is the admin kubeconfig the install writes and validate reads."
    return None
