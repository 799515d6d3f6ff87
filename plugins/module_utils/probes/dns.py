# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The DNS host path: dnspython queries from a node to the DNS service IP and to each CoreDNS endpoint.

Every query runs in parallel, each bounded by its timeout. Also reads the resolv.conf kubelet hands
to pods (the ``resolvConf`` of the kubelet configuration, else /etc/resolv.conf).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import concurrent.futures
import os
import time
import traceback

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis import resolv as dnscheck

try:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    HAS_DNSPYTHON = True
    DNSPYTHON_IMPORT_ERROR = None
except ImportError:
    HAS_DNSPYTHON = False
    DNSPYTHON_IMPORT_ERROR = traceback.format_exc()


def dns_query(server, name, timeout, port=53):
    """One A query; returns (status, answers, error)."""
    msg = dns.message.make_query(name, dns.rdatatype.A)
    try:
        resp = dns.query.udp(msg, server, timeout=timeout, port=port)
        if resp.flags & dns.flags.TC:
            resp = dns.query.tcp(msg, server, timeout=timeout, port=port)
    except dns.exception.Timeout:
        return "timeout", [], "no answer within %.1fs" % timeout
    except ConnectionRefusedError as exc:
        return "refused", [], str(exc)
    except (OSError, dns.exception.DNSException) as exc:
        return "error", [], "%s: %s" % (type(exc).__name__, exc)
    rcode = resp.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return "nxdomain", [], ""
    if rcode != dns.rcode.NOERROR:
        return dns.rcode.to_text(rcode).lower(), [], ""
    answers = [rd.to_text() for rrset in resp.answer for rd in rrset if rrset.rdtype == dns.rdatatype.A]
    return ("ok" if answers else "nodata"), answers, ""


def read_resolv_conf(resolv_conf=None, kubelet_config="/var/lib/kubelet/config.yaml"):
    path = resolv_conf
    if not path:
        path = "/etc/resolv.conf"
        try:
            with open(kubelet_config) as fh:
                path = dnscheck.parse_kubelet_resolv_conf(fh.read()) or path
        except (IOError, OSError):
            pass
    try:
        with open(path) as fh:
            return {"path": path, "nameservers": dnscheck.parse_resolv_conf(fh.read())}
    except (IOError, OSError) as exc:
        return {"path": path, "nameservers": [], "error": str(exc)}


def host_path(plan, service_ip, endpoints, timeout, port=53, node_name="", node_ip="", resolv_conf=None,
              kubelet_config="/var/lib/kubelet/config.yaml"):
    """Query the service IP for every planned name and each endpoint for the cluster and external names.

    ``plan``: ``[(name, kind)]`` from analysis.dns.query_plan(); ``endpoints``: ``[{ip, node}]``.
    Returns the node result the DNS analysis reads (node, node_ip, service_ip, resolv_conf, queries, elapsed).
    """
    started = time.monotonic()
    jobs = [dict(target="service", server=service_ip, endpoint_node="", name=name, kind=kind) for name, kind in plan]
    for ep in endpoints:
        for name, kind in plan:
            if kind in ("cluster", "external"):
                jobs.append(dict(target="endpoint", server=ep["ip"], endpoint_node=ep.get("node") or "",
                                 name=name, kind=kind))

    def one(job):
        start = time.monotonic()
        status, answers, err = dns_query(job["server"], job["name"], timeout, port)
        return dict(job, status=status, answers=answers, error=err, ms=round((time.monotonic() - start) * 1000.0, 1))

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(32, max(1, len(jobs)))) as pool:
        queries = list(pool.map(one, jobs))
    return {
        "node": node_name or os.uname()[1],
        "node_ip": node_ip,
        "service_ip": service_ip,
        "resolv_conf": read_resolv_conf(resolv_conf, kubelet_config),
        "queries": queries,
        "elapsed": round(time.monotonic() - started, 3),
    }
