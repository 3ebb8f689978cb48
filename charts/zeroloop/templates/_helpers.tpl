{{/* Names and labels shared by every template. */}}

{{- define "zeroloop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "zeroloop.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "zeroloop.operatorName" -}}
{{- printf "%s-operator" (include "zeroloop.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "zeroloop.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "zeroloop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: zeroloop
{{- end -}}

{{- define "zeroloop.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "zeroloop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "zeroloop.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "zeroloop.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The namespaces a namespaced operator serves (the release namespace by default). */}}
{{- define "zeroloop.watchNamespaces" -}}
{{- if .Values.rbac.watchNamespaces -}}
{{- join "," .Values.rbac.watchNamespaces -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* Labels every stage pod of every run carries (set by the operator): what monitors select. */}}
{{- define "zeroloop.stageSelector" -}}
app.kubernetes.io/part-of: zeroloop
app.kubernetes.io/managed-by: zeroloop-operator
{{- end -}}

{{- define "zeroloop.dashboardNamespace" -}}
{{- default .Release.Namespace .Values.monitoring.dashboards.namespace -}}
{{- end -}}
