"""Validates Kubernetes objects against the fields the API server requires for each kind Boing
ships (Namespace, ConfigMap, Secret, PersistentVolumeClaim, Service, Deployment, DaemonSet), and
the references between them. Returns error strings "SOURCE: Kind/name: field: message".

This is not the full OpenAPI schema: it is what the API server's validation rejects for these
kinds (required fields, names, enumerations, selector/label agreement, port and volume
references), plus references a cluster would accept but that cannot work (a $(VAR) in args with
no such env var, a mount of a volume that does not exist, a Service selecting no workload).
"""
import re

import yaml

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$")
CAPABILITIES = {
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE",
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER",
    "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN",
    "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP",
    "SETUID", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT",
    "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG",
    "WAKE_ALARM", "ALL"}
API_VERSION = {"Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1",
               "PersistentVolumeClaim": "v1", "ServiceAccount": "v1",
               "Deployment": "apps/v1", "DaemonSet": "apps/v1"}
NAMESPACED = set(API_VERSION) - {"Namespace"}
VOLUME_SOURCES = {"hostPath", "emptyDir", "configMap", "secret", "persistentVolumeClaim",
                  "projected", "downwardAPI"}
HOSTPATH_TYPES = {"", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                  "CharDevice", "BlockDevice"}


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of duplicate keys; the API server's decoders reject them."""


def _no_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, "duplicate key %r" % (key,), key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def load_documents(text):
    return [d for d in yaml.load_all(text, Loader=UniqueKeyLoader) if d is not None]


class Checker:
    def __init__(self, source, obj):
        self.errors = []
        kind = obj.get("kind") if isinstance(obj, dict) else None
        name = (obj.get("metadata") or {}).get("name") if isinstance(obj, dict) else None
        self.prefix = "%s: %s/%s" % (source, kind, name)

    def err(self, field, message):
        self.errors.append("%s: %s: %s" % (self.prefix, field, message))

    def need(self, d, key, field, types=None):
        if not isinstance(d, dict) or key not in d or d[key] is None:
            self.err(field, "required")
            return None
        v = d[key]
        if types is not None and not isinstance(v, types):
            self.err(field, "must be %s, got %r" % (types, v))
            return None
        return v

    def string_map(self, m, field, key_re=LABEL_NAME, value_re=LABEL_VALUE):
        if m is None:
            return
        if not isinstance(m, dict):
            self.err(field, "must be a map")
            return
        for k, v in m.items():
            name = str(k).split("/")[-1]
            if not isinstance(k, str) or len(name) > 63 or not key_re.match(name):
                self.err(field, "invalid key %r" % (k,))
            if not isinstance(v, str):
                self.err("%s.%s" % (field, k), "must be a string, got %r" % (v,))
            elif value_re is not None and (len(v) > 63 or not value_re.match(v)):
                self.err("%s.%s" % (field, k), "invalid value %r" % (v,))

    def quantity(self, v, field):
        if not isinstance(v, (str, int)) or not QUANTITY.match(str(v)):
            self.err(field, "not a quantity: %r" % (v,))


def _quantity_value(q):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "m": 1e-3, "k": 1e3, "M": 1e6,
             "G": 1e9, "T": 1e12}
    m = re.match(r"^([0-9.]+)([A-Za-z]*)$", str(q))
    return float(m.group(1)) * units.get(m.group(2), 1) if m else None


def check_metadata(c, obj, kind):
    md = c.need(obj, "metadata", "metadata", dict)
    if md is None:
        return
    name = c.need(md, "name", "metadata.name", str)
    if name is not None:
        label_only = kind in ("Namespace", "Service")
        ok = DNS_LABEL.match(name) and len(name) <= 63 if label_only else \
            DNS_SUBDOMAIN.match(name) and len(name) <= 253
        if not ok:
            c.err("metadata.name", "invalid name %r" % name)
    if "namespace" in md and (not isinstance(md["namespace"], str)
                              or not DNS_LABEL.match(md["namespace"])):
        c.err("metadata.namespace", "invalid %r" % (md["namespace"],))
    c.string_map(md.get("labels"), "metadata.labels")
    c.string_map(md.get("annotations"), "metadata.annotations", value_re=None)


def check_container(c, ct, field, volumes):
    name = c.need(ct, "name", field + ".name", str)
    if name is not None and not DNS_LABEL.match(name):
        c.err(field + ".name", "invalid %r" % name)
    c.need(ct, "image", field + ".image", str)
    if ct.get("imagePullPolicy") not in (None, "Always", "IfNotPresent", "Never"):
        c.err(field + ".imagePullPolicy", "invalid %r" % ct["imagePullPolicy"])
    for key in ("command", "args"):
        if key in ct and (not isinstance(ct[key], list)
                          or not all(isinstance(a, str) for a in ct[key])):
            c.err(field + "." + key, "must be a list of strings")
    port_names = set()
    for i, p in enumerate(ct.get("ports") or []):
        pf = "%s.ports[%d]" % (field, i)
        cp = c.need(p, "containerPort", pf + ".containerPort", int)
        if cp is not None and not 1 <= cp <= 65535:
            c.err(pf + ".containerPort", "out of range")
        if "name" in p:
            if not isinstance(p["name"], str) or len(p["name"]) > 15 or \
                    not PORT_NAME.match(p["name"]) or not re.search("[a-z]", p["name"]):
                c.err(pf + ".name", "invalid port name %r" % (p["name"],))
            port_names.add(p["name"])
        if p.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
            c.err(pf + ".protocol", "invalid")
    env_names = set()
    for i, e in enumerate(ct.get("env") or []):
        ef = "%s.env[%d]" % (field, i)
        n = c.need(e, "name", ef + ".name", str)
        if n is not None:
            if not ENV_NAME.match(n):
                c.err(ef + ".name", "invalid %r" % n)
            env_names.add(n)
        if "value" in e and not isinstance(e["value"], str):
            c.err(ef + ".value", "must be a string, got %r" % (e["value"],))
        if "valueFrom" in e:
            srcs = [k for k in ("fieldRef", "secretKeyRef", "configMapKeyRef", "resourceFieldRef")
                    if k in (e["valueFrom"] or {})]
            if len(srcs) != 1:
                c.err(ef + ".valueFrom", "exactly one source required")
            for k in ("secretKeyRef", "configMapKeyRef"):
                ref = (e["valueFrom"] or {}).get(k)
                if ref is not None:
                    c.need(ref, "name", ef + ".valueFrom.%s.name" % k, str)
                    c.need(ref, "key", ef + ".valueFrom.%s.key" % k, str)
            if "fieldRef" in (e["valueFrom"] or {}):
                c.need(e["valueFrom"]["fieldRef"], "fieldPath", ef + ".valueFrom.fieldRef.fieldPath",
                       str)
    for i, ef in enumerate(ct.get("envFrom") or []):
        refs = [k for k in ("configMapRef", "secretRef") if k in ef]
        if len(refs) != 1:
            c.err("%s.envFrom[%d]" % (field, i), "exactly one of configMapRef/secretRef")
        for k in refs:
            c.need(ef[k], "name", "%s.envFrom[%d].%s.name" % (field, i, k), str)
    # $(VAR) in command/args expands only from the container's env; unknown ones stay literal.
    for key in ("command", "args"):
        for a in ct.get(key) or []:
            for ref in re.findall(r"\$\(([^)]*)\)", str(a)):
                if ref not in env_names:
                    c.err("%s.%s" % (field, key), "$(%s) is not an env var of the container" % ref)
    mount_paths = set()
    for i, m in enumerate(ct.get("volumeMounts") or []):
        mf = "%s.volumeMounts[%d]" % (field, i)
        n = c.need(m, "name", mf + ".name", str)
        if n is not None and n not in volumes:
            c.err(mf + ".name", "no volume named %r" % n)
        mp = c.need(m, "mountPath", mf + ".mountPath", str)
        if mp is not None:
            if not mp.startswith("/"):
                c.err(mf + ".mountPath", "must be absolute")
            if mp in mount_paths:
                c.err(mf + ".mountPath", "mounted twice: " + mp)
            mount_paths.add(mp)
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        pr = ct.get(probe)
        if pr is None:
            continue
        handlers = [k for k in ("httpGet", "tcpSocket", "exec", "grpc") if k in pr]
        if len(handlers) != 1:
            c.err(field + "." + probe, "exactly one handler required")
        for h in ("httpGet", "tcpSocket"):
            if h in pr:
                port = c.need(pr[h], "port", "%s.%s.%s.port" % (field, probe, h))
                if isinstance(port, str) and port not in port_names:
                    c.err("%s.%s.%s.port" % (field, probe, h), "no container port named %r" % port)
    res = ct.get("resources") or {}
    for kind_ in ("requests", "limits"):
        for r, q in (res.get(kind_) or {}).items():
            c.quantity(q, "%s.resources.%s.%s" % (field, kind_, r))
    for r, q in (res.get("requests") or {}).items():
        lim = (res.get("limits") or {}).get(r)
        if lim is not None and _quantity_value(q) is not None and \
                _quantity_value(lim) is not None and _quantity_value(q) > _quantity_value(lim):
            c.err("%s.resources.requests.%s" % (field, r), "must be <= the limit")
    sc = ct.get("securityContext") or {}
    for k in ("add", "drop"):
        for cap in (sc.get("capabilities") or {}).get(k) or []:
            if cap not in CAPABILITIES:
                c.err("%s.securityContext.capabilities.%s" % (field, k),
                      "unknown capability %r (no CAP_ prefix in Kubernetes)" % cap)
    for prof in ("seccompProfile", "appArmorProfile"):
        if prof in sc and (sc[prof] or {}).get("type") not in ("RuntimeDefault", "Unconfined",
                                                               "Localhost"):
            c.err("%s.securityContext.%s.type" % (field, prof), "invalid")
    if sc.get("privileged") and sc.get("allowPrivilegeEscalation") is False:
        c.err(field + ".securityContext", "privileged requires allowPrivilegeEscalation")
    if "runAsUser" in sc and (not isinstance(sc["runAsUser"], int) or sc["runAsUser"] < 0):
        c.err(field + ".securityContext.runAsUser", "invalid")
    return port_names


def check_pod_spec(c, spec, field):
    if not isinstance(spec, dict):
        c.err(field, "required")
        return {}
    volumes = {}
    for i, v in enumerate(spec.get("volumes") or []):
        vf = "%s.volumes[%d]" % (field, i)
        n = c.need(v, "name", vf + ".name", str)
        if n is None:
            continue
        if not DNS_LABEL.match(n):
            c.err(vf + ".name", "invalid %r" % n)
        if n in volumes:
            c.err(vf + ".name", "duplicate volume %r" % n)
        srcs = [k for k in v if k in VOLUME_SOURCES]
        unknown = [k for k in v if k != "name" and k not in VOLUME_SOURCES]
        if len(srcs) != 1 or unknown:
            c.err(vf, "exactly one known volume source required, got %r" % list(v))
        if "hostPath" in v:
            p = c.need(v["hostPath"], "path", vf + ".hostPath.path", str)
            if p is not None and not p.startswith("/"):
                c.err(vf + ".hostPath.path", "must be absolute")
            if v["hostPath"].get("type", "") not in HOSTPATH_TYPES:
                c.err(vf + ".hostPath.type", "invalid %r" % v["hostPath"].get("type"))
        if "configMap" in v:
            c.need(v["configMap"], "name", vf + ".configMap.name", str)
        if "persistentVolumeClaim" in v:
            c.need(v["persistentVolumeClaim"], "claimName", vf + ".persistentVolumeClaim.claimName",
                   str)
        volumes[n] = v
    containers = c.need(spec, "containers", field + ".containers", list)
    ports = {}
    names = set()
    for i, ct in enumerate(containers or []):
        if not isinstance(ct, dict):
            c.err("%s.containers[%d]" % (field, i), "must be a map")
            continue
        if ct.get("name") in names:
            c.err("%s.containers[%d].name" % (field, i), "duplicate")
        names.add(ct.get("name"))
        for pn in check_container(c, ct, "%s.containers[%d]" % (field, i), volumes):
            ports[pn] = True
        for p in ct.get("ports") or []:
            if "containerPort" in p:
                ports[p["containerPort"]] = True
    if not containers:
        c.err(field + ".containers", "at least one container")
    if spec.get("restartPolicy") not in (None, "Always", "OnFailure", "Never"):
        c.err(field + ".restartPolicy", "invalid")
    for k in ("hostPID", "hostNetwork", "hostIPC", "automountServiceAccountToken"):
        if k in spec and not isinstance(spec[k], bool):
            c.err(field + "." + k, "must be a boolean")
    c.string_map(spec.get("nodeSelector"), field + ".nodeSelector")
    for i, t in enumerate(spec.get("tolerations") or []):
        op = t.get("operator", "Equal")
        if op not in ("Exists", "Equal"):
            c.err("%s.tolerations[%d].operator" % (field, i), "invalid")
        if op == "Exists" and t.get("value"):
            c.err("%s.tolerations[%d]" % (field, i), "value must be empty with Exists")
    return ports


def check_workload(c, obj, kind):
    spec = c.need(obj, "spec", "spec", dict)
    if spec is None:
        return None
    sel = c.need(spec, "selector", "spec.selector", dict)
    ml = (sel or {}).get("matchLabels")
    if not ml:
        c.err("spec.selector.matchLabels", "required (apps/v1)")
    c.string_map(ml, "spec.selector.matchLabels")
    tmpl = c.need(spec, "template", "spec.template", dict)
    labels = ((tmpl or {}).get("metadata") or {}).get("labels") or {}
    c.string_map(labels, "spec.template.metadata.labels")
    for k, v in (ml or {}).items():
        if labels.get(k) != v:
            c.err("spec.template.metadata.labels",
                  "selector %s=%s does not match the template" % (k, v))
    if kind == "Deployment":
        if "replicas" in spec and (not isinstance(spec["replicas"], int) or spec["replicas"] < 0):
            c.err("spec.replicas", "must be a non-negative integer")
        st = spec.get("strategy") or {}
        if st.get("type", "RollingUpdate") not in ("RollingUpdate", "Recreate"):
            c.err("spec.strategy.type", "invalid")
        if st.get("type") == "Recreate" and "rollingUpdate" in st:
            c.err("spec.strategy.rollingUpdate", "forbidden with Recreate")
    else:
        st = spec.get("updateStrategy") or {}
        if st.get("type", "RollingUpdate") not in ("RollingUpdate", "OnDelete"):
            c.err("spec.updateStrategy.type", "invalid")
    pod = (tmpl or {}).get("spec")
    if kind in ("Deployment", "DaemonSet") and (pod or {}).get("restartPolicy", "Always") != "Always":
        c.err("spec.template.spec.restartPolicy", "must be Always")
    ports = check_pod_spec(c, pod, "spec.template.spec")
    return labels, ports, pod


def check_service(c, obj):
    spec = c.need(obj, "spec", "spec", dict) or {}
    if spec.get("type", "ClusterIP") not in ("ClusterIP", "NodePort", "LoadBalancer",
                                             "ExternalName"):
        c.err("spec.type", "invalid %r" % spec.get("type"))
    ports = c.need(spec, "ports", "spec.ports", list) or []
    if not ports:
        c.err("spec.ports", "at least one port")
    for i, p in enumerate(ports):
        pf = "spec.ports[%d]" % i
        port = c.need(p, "port", pf + ".port", int)
        if port is not None and not 1 <= port <= 65535:
            c.err(pf + ".port", "out of range")
        if len(ports) > 1 and not p.get("name"):
            c.err(pf + ".name", "required when there are several ports")
        tp = p.get("targetPort")
        if isinstance(tp, str) and (len(tp) > 15 or not PORT_NAME.match(tp)):
            c.err(pf + ".targetPort", "invalid port name %r" % tp)
    c.string_map(spec.get("selector"), "spec.selector")


def validate(documents, source, external_secrets=()):
    """documents: parsed objects from one set of manifests (applied together)."""
    errors = []
    workloads = []
    services = []
    configmaps = {}
    pvcs = set()
    for obj in documents:
        c = Checker(source, obj)
        if not isinstance(obj, dict):
            errors.append("%s: not a mapping" % source)
            continue
        kind = obj.get("kind")
        if kind not in API_VERSION:
            c.err("kind", "unexpected kind %r" % kind)
            errors += c.errors
            continue
        if obj.get("apiVersion") != API_VERSION[kind]:
            c.err("apiVersion", "%s needs %s, got %r" % (kind, API_VERSION[kind],
                                                         obj.get("apiVersion")))
        extra = set(obj) - {"apiVersion", "kind", "metadata", "spec", "data", "stringData",
                            "binaryData", "type", "immutable"}
        if extra:
            c.err("(top level)", "unknown fields %s" % sorted(extra))
        check_metadata(c, obj, kind)
        ns = (obj.get("metadata") or {}).get("namespace", "default")
        name = (obj.get("metadata") or {}).get("name")
        if kind == "ConfigMap":
            data = obj.get("data") or {}
            for k, v in data.items():
                if not CONFIG_KEY.match(str(k)):
                    c.err("data", "invalid key %r" % (k,))
                if not isinstance(v, str):
                    c.err("data." + str(k), "must be a string, got %r" % (v,))
            configmaps[(ns, name)] = data
        elif kind == "PersistentVolumeClaim":
            spec = c.need(obj, "spec", "spec", dict) or {}
            modes = c.need(spec, "accessModes", "spec.accessModes", list) or []
            for m in modes:
                if m not in ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"):
                    c.err("spec.accessModes", "invalid %r" % m)
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
            if storage is None:
                c.err("spec.resources.requests.storage", "required")
            else:
                c.quantity(storage, "spec.resources.requests.storage")
            pvcs.add((ns, name))
        elif kind in ("Deployment", "DaemonSet"):
            r = check_workload(c, obj, kind)
            if r:
                workloads.append((ns, kind, name, r[0], r[1], r[2], c))
        elif kind == "Service":
            check_service(c, obj)
            services.append((ns, name, obj.get("spec") or {}, c))
        errors += c.errors
    # References between objects of the set.
    for ns, kind, name, labels, ports, pod, c in workloads:
        c.errors = []
        for v in (pod or {}).get("volumes") or []:
            if "configMap" in v and (ns, v["configMap"].get("name")) not in configmaps:
                c.err("volumes." + v["name"], "ConfigMap %r is not in the manifests" %
                      v["configMap"].get("name"))
            if "persistentVolumeClaim" in v and \
                    (ns, v["persistentVolumeClaim"].get("claimName")) not in pvcs:
                c.err("volumes." + v["name"], "PersistentVolumeClaim %r is not in the manifests" %
                      v["persistentVolumeClaim"].get("claimName"))
        for ct in (pod or {}).get("containers") or []:
            for ef in ct.get("envFrom") or []:
                if "configMapRef" in ef and (ns, ef["configMapRef"].get("name")) not in configmaps:
                    c.err("envFrom", "ConfigMap %r is not in the manifests" %
                          ef["configMapRef"].get("name"))
                if "secretRef" in ef and ef["secretRef"].get("name") not in external_secrets:
                    c.err("envFrom", "Secret %r is not a documented one" %
                          ef["secretRef"].get("name"))
            for e in ct.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref.get("name") not in external_secrets:
                    c.err("env." + e.get("name", "?"), "Secret %r is not a documented one" %
                          ref.get("name"))
        errors += c.errors
    for ns, name, spec, c in services:
        c.errors = []
        sel = spec.get("selector") or {}
        matched = [w for w in workloads if w[0] == ns and sel and
                   all(w[3].get(k) == v for k, v in sel.items())]
        if not matched:
            c.err("spec.selector", "selects no Deployment/DaemonSet of the manifests")
        for p in spec.get("ports") or []:
            tp = p.get("targetPort", p.get("port"))
            for w in matched:
                if tp not in w[4]:
                    c.err("spec.ports.targetPort", "%r is not a container port of %s/%s" %
                          (tp, w[1], w[2]))
        errors += c.errors
    return errors
