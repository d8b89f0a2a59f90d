{{/* Name of every object: the release name, or release-chart when it does not contain the chart name. */}}
{{- define "switchyard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* No helm.sh/chart or managed-by labels: the rendered output doubles as the plain manifests. */}}
{{- define "switchyard.labels" -}}
{{ include "switchyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: switchyard
{{- end -}}

{{- define "switchyard.config" -}}
{{- .Values.config | default (.Files.Get "files/gateway.yaml") -}}
{{- end -}}

{{- define "switchyard.bootstrap" -}}
{{- if and .Values.config (not .Values.envoy.bootstrap) -}}
{{- fail "config is set but envoy.bootstrap is not: pass --set-file envoy.bootstrap=envoy.yaml, generated with `switchyard bootstrap --config gateway.yaml > envoy.yaml`" -}}
{{- end -}}
{{- .Values.envoy.bootstrap | default (.Files.Get "files/envoy.yaml") -}}
{{- end -}}

{{/* The gateway pods (Envoy + processor); the dev Redis has component: redis. */}}
{{- define "switchyard.gatewaySelectorLabels" -}}
{{ include "switchyard.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end -}}
