{{- define "citeline.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "citeline.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "citeline.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "citeline.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "citeline.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "citeline.fullname" .)) -}}
{{- end -}}

{{/* Settings every container reads: the ConfigMap, then the secret keys that are set. */}}
{{- define "citeline.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "citeline.fullname" . }}
  - secretRef:
      name: {{ include "citeline.secretName" . }}
      optional: true
{{- end -}}
