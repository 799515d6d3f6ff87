# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that derive the cluster-wide contract (roles/cluster_defaults) from its inputs.

Documentation: the sidecar files cluster_dns_ip.yml, cidrs_overlap.yml, calico_mode.yml, calico_modes.yml,
node_architectures.yml.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import calico


def _network(value, what):
    try:
        return ipaddress.ip_network(to_text(value).strip(), strict=False)
    except ValueError as exc:
        raise AnsibleFilterError("%s %r is not a CIDR: %s" % (what, value, exc))


def cluster_dns_ip(service_cidr, index=10):
    """The cluster DNS Service IP kubeadm picks: the ``index``th address (default 10th) of the service CIDR."""
    what = "service CIDR (kubeadm_ec2_service_cidr)"
    net = _network(service_cidr, what)
    index = int(index)
    if not 0 < index < net.num_addresses - (1 if net.version == 4 and net.prefixlen < 31 else 0):
        raise AnsibleFilterError("%s %s has no address number %d for the cluster DNS IP (it holds %d addresses)"
                                 % (what, net, index, net.num_addresses))
    return to_text(net.network_address + index)


def cidrs_overlap(cidr, other):
    """Whether two CIDRs share an address."""
    a, b = _network(cidr, "CIDR"), _network(other, "CIDR")
    return a.version == b.version and a.overlaps(b)


def calico_mode(name):
    """The settings of one Calico encapsulation mode (ipip_mode, vxlan_mode, bgp, needs, cross_subnet, encapsulated)."""
    try:
        settings = calico.mode(to_text(name))
    except ValueError as exc:
        raise AnsibleFilterError(to_text(exc))
    return dict(settings, needs=list(settings["needs"]), name=to_text(name))


def calico_modes(names=None):
    """The Calico mode table (mode -> settings); restricted to ``names`` when that is a non-empty list."""
    wanted = list(names or calico.ENCAPSULATIONS)
    return dict((n, calico_mode(n)) for n in wanted)


def node_architectures(names, hostvars):
    """[{name, architecture}] of the hosts ``names``: the gathered fact ansible_facts.architecture, else the
    host variable kubeadm_ec2_arch; hosts with neither are left out. One pass over the hosts (a set_fact
    loop re-templated the growing list and each host's variables once per host)."""
    out = []
    for name in names or []:
        hv = hostvars[name]
        facts = hv.get("ansible_facts") or {}
        arch = facts.get("architecture") if hasattr(facts, "get") else None
        arch = arch or hv.get("kubeadm_ec2_arch") or ""
        if arch:
            out.append({"name": to_text(name), "architecture": to_text(arch)})
    return out


class FilterModule(object):
    def filters(self):
        return {
            "node_architectures": node_architectures,
            "cluster_dns_ip": cluster_dns_ip,
            "cidrs_overlap": cidrs_overlap,
            "calico_mode": calico_mode,
            "calico_modes": calico_modes,
        }
