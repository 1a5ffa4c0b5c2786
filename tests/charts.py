"""A small Helm chart of our own making, vendored into a test repository the way users vendor theirs."""

from __future__ import annotations

from gitrepo import PushRepo

_CHART_YAML = """apiVersion: v2
name: {name}
description: A web service and its settings (test chart)
type: application
version: {version}
appVersion: "1.0"
"""

_VALUES = """replicaCount: 1
greeting: hello
extraSetting: false
"""

_CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
  labels:
    helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
    app.kubernetes.io/instance: {{ .Release.Name }}
data:
  greeting: {{ .Values.greeting | quote }}
"""

_EXTRA = """{{- if .Values.extraSetting }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-extra
  labels:
    helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
data:
  extra: "yes"
{{- end }}
"""

_DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels:
    helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels: {app.kubernetes.io/instance: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app.kubernetes.io/instance: {{ .Release.Name }}}
    spec:
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: web
          image: registry.example/web:1.0
"""


def write_chart(repo: PushRepo, folder: str, name: str = "webapp", version: str = "0.1.0") -> None:
    """`<folder>/<name>/`: Chart.yaml, values.yaml and three templates (one only when `extraSetting`)."""
    base = f"{folder}/{name}"
    repo.write(f"{base}/Chart.yaml", _CHART_YAML.format(name=name, version=version))
    repo.write(f"{base}/values.yaml", _VALUES)
    repo.write(f"{base}/templates/configmap.yaml", _CONFIGMAP)
    repo.write(f"{base}/templates/extra.yaml", _EXTRA)
    repo.write(f"{base}/templates/deployment.yaml", _DEPLOYMENT)


def chart_stack(repo: PushRepo, stack: str, namespace: str, values: dict | None = None,
                chart: dict | None = None) -> str:
    """`stacks/<stack>/` rendering the vendored chart `webapp` (under the stack's `charts/`) with `values`."""
    write_chart(repo, f"stacks/{stack}/charts")
    entry = {"name": "webapp", "releaseName": "web", "namespace": namespace, "valuesInline": values or {}}
    repo.write(f"stacks/{stack}/kustomization.yaml",
               {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": namespace,
                "helmCharts": [{**entry, **(chart or {})}]})
    return f"stacks/{stack}"
