# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small, generic helper around the ``kubernetes`` client for this collection's checks.

* ``api_client(kubeconfig, context, retries)``: an ``ApiClient`` from a kubeconfig file (or the
  default kubeconfig / in-cluster config) with bounded urllib3 retries;
* ``K8s(client, timeout).request/list/read``: raw REST calls by path answered as the API's JSON, so
  the analysis sees exactly what the API served and no typed API class or model validation gets in
  the way; every failure is a ``K8sError`` carrying a one-line message (HTTP status and the API's
  ``Status`` message, or the connection problem) instead of a traceback;
* ``K8s.json(fn, what, ...)``: a typed client call (``_preload_content=False``) answered as JSON, with
  the same request timeout and errors (``K8s.call``).

Modules check ``HAS_KUBERNETES`` and call ``missing_required_lib("kubernetes")`` when it is False.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

try:
    import kubernetes
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only without the library
    kubernetes = None
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = exc

    class ApiException(Exception):
        pass

    class ConfigException(Exception):
        pass

try:
    import urllib3.exceptions as _u3

    _URLLIB3_ERRORS = (_u3.HTTPError,)
except ImportError:  # pragma: no cover
    _URLLIB3_ERRORS = ()


class K8sError(Exception):
    """A Kubernetes API failure with a message fit for ``fail_json``; ``status`` is the HTTP code or None."""

    def __init__(self, message, status=None):
        super(K8sError, self).__init__(message)
        self.status = status


def describe_error(exc, what="Kubernetes API call"):
    """One clear line for an exception raised while talking to the API."""
    if isinstance(exc, ApiException):
        detail = exc.reason or ""
        try:
            body = json.loads(exc.body or "{}")
            if isinstance(body, dict) and body.get("message"):
                detail = body["message"]
        except (TypeError, ValueError):
            if exc.body:
                detail = str(exc.body)[:200]
        hint = {
            401: " (the kubeconfig credentials were rejected)",
            403: " (the kubeconfig user lacks RBAC permission)",
        }.get(exc.status, "")
        return "%s failed: HTTP %s %s%s" % (what, exc.status, detail, hint)
    if isinstance(exc, ConfigException):
        return "%s: invalid kubeconfig: %s" % (what, exc)
    if _URLLIB3_ERRORS and isinstance(exc, _URLLIB3_ERRORS):
        reason = getattr(exc, "reason", None) or exc
        return "%s failed: cannot reach the Kubernetes API (%s)" % (what, reason)
    if isinstance(exc, (OSError, IOError)):
        return "%s failed: %s" % (what, exc)
    return "%s failed: %s: %s" % (what, type(exc).__name__, exc)


# The access options of every module that reads the cluster (documented once in doc_fragments/k8s_auth.py).
AUTH_ARGUMENT_SPEC = dict(
    kubeconfig=dict(type="path"),
    context=dict(type="str"),
    api_timeout=dict(type="float", default=10.0),
)


def module_api(module, what, **fail_extra):
    """The Kubernetes access of a module built on AUTH_ARGUMENT_SPEC: a K8s over its kubeconfig/context
    with its api_timeout. Fails the module with a clear message (naming ``what``) for a timeout that is
    not positive, a missing kubernetes library or a kubeconfig that cannot be loaded; ``fail_extra``
    goes into that failure's result (e.g. ``findings=[]``)."""
    from ansible.module_utils.basic import missing_required_lib

    p = module.params
    if p["api_timeout"] <= 0:
        module.fail_json(msg="api_timeout must be > 0 (got %s)" % p["api_timeout"])
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR))
    try:
        return K8s(api_client(p["kubeconfig"], p["context"]), p["api_timeout"])
    except K8sError as exc:
        module.fail_json(msg="%s: %s" % (what, exc), **fail_extra)


# Waiting reasons after which a probe pod's container will not start by itself.
FATAL_WAITING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                 "CreateContainerError", "RunContainerError")


def delete_pods(api, namespace, names, what="probe pod"):
    """Delete every pod of ``names`` in ``namespace`` at once (grace 0); the errors other than 404, as text."""
    errors = []
    for name in names:
        try:
            api.request("DELETE", "/api/v1/namespaces/%s/pods/%s" % (namespace, name),
                        "delete %s %s/%s" % (what, namespace, name), query={"gracePeriodSeconds": 0})
        except K8sError as exc:
            if exc.status != 404:
                errors.append(str(exc))
    return errors


def api_client(kubeconfig=None, context=None, retries=1):
    """Build an ``ApiClient``; raises K8sError with a clear message."""
    if not HAS_KUBERNETES:
        raise K8sError("the kubernetes Python library is not installed")
    cfg = kubernetes.client.Configuration()
    try:
        try:
            kubernetes.config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
        except (ConfigException, OSError):
            if kubeconfig or context:
                raise
            kubernetes.config.load_incluster_config(client_configuration=cfg)
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        raise K8sError("cannot load kubeconfig %s%s: %s" % (
            kubeconfig or "(default)", " context %s" % context if context else "", exc))
    cfg.retries = retries  # read when the connection pool is built: set before ApiClient()
    client = kubernetes.client.ApiClient(configuration=cfg)
    client.user_agent = "kubeadm_ec2.cluster"
    return client


class K8s:
    """Calls with a request timeout and uniform error handling."""

    def __init__(self, client, timeout=10):
        self.client = client
        self.timeout = timeout

    def call(self, fn, what, *args, **kwargs):
        kwargs.setdefault("_request_timeout", self.timeout)
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # every client failure -> one clear message
            status = getattr(exc, "status", None) if isinstance(exc, ApiException) else None
            raise K8sError(describe_error(exc, what), status)

    def request(self, method, path, what, query=None, body=None):
        """A raw REST call by path (``/api/v1/nodes``, ``/apis/discovery.k8s.io/v1/...``) answered as
        the API's JSON. Needs no typed API class (whose import costs seconds) and no model validation."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        query = [(k, v) for k, v in (query or {}).items() if v is not None]
        try:
            if hasattr(self.client, "param_serialize"):  # kubernetes >= 33 (pydantic generator)
                params = self.client.param_serialize(method=method, resource_path=path, query_params=query,
                                                     header_params=headers, body=body, auth_settings=["BearerToken"])
                resp = self.client.call_api(*params, _request_timeout=self.timeout)
                resp.read()
            else:  # older clients
                resp = self.client.call_api(path, method, query_params=query, header_params=headers, body=body,
                                            auth_settings=["BearerToken"], _preload_content=False,
                                            _return_http_data_only=True, _request_timeout=self.timeout)
        except Exception as exc:  # connection problems, timeouts, ApiException of old clients
            status = getattr(exc, "status", None) if isinstance(exc, ApiException) else None
            raise K8sError(describe_error(exc, what), status)
        data = resp.data or b"{}"
        if not 200 <= resp.status < 300:
            raise K8sError(describe_error(ApiException(status=resp.status, reason=resp.reason or "",
                                                       body=data.decode("utf-8", "replace")), what), resp.status)
        try:
            return json.loads(data)
        except ValueError as exc:
            raise K8sError("%s failed: the API answered with invalid JSON: %s" % (what, exc))

    def list(self, path, what, **query):
        """The items of a list call by path."""
        return self.request("GET", path, what, query=query).get("items") or []

    def read(self, path, what):
        """One object by path, or None on 404."""
        try:
            return self.request("GET", path, what)
        except K8sError as exc:
            if exc.status == 404:
                return None
            raise

    def json(self, fn, what, *args, **kwargs):
        """A call whose answer is returned as the API's JSON (dict), without client model validation
        (``_preload_content=False``): analyses see exactly what the API served."""
        kwargs["_preload_content"] = False
        resp = self.call(fn, what, *args, **kwargs)
        try:
            return json.loads(resp.data or b"{}")
        except ValueError as exc:
            raise K8sError("%s failed: the API answered with invalid JSON: %s" % (what, exc))
