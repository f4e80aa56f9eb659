"""Kubernetes manifests, the Helm chart, the compose file and the Dockerfile, checked without a
cluster, Helm or Docker: parsed, rendered (tests/packaging/helm_render.py) and validated against
what the API server requires (k8s_validate.py), and cross-checked with the agent's and server's
own configuration (the agent binary loads the rendered agent.yaml; server settings must be names
of .env.example; capabilities equal the systemd unit's)."""
import copy
import glob
import os
import re
import subprocess
import sys
import tempfile
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import helm_render  # noqa: E402
import k8s_validate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
PKG = os.path.join(ROOT, "packaging")
CHART = os.path.join(PKG, "helm", "boing")
AGENT_BIN = os.environ.get("BOING_AGENT_BIN", "")
EXTERNAL_SECRETS = {"boing-server-secrets", "boing-agent-enroll"}
AGENT_CAPS = {"BPF", "PERFMON", "SYS_ADMIN", "DAC_READ_SEARCH", "SYS_RESOURCE"}


def server_settings():
    names = set()
    with open(os.path.join(ROOT, ".env.example")) as f:
        for line in f:
            m = re.match(r"^([A-Z][A-Z0-9_]*)=", line)
            if m:
                names.add(m.group(1))
    return names


def unit_capabilities(unit):
    with open(os.path.join(PKG, "systemd", unit)) as f:
        for line in f:
            if line.startswith("CapabilityBoundingSet="):
                return {c[len("CAP_"):] for c in line.split("=", 1)[1].split()}
    return None


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


class AgentConfigMixin:
    def assert_agent_config_loads(self, text):
        """The agent's own loader accepts the agent.yaml (unknown or bad fields exit 2)."""
        self.assertTrue(AGENT_BIN and os.path.exists(AGENT_BIN), "BOING_AGENT_BIN not built")
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(text)
        try:
            r = subprocess.run([AGENT_BIN, "--config", f.name, "--version"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, "agent refused %s:\n%s\n%s" % (f.name, r.stderr, text))
            bad = text + "\nnot_a_field: 1\n"
            with open(f.name, "w") as g:
                g.write(bad)
            r = subprocess.run([AGENT_BIN, "--config", f.name, "--version"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, "a bad agent.yaml must be refused: " + r.stdout)
            self.assertIn("not_a_field: unknown field", r.stderr)
        finally:
            os.unlink(f.name)


class PlainManifests(unittest.TestCase, AgentConfigMixin):
    def load(self):
        docs = []
        for path in sorted(glob.glob(os.path.join(PKG, "kubernetes", "*.yaml"))):
            with open(path) as f:
                docs += k8s_validate.load_documents(f.read())
        return docs

    def test_every_object_is_valid(self):
        docs = self.load()
        self.assertEqual(k8s_validate.validate(docs, "packaging/kubernetes", EXTERNAL_SECRETS), [])
        kinds = sorted(d["kind"] for d in docs)
        self.assertEqual(kinds, ["ConfigMap", "ConfigMap", "DaemonSet", "Deployment", "Namespace",
                                 "PersistentVolumeClaim", "Service"])
        for d in docs:
            if d["kind"] != "Namespace":
                self.assertEqual(d["metadata"]["namespace"], "boing", d["metadata"]["name"])

    def test_daemonset_has_host_pid_the_kernel_mounts_and_only_the_units_capabilities(self):
        ds = by_kind(self.load(), "DaemonSet")[0]
        pod = ds["spec"]["template"]["spec"]
        self.assertIs(pod["hostPID"], True)
        host_paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
        for p in ("/sys/kernel/tracing", "/sys/fs/bpf", "/sys/fs/cgroup", "/var/lib/boing-agent",
                  "/run/containerd/io.containerd.runtime.v2.task/k8s.io"):
            self.assertIn(p, host_paths)
        sc = pod["containers"][0]["securityContext"]
        self.assertEqual(set(sc["capabilities"]["add"]), AGENT_CAPS)
        self.assertEqual(set(sc["capabilities"]["add"]), unit_capabilities("boing-agent.service"))
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertIs(sc["privileged"], False)

    def test_agent_configmap_is_accepted_by_the_agent(self):
        cm = [d for d in by_kind(self.load(), "ConfigMap") if d["metadata"]["name"] == "boing-agent"]
        self.assert_agent_config_loads(cm[0]["data"]["agent.yaml"])

    def test_server_settings_are_known_names(self):
        cm = [d for d in by_kind(self.load(), "ConfigMap")
              if d["metadata"]["name"] == "boing-server"][0]
        self.assertEqual(set(cm["data"]) - server_settings(), set())
        dep = by_kind(self.load(), "Deployment")[0]
        ct = dep["spec"]["template"]["spec"]["containers"][0]
        self.assertTrue(dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"])
        self.assertEqual(ct["securityContext"]["capabilities"]["drop"], ["ALL"])


class BrokenManifestsAreCaught(unittest.TestCase):
    """The validator itself: each mutation of a valid set must produce an error naming it."""

    def base(self):
        docs = []
        for path in sorted(glob.glob(os.path.join(PKG, "kubernetes", "*.yaml"))):
            with open(path) as f:
                docs += k8s_validate.load_documents(f.read())
        return docs

    def errors_after(self, mutate):
        docs = copy.deepcopy(self.base())
        mutate(docs)
        return "\n".join(k8s_validate.validate(docs, "t", EXTERNAL_SECRETS))

    def test_mutations(self):
        ds = lambda d: by_kind(d, "DaemonSet")[0]  # noqa: E731
        dep = lambda d: by_kind(d, "Deployment")[0]  # noqa: E731
        svc = lambda d: by_kind(d, "Service")[0]  # noqa: E731
        cases = {
            "does not match the template": lambda d: ds(d)["spec"]["template"]["metadata"]
            ["labels"].update({"app.kubernetes.io/name": "other"}),
            "no volume named": lambda d: ds(d)["spec"]["template"]["spec"]["containers"][0]
            ["volumeMounts"].append({"name": "nope", "mountPath": "/x"}),
            "is not an env var": lambda d: ds(d)["spec"]["template"]["spec"]["containers"][0]
            ["env"].pop(),
            "unknown capability": lambda d: ds(d)["spec"]["template"]["spec"]["containers"][0]
            ["securityContext"]["capabilities"]["add"].append("CAP_BPF"),
            "image: required": lambda d: dep(d)["spec"]["template"]["spec"]["containers"][0]
            .pop("image"),
            "selects no Deployment": lambda d: svc(d)["spec"]["selector"].update(
                {"app.kubernetes.io/name": "typo"}),
            "no container port named": lambda d: dep(d)["spec"]["template"]["spec"]
            ["containers"][0]["readinessProbe"]["httpGet"].update({"port": "web"}),
            "apiVersion: DaemonSet needs apps/v1": lambda d: ds(d).update(
                {"apiVersion": "extensions/v1beta1"}),
            "invalid name": lambda d: svc(d)["metadata"].update({"name": "Boing_Server"}),
            "Secret 'other' is not a documented one": lambda d: dep(d)["spec"]["template"]
            ["spec"]["containers"][0]["envFrom"][1]["secretRef"].update({"name": "other"}),
            "must be a string": lambda d: by_kind(d, "ConfigMap")[1]["data"].update(
                {"THREADS": 4}),
            "PersistentVolumeClaim": lambda d: d.remove(by_kind(d, "PersistentVolumeClaim")[0]),
        }
        for needle, mutate in cases.items():
            with self.subTest(needle):
                self.assertIn(needle, self.errors_after(mutate))

    def test_duplicate_keys_are_refused(self):
        with self.assertRaises(yaml.constructor.ConstructorError):
            k8s_validate.load_documents("kind: Service\nkind: Pod\n")


class HelmChart(unittest.TestCase, AgentConfigMixin):
    OVERRIDES = {
        "defaults": {},
        "mariadb, no persistence, CRI-O, external server": {
            "server": {"persistence": {"enabled": False}, "replicas": 3,
                       "env": {"DB_HOST": "mariadb.db.svc", "DB_USER": "boing"},
                       "service": {"type": "LoadBalancer", "port": 9000}},
            "agent": {"serverUrl": "https://boing.example:8443",
                      "runtimeStateDir": "/run/containers/storage/overlay-containers",
                      "nodeSelector": {"kubernetes.io/os": "linux"},
                      "config": {"scope": {"ports": [80, 443]}, "capture": {"tls": False},
                                 "spool": None}}},
        "storage class": {"server": {"persistence": {"storageClass": "fast-ssd"}}},
        "server only": {"agent": {"enabled": False}},
        "agent only": {"server": {"enabled": False},
                       "agent": {"serverUrl": "http://boing.example:8000"}},
    }

    def render(self, override):
        out = helm_render.render_chart(CHART, release="prod", namespace="monitoring",
                                       values_override=override)
        docs = []
        for name, text in out.items():
            docs += k8s_validate.load_documents(text)
        return docs

    def test_chart_metadata(self):
        with open(os.path.join(CHART, "Chart.yaml")) as f:
            chart = yaml.safe_load(f)
        self.assertEqual(chart["apiVersion"], "v2")
        self.assertRegex(chart["name"], k8s_validate.DNS_LABEL)
        self.assertRegex(chart["version"], r"^\d+\.\d+\.\d+$")

    def test_every_rendering_is_valid(self):
        for label, override in self.OVERRIDES.items():
            with self.subTest(label):
                docs = self.render(override)
                self.assertTrue(docs)
                self.assertEqual(k8s_validate.validate(docs, "chart(%s)" % label,
                                                       EXTERNAL_SECRETS), [])
                for d in docs:
                    self.assertEqual(d["metadata"]["namespace"], "monitoring")
                    self.assertTrue(d["metadata"]["name"].startswith("prod-"))

    def test_values_reach_the_objects(self):
        docs = self.render(self.OVERRIDES["mariadb, no persistence, CRI-O, external server"])
        dep = by_kind(docs, "Deployment")[0]
        self.assertEqual(dep["spec"]["replicas"], 3)
        self.assertNotIn("strategy", dep["spec"])
        self.assertEqual(by_kind(docs, "PersistentVolumeClaim"), [])
        cm = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == "prod-server"][0]
        self.assertEqual(cm["data"]["DB_HOST"], "mariadb.db.svc")
        self.assertEqual(cm["data"]["LISTEN"], "0.0.0.0:9000")
        self.assertEqual(set(cm["data"]) - server_settings(), set())
        svc = by_kind(docs, "Service")[0]
        self.assertEqual(svc["spec"]["type"], "LoadBalancer")
        ds = by_kind(docs, "DaemonSet")[0]
        ct = ds["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(ct["args"][ct["args"].index("--server") + 1], "https://boing.example:8443")
        self.assertEqual(set(ct["securityContext"]["capabilities"]["add"]), AGENT_CAPS)
        self.assertIn("/run/containers/storage/overlay-containers",
                      {v["hostPath"]["path"] for v in ds["spec"]["template"]["spec"]["volumes"]
                       if "hostPath" in v})
        self.assertEqual(ds["spec"]["template"]["spec"]["nodeSelector"],
                         {"kubernetes.io/os": "linux"})
        agent_yaml = [d for d in by_kind(docs, "ConfigMap")
                      if d["metadata"]["name"] == "prod-agent"][0]["data"]["agent.yaml"]
        parsed = yaml.safe_load(agent_yaml)
        self.assertEqual(parsed["scope"], {"ports": [80, 443]})
        self.assertNotIn("spool", parsed, "a null in the values deletes the chart's default")
        self.assertEqual(parsed["kubernetes"]["runtime_dirs"],
                         ["/run/containers/storage/overlay-containers"])
        self.assert_agent_config_loads(agent_yaml)

    def test_default_agent_sends_to_the_release_service(self):
        docs = self.render({})
        ct = by_kind(docs, "DaemonSet")[0]["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(ct["args"][ct["args"].index("--server") + 1],
                         "http://prod-server.monitoring.svc:8000")
        agent_yaml = [d for d in by_kind(docs, "ConfigMap")
                      if d["metadata"]["name"] == "prod-agent"][0]["data"]["agent.yaml"]
        self.assert_agent_config_loads(agent_yaml)
        self.assertEqual(len(by_kind(docs, "PersistentVolumeClaim")), 1)
        self.assertEqual(by_kind(docs, "Deployment")[0]["spec"]["strategy"]["type"], "Recreate")

    def test_renderer_refuses_what_it_does_not_implement(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "templates"))
            with open(os.path.join(d, "Chart.yaml"), "w") as f:
                f.write("apiVersion: v2\nname: x\nversion: 0.1.0\n")
            with open(os.path.join(d, "values.yaml"), "w") as f:
                f.write("a: 1\n")
            for bad in ('{{ include "x" . }}', "{{ .Values.a | upper }}", "{{ if .Values.a }}x",
                        "{{ end }}", "{{ range .Values.a }}{{ end }}"):
                with open(os.path.join(d, "templates", "t.yaml"), "w") as f:
                    f.write(bad)
                with self.subTest(bad), self.assertRaises(helm_render.TemplateError):
                    helm_render.render_chart(d)
            with open(os.path.join(d, "templates", "t.yaml"), "w") as f:
                f.write("a:\n  {{- if .Values.a }}\n  b: {{ .Values.a | quote }}\n  {{- end }}\n"
                        "c: {{ .Values.missing | default \"d\" }}\n")
            self.assertEqual(helm_render.render_chart(d)["t.yaml"], 'a:\n  b: "1"\nc: d\n')


class ComposeAndDockerfile(unittest.TestCase):
    def dockerfile(self):
        with open(os.path.join(PKG, "docker", "Dockerfile")) as f:
            return f.read()

    def test_dockerfile_stages(self):
        text = self.dockerfile()
        stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)", text, re.M)
        self.assertEqual([s[1] for s in stages], ["build", "server", "agent"])
        for image, _ in stages:
            self.assertRegex(image, r"^debian:12(-slim)?$")
        for src in re.findall(r"COPY\s+--from=(\S+)", text):
            self.assertIn(src, [s[1] for s in stages])
        # The images run the binaries where the packages install them and the units start them.
        entry = re.findall(r'^ENTRYPOINT \["([^"]+)"\]', text, re.M)
        self.assertEqual(entry, ["/usr/bin/boing-server", "/usr/sbin/boing-agent"])
        for unit, binary in (("boing-server.service", entry[0]), ("boing-agent.service", entry[1])):
            with open(os.path.join(PKG, "systemd", unit)) as f:
                self.assertIn("ExecStart=" + binary + " ", f.read())
        self.assertIn("USER 10001:10001", text)
        # The build context leaves out build trees and the repository (.dockerignore).
        with open(os.path.join(ROOT, ".dockerignore")) as f:
            ignored = f.read().split()
        for entry in (".git", "build*/", ".data/"):
            self.assertIn(entry, ignored)

    def test_compose(self):
        with open(os.path.join(ROOT, "docker-compose.yml")) as f:
            compose = k8s_validate.load_documents(f.read())[0]
        services = compose["services"]
        for s in ("server", "mariadb", "nats"):
            self.assertIn(s, services)
        stages = [s for s in re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", self.dockerfile(), re.M)]
        for name, svc in services.items():
            for dep in svc.get("depends_on") or {}:
                self.assertIn(dep, services, name)
            for vol in svc.get("volumes") or []:
                src = vol.split(":")[0]
                if not src.startswith("/"):
                    self.assertIn(src, compose["volumes"], name)
            if "build" in svc:
                self.assertTrue(os.path.exists(os.path.join(ROOT, svc["build"]["context"],
                                                            svc["build"]["dockerfile"])))
                self.assertIn(svc["build"]["target"], stages)
        env = services["server"]["environment"]
        self.assertEqual(set(env) - server_settings(), set())
        self.assertEqual(env["DB_HOST"], "mariadb")
        self.assertIn("--jetstream", services["nats"]["command"])
        agent = services["agent"]
        self.assertEqual(set(agent["cap_add"]), AGENT_CAPS)
        self.assertEqual(agent["pid"], "host")


if __name__ == "__main__":
    unittest.main()
