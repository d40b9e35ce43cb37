{{/* Name of the chart, or nameOverride; at most 63 characters. */}}
{{- define "email.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of every object: fullnameOverride, else <release>-<name> (or the release name when it
already contains the chart's name); at most 63 characters. */}}
{{- define "email.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "email.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "email.selectorLabels" -}}
app.kubernetes.io/name: {{ include "email.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "email.labels" -}}
helm.sh/chart: {{ include "email.chart" . }}
{{ include "email.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The Secret with the identity: teleport.identitySecretName, else tbot's output Secret. */}}
{{- define "email.identitySecretName" -}}
{{- if .Values.teleport.identitySecretName -}}
{{- .Values.teleport.identitySecretName -}}
{{- else if .Values.tbot.enabled -}}
{{- printf "%s-%s-out" .Release.Name (default "tbot" .Values.tbot.nameOverride) -}}
{{- end -}}
{{- end -}}

{{/* Key of the identity file in that Secret: tbot always writes "identity". */}}
{{- define "email.identitySecretPath" -}}
{{- if .Values.tbot.enabled -}}
identity
{{- else -}}
{{- .Values.teleport.identitySecretPath -}}
{{- end -}}
{{- end -}}

{{/* Secret holding the mailer's password or API key. */}}
{{- define "email.mailerSecretName" -}}
{{- if .Values.mailgun.enabled -}}
{{- coalesce .Values.mailgun.privateKeyFromSecret (printf "%s-secret" (include "email.fullname" .)) -}}
{{- else -}}
{{- coalesce .Values.smtp.passwordFromSecret (printf "%s-secret" (include "email.fullname" .)) -}}
{{- end -}}
{{- end -}}
