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

{{/* The mailer the plugin uses: "mailgun", "smtp", or "" for none. A mailer is on when its
`enabled` is true, or when `enabled` is left unset and its required values are set
(mailgun.domain with mailgun.privateKey or privateKeyFromSecret; smtp.host), as in the Teleport
guide's example; `enabled: false` turns it off. An explicitly enabled mailer wins over an
implicit one; between two of a kind Mailgun wins, as upstream. */}}
{{- define "email.mailer" -}}
{{- $mg := .Values.mailgun -}}
{{- $smtp := .Values.smtp -}}
{{- $mgOff := and (kindIs "bool" $mg.enabled) (not $mg.enabled) -}}
{{- $smtpOff := and (kindIs "bool" $smtp.enabled) (not $smtp.enabled) -}}
{{- if $mg.enabled -}}
mailgun
{{- else if $smtp.enabled -}}
smtp
{{- else if and (not $mgOff) $mg.domain (or $mg.privateKey $mg.privateKeyFromSecret) -}}
mailgun
{{- else if and (not $smtpOff) $smtp.host -}}
smtp
{{- end -}}
{{- end -}}

{{/* `--diag-addr` of the diagnostics endpoint: diagnostics.bindAddress (IPv6 in brackets) and
diagnostics.port. */}}
{{- define "email.diagAddr" -}}
{{- $host := .Values.diagnostics.bindAddress -}}
{{- if contains ":" $host -}}
{{- printf "[%s]:%d" $host (.Values.diagnostics.port | int) -}}
{{- else -}}
{{- printf "%s:%d" $host (.Values.diagnostics.port | int) -}}
{{- end -}}
{{- end -}}

{{/* Secret holding the mailer's password or API key. */}}
{{- define "email.mailerSecretName" -}}
{{- if eq (include "email.mailer" .) "mailgun" -}}
{{- coalesce .Values.mailgun.privateKeyFromSecret (printf "%s-secret" (include "email.fullname" .)) -}}
{{- else -}}
{{- coalesce .Values.smtp.passwordFromSecret (printf "%s-secret" (include "email.fullname" .)) -}}
{{- end -}}
{{- end -}}
