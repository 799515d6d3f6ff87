# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A bounded probe of the Kubernetes API from the controller (GET /version with the kubeconfig's credentials)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os
import shutil
import socket
import ssl
import tempfile
import time

from ansible.module_utils.six.moves import http_client
from ansible.module_utils.six.moves.urllib.parse import urlparse
from ansible.plugins.action import ActionBase

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.checks import merge_plan
from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.findings import finding

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None

ARGS = dict(
    kubeconfig=dict(type="path"),
    context=dict(type="str"),
    timeout=dict(type="float", default=3.0),
    record=dict(type="bool", default=False),
)


def controller_reads(server, line):
    """validate_plan.k8s when the controller reaches the API: the Kubernetes reads run there, as they are."""
    return {"delegate": "localhost", "kubeconfig": None, "become": False, "usable": True, "server": server,
            "line": line, "failure": {}}


def default_kubeconfig():
    env = os.environ.get("KUBECONFIG", "")
    return env.split(os.pathsep)[0] if env else os.path.expanduser("~/.kube/config")


def load(path, context=None):
    """(server, cluster dict, user dict) of a kubeconfig file; raises ValueError naming the problem."""
    try:
        with open(path) as fh:
            doc = yaml.safe_load(fh) or {}
    except (IOError, OSError) as exc:
        raise ValueError("cannot read kubeconfig %s: %s" % (path, exc))
    except yaml.YAMLError as exc:
        raise ValueError("kubeconfig %s is not YAML: %s" % (path, exc))
    name = context or doc.get("current-context")
    ctx = next((c.get("context") or {} for c in doc.get("contexts") or [] if c.get("name") == name), None)
    if ctx is None:
        raise ValueError("kubeconfig %s has no context %r" % (path, name))
    cluster = next((c.get("cluster") or {} for c in doc.get("clusters") or [] if c.get("name") == ctx.get("cluster")), {})
    user = next((u.get("user") or {} for u in doc.get("users") or [] if u.get("name") == ctx.get("user")), {})
    if not cluster.get("server"):
        raise ValueError("kubeconfig %s: cluster %r has no server" % (path, ctx.get("cluster")))
    return cluster["server"], cluster, user


def _material(tmp, spec, key, base_dir):
    """A file path for kubeconfig field ``key`` (``key`` = path, ``key-data`` = base64 content)."""
    if spec.get(key + "-data"):
        path = os.path.join(tmp, key)
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(spec[key + "-data"]))
        return path
    if spec.get(key):
        return spec[key] if os.path.isabs(spec[key]) else os.path.join(base_dir, spec[key])
    return None


def probe(path, context=None, timeout=3.0):
    """{"reachable", "server", "reason", "seconds"}: does the API answer an HTTP request within ``timeout``?"""
    start = time.time()
    server, cluster, user = load(path, context)
    url = urlparse(server)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    out = {"server": server, "reachable": False, "reason": ""}
    tmp = tempfile.mkdtemp(prefix="kec2-apiprobe-")
    try:
        base_dir = os.path.dirname(os.path.abspath(path))
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except socket.timeout:
            out["reason"] = "no TCP connection to %s:%s within %gs" % (host, port, timeout)
            return out
        except (OSError, socket.error) as exc:
            out["reason"] = "cannot connect to %s:%s: %s" % (host, port, getattr(exc, "strerror", None) or exc)
            return out
        try:
            sock.settimeout(max(0.1, timeout - (time.time() - start)))
            if url.scheme == "https":
                ctx = ssl.create_default_context(cafile=_material(tmp, cluster, "certificate-authority", base_dir))
                if cluster.get("insecure-skip-tls-verify"):
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                cert = _material(tmp, user, "client-certificate", base_dir)
                if cert:
                    ctx.load_cert_chain(cert, _material(tmp, user, "client-key", base_dir))
                sock = ctx.wrap_socket(sock, server_hostname=host)
            headers = {"Host": "%s:%s" % (host, port), "Accept": "application/json"}
            if user.get("token"):
                headers["Authorization"] = "Bearer %s" % user["token"]
            request = "GET /version HTTP/1.1\r\n%sConnection: close\r\n\r\n" % "".join(
                "%s: %s\r\n" % kv for kv in headers.items())
            sock.sendall(request.encode("ascii"))
            resp = http_client.HTTPResponse(sock)
            resp.begin()
            out.update(reachable=True, reason="HTTP %d from %s" % (resp.status, server))
        except socket.timeout:
            out["reason"] = "%s:%s accepted the connection but sent no answer within %gs" % (host, port, timeout)
        except (ssl.SSLError, OSError, socket.error, http_client.HTTPException) as exc:
            out["reason"] = "no answer from %s: %s" % (server, exc)
        finally:
            sock.close()
        return out
    finally:
        out["seconds"] = round(time.time() - start, 3)
        shutil.rmtree(tmp, ignore_errors=True)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _spec, args = self.validate_argument_spec(argument_spec=ARGS)
        path = args["kubeconfig"] or default_kubeconfig()
        try:
            res = probe(path, args["context"], args["timeout"])
        except ValueError as exc:
            res = {"server": "", "reachable": False, "reason": str(exc), "seconds": 0.0}
        result.update(res)
        result.update(changed=False, kubeconfig=path)
        if res["reachable"]:
            result["msg"] = "Kubernetes API %s answers the controller (%s): the Kubernetes reads run on the controller" % (
                res["server"], res["reason"])
            if args["record"]:
                result["ansible_facts"] = {"validate_plan": merge_plan((task_vars or {}).get("validate_plan"), {
                    "k8s": controller_reads(res["server"], result["msg"])})}
        else:
            where = res["server"] or path
            result["msg"] = "Kubernetes API %s does not answer the controller: %s" % (where, res["reason"])
            result["finding"] = finding(
                "API_UNREACHABLE", "%s: %s (probe bounded by %gs)" % (where, res["reason"], args["timeout"]),
                "the Kubernetes reads of validate (cluster DNS state, probe pods, workloads and events for the image "
                "check) need the API; without it those checks cannot run",
                "make %s reachable from the controller (the kubeconfig's server: the control plane's public address "
                "or the NLB name, port 6443 open to admin_cidr), or give the first control plane %s so that the reads "
                "run there" % (where, "/etc/kubernetes/admin.conf"),
                where=where, server=res["server"], kubeconfig=path, reason=res["reason"],
                cli="kubectl --kubeconfig %s get --raw /readyz" % path)
        result["_ansible_verbose_always"] = True
        return result
