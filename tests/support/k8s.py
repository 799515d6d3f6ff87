"""Kubernetes objects as the API serves them (plain JSON dicts), built in one place for the tests and
the API fake (tests/fakes/k8s_api.py). Every builder returns a new dict; keyword arguments add the
optional parts the tests vary."""

import copy

ARCH_LABEL = "kubernetes.io/arch"


def _meta(name, namespace=None, labels=None, annotations=None, owner=None):
    meta = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner:
        kind, owner_name = owner
        api_version = "batch/v1" if kind in ("Job", "CronJob") else "apps/v1"
        meta["ownerReferences"] = [{"apiVersion": api_version, "kind": kind, "name": owner_name,
                                    "uid": "u-" + owner_name, "controller": True}]
    return meta


def status(code, reason, message, name=None, kind=None):
    """A failure ``Status`` object, as the API answers a 404 or a 409."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    if name or kind:
        body["details"] = {"name": name or "", "kind": kind or ""}
    return body


def namespace(name, labels=None):
    """A Namespace with the label the API server adds to every namespace."""
    all_labels = {"kubernetes.io/metadata.name": name}
    all_labels.update(labels or {})
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(name, labels=all_labels)}


def node(name, arch="amd64", ip=None, ready=True, pod_cidr=None, labels=None, kubelet="v1.31.4",
         runtime="containerd://1.7.24"):
    """A Node with its architecture in nodeInfo and labels, an InternalIP and a Ready condition."""
    all_labels = {ARCH_LABEL: arch, "kubernetes.io/os": "linux", "kubernetes.io/hostname": name}
    all_labels.update(labels or {})
    status = {"nodeInfo": {"architecture": arch, "operatingSystem": "linux", "kubeletVersion": kubelet,
                           "containerRuntimeVersion": runtime},
              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["addresses"] = [{"type": "InternalIP", "address": ip}]
    obj = {"apiVersion": "v1", "kind": "Node", "metadata": _meta(name, labels=all_labels), "status": status}
    if pod_cidr:
        obj["spec"] = {"podCIDR": pod_cidr}
    return obj


def container(name, image, ports=()):
    """A container; ``ports`` are containerPort numbers, (port, protocol) or (name, port, protocol)."""
    out = {"name": name, "image": image}
    if ports:
        out["ports"] = []
        for port in ports:
            if isinstance(port, int):
                port = (port, "TCP")
            if len(port) == 3:
                out["ports"].append({"name": port[0], "containerPort": port[1], "protocol": port[2]})
            else:
                out["ports"].append({"containerPort": port[0], "protocol": port[1]})
    return out


def pod_spec(image=None, containers=None, init_image=None, node_selector=None, affinity=None, node_name=None,
             **extra):
    spec = {"containers": list(containers) if containers else [container("app", image)]}
    if init_image:
        spec["initContainers"] = [container("init", init_image)]
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if affinity:
        spec["affinity"] = copy.deepcopy(affinity)
    if node_name:
        spec["nodeName"] = node_name
    spec.update(extra)
    return spec


def arch_affinity(*arches, operator="In"):
    """Required node affinity on kubernetes.io/arch."""
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": ARCH_LABEL, "operator": operator, "values": list(arches)}]}]}}}


def pod(name, namespace="default", image="nginx:1.27", labels=None, spec=None, phase="Running", pod_ip=None,
        node_name=None, ready=None, container_statuses=None, owner=None):
    """A Pod; ``spec`` replaces the one-container spec built from ``image``."""
    spec = copy.deepcopy(spec) if spec is not None else pod_spec(image)
    if node_name:
        spec["nodeName"] = node_name
    status = {"phase": phase}
    if pod_ip:
        status["podIP"] = pod_ip
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    if container_statuses is not None:
        status["containerStatuses"] = list(container_statuses)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(name, namespace, labels, owner=owner),
            "spec": spec, "status": status}


def workload(kind, name, namespace, image=None, spec=None, labels=None, owner=None, **spec_kw):
    """A controller (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) around a pod template."""
    labels = labels or {"app": name}
    spec = copy.deepcopy(spec) if spec else pod_spec(image, **spec_kw)
    template = {"metadata": {"labels": dict(labels)}, "spec": spec}
    api_version = "batch/v1" if kind in ("Job", "CronJob") else "apps/v1"
    if kind == "CronJob":
        body = {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}}
    elif kind == "Job":
        body = {"template": template}
    else:
        body = {"selector": {"matchLabels": dict(labels)}, "template": template}
        if kind in ("Deployment", "ReplicaSet", "StatefulSet"):
            body["replicas"] = 1
        if kind == "StatefulSet":
            body["serviceName"] = name
    return {"apiVersion": api_version, "kind": kind, "metadata": _meta(name, namespace, owner=owner), "spec": body}


def deployment(name, namespace, image, node_selector=None, init_image=None, **kw):
    return workload("Deployment", name, namespace, image, node_selector=node_selector, init_image=init_image, **kw)


def waiting(reason, message, image, name="app", restarts=0, last_terminated=None):
    """A container status waiting with ``reason``; ``last_terminated`` is the lastState.terminated."""
    out = {"name": name, "image": image, "imageID": "", "ready": False, "restartCount": restarts,
           "state": {"waiting": {"reason": reason, "message": message}}}
    if last_terminated:
        out["lastState"] = {"terminated": dict(last_terminated)}
    return out


def platform_pull_message(image):
    """What containerd 1.6 says when an index lacks the node's platform (as the kubelet reports it)."""
    return 'failed to pull and unpack image "%s": no match for platform in manifest: not found' % image


def exec_format_message(entrypoint="/app"):
    """What runc says when the image's entrypoint is built for another architecture."""
    return ('failed to create containerd task: failed to create shim task: OCI runtime create failed: runc '
            'create failed: unable to start container process: exec: "%s": exec format error: unknown' % entrypoint)


def failing_pod(name, namespace, image, owner=None, node_name="node-1"):
    """A pod whose container waits in ErrImagePull because of the platform (containerd's message)."""
    owner = ("ReplicaSet", owner) if owner else None
    return pod(name, namespace, labels={"app": name.rsplit("-", 2)[0]}, spec=pod_spec(image), phase="Pending",
               node_name=node_name, owner=owner,
               container_statuses=[waiting("ErrImagePull", platform_pull_message(image), image)])


def crashing_pod(name, namespace, image, owner=None, node_name="node-1", entrypoint="/app"):
    """A pod whose container cannot start: exec format error, CrashLoopBackOff."""
    owner = ("ReplicaSet", owner) if owner else None
    status = waiting("CrashLoopBackOff", "back-off 40s restarting failed container=app", image, restarts=3,
                     last_terminated={"exitCode": 128, "reason": "StartError",
                                      "message": exec_format_message(entrypoint)})
    return pod(name, namespace, labels={"app": name.rsplit("-", 2)[0]}, spec=pod_spec(image), phase="Running",
               node_name=node_name, owner=owner, container_statuses=[status])


def event(involved, reason, message, namespace, kind="Pod", type_="Warning", count=1):
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": involved + ".17f0", "namespace": namespace},
            "involvedObject": {"kind": kind, "namespace": namespace, "name": involved, "apiVersion": "v1"},
            "reason": reason, "type": type_, "count": count, "message": message}


def pull_event(pod_name, namespace, image):
    return event(pod_name, "Failed", 'Failed to pull image "%s": %s' % (image, platform_pull_message(image)),
                 namespace, count=3)


def service(name, namespace, selector, ports, cluster_ip=None, labels=None, type_="ClusterIP"):
    """A Service; ``ports`` are dicts ({name, port, targetPort, protocol}) or (port, targetPort[, protocol])."""
    spec_ports = []
    for port in ports:
        if isinstance(port, dict):
            spec_ports.append(dict(port))
        else:
            entry = {"port": port[0], "targetPort": port[1], "protocol": port[2] if len(port) > 2 else "TCP"}
            spec_ports.append(entry)
    spec = {"type": type_, "selector": dict(selector or {}), "ports": spec_ports}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace, labels), "spec": spec}


def endpoint(ip, node_name=None, ready=True, pod_name=None, namespace=None):
    out = {"addresses": [ip], "conditions": {"ready": ready, "serving": ready}}
    if node_name:
        out["nodeName"] = node_name
    if pod_name:
        out["targetRef"] = {"kind": "Pod", "name": pod_name}
        if namespace:
            out["targetRef"]["namespace"] = namespace
    return out


def endpointslice(name, namespace, service_name, endpoints, ports):
    """An EndpointSlice of ``service_name``; ``ports`` are dicts ({name, port, protocol})."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": _meta(name, namespace, {"kubernetes.io/service-name": service_name}),
            "addressType": "IPv4", "endpoints": list(endpoints), "ports": [dict(p) for p in ports]}


def configmap(name, namespace, data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, namespace), "data": dict(data)}


def networkpolicy(name, namespace, pod_selector=None, policy_types=("Ingress", "Egress"), ingress=None, egress=None):
    """A NetworkPolicy; ``pod_selector`` is matchLabels ({} selects every pod)."""
    spec = {"podSelector": {"matchLabels": dict(pod_selector)} if pod_selector else {},
            "policyTypes": list(policy_types)}
    if ingress is not None:
        spec["ingress"] = copy.deepcopy(ingress)
    if egress is not None:
        spec["egress"] = copy.deepcopy(egress)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(name, namespace),
            "spec": spec}


def ippool(name="default-ipv4-ippool", cidr="192.168.0.0/16", ipip="Always", vxlan="Never", nat_outgoing=True):
    """A Calico IPPool (crd.projectcalico.org/v1, cluster scoped)."""
    return {"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool", "metadata": _meta(name),
            "spec": {"cidr": cidr, "ipipMode": ipip, "vxlanMode": vxlan, "natOutgoing": nat_outgoing}}
