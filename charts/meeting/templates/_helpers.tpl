{{/* Name of the chart, or nameOverride. */}}
{{- define "meeting.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every object's name: fullnameOverride, else the release name when it
already holds the chart's name, else <release>-<chart>. Kept short enough for the
longest suffix ("-operator-leader-election", 25 characters) to fit 63.
*/}}
{{- define "meeting.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 38 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 38 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 38 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "meeting.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The image's tag: image.tag, else the chart's appVersion. */}}
{{- define "meeting.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "meeting.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "meeting.tag" .) -}}
{{- end -}}

{{/* Labels every object carries; call with (dict "ctx" $ "component" "api"). */}}
{{- define "meeting.labels" -}}
helm.sh/chart: {{ include "meeting.chart" .ctx }}
{{ include "meeting.selectorLabels" . }}
app.kubernetes.io/version: {{ include "meeting.tag" .ctx | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: meeting
{{- end -}}

{{/* Labels that select a component's pods (immutable in a Deployment). */}}
{{- define "meeting.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meeting.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "meeting.operator.fullname" -}}{{ include "meeting.fullname" . }}-operator{{- end -}}
{{- define "meeting.api.fullname" -}}{{ include "meeting.fullname" . }}-api{{- end -}}
{{- define "meeting.mariadb.fullname" -}}{{ include "meeting.fullname" . }}-mariadb{{- end -}}

{{/*
The Secrets the API reads, as (name, key) pairs: the user's existing Secret or
the one this chart makes.
*/}}
{{- define "meeting.database.secretName" -}}
{{- if .Values.database.existingSecret -}}{{ .Values.database.existingSecret }}{{- else -}}{{ include "meeting.mariadb.fullname" . }}{{- end -}}
{{- end -}}
{{- define "meeting.database.secretKey" -}}
{{- if .Values.database.existingSecret -}}{{ .Values.database.existingSecretKey }}{{- else -}}url{{- end -}}
{{- end -}}
{{- define "meeting.jwt.secretName" -}}
{{- if .Values.jwt.existingSecret -}}{{ .Values.jwt.existingSecret }}{{- else -}}{{ include "meeting.fullname" . }}-jwt{{- end -}}
{{- end -}}
{{- define "meeting.jwt.secretKey" -}}
{{- if .Values.jwt.existingSecret -}}{{ .Values.jwt.existingSecretKey }}{{- else -}}jwt-secret{{- end -}}
{{- end -}}
{{- define "meeting.admin.secretName" -}}
{{- if .Values.adminPassword.existingSecret -}}{{ .Values.adminPassword.existingSecret }}{{- else -}}{{ include "meeting.fullname" . }}-admin{{- end -}}
{{- end -}}
{{- define "meeting.admin.secretKey" -}}
{{- if .Values.adminPassword.existingSecret -}}{{ .Values.adminPassword.existingSecretKey }}{{- else -}}password{{- end -}}
{{- end -}}

{{/*
A generated secret value that survives upgrades: the value already in the
cluster's Secret (name, key) when there is one, else a new random string.
Call with (dict "ctx" $ "name" NAME "key" KEY "length" N). helm template and
--dry-run see no cluster and always generate.
*/}}
{{- define "meeting.keptRandom" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum (int .length) -}}
{{- end -}}
{{- end -}}

{{/*
Checksum of a Secret's data for a pod annotation, so that pods roll when it
changes: the data of the Secret in the cluster (an existingSecret, or one this
chart made earlier and keeps). Empty when it does not exist yet.
*/}}
{{- define "meeting.secretChecksum" -}}
{{- $s := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- if and $s $s.data (hasKey $s.data .key) -}}
{{- index $s.data .key | sha256sum | trunc 16 -}}
{{- end -}}
{{- end -}}

{{/* Fails with a readable message on values the schema cannot judge alone. */}}
{{- define "meeting.validate" -}}
{{- if and .Values.database.existingSecret .Values.mariadb.enabled -}}
{{- fail "database.existingSecret and mariadb.enabled are both set: the API uses one database; set mariadb.enabled=false to use your own (the URL in the Secret), or unset database.existingSecret to try the bundled MariaDB" -}}
{{- end -}}
{{- if not (or .Values.database.existingSecret .Values.mariadb.enabled) -}}
{{- fail "no database: set database.existingSecret (a Secret holding a mysql://user:pass@host:port/db URL under database.existingSecretKey) or mariadb.enabled=true" -}}
{{- end -}}
{{- if and (eq .Values.media.serviceType "NodePort") (not .Values.media.publicAddress) -}}
{{- fail "media.serviceType NodePort needs media.publicAddress: the address clients reach the nodes on" -}}
{{- end -}}
{{- range .Values.ingress.hosts -}}
{{- if not .host -}}{{- fail "ingress.hosts: every entry needs a host" -}}{{- end -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) -}}
{{- fail "ingress.enabled needs at least one entry in ingress.hosts" -}}
{{- end -}}
{{- end -}}

{{/* Pod scheduling fields of a component's values (nodeSelector, tolerations, affinity). */}}
{{- define "meeting.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The rules of a Role or ClusterRole file under files/rbac, copied from config/rbac by make generate. */}}
{{- define "meeting.rulesFrom" -}}
{{- $role := .ctx.Files.Get .file | fromYaml -}}
{{- if not $role.rules -}}{{- fail (printf "chart file %s holds no rules" .file) -}}{{- end -}}
{{- toYaml $role.rules -}}
{{- end -}}
