{{/* Resource name prefix: the release name, with "creditrisk" added unless it has it. */}}
{{- define "creditrisk.fullname" -}}
{{- if contains "creditrisk" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-creditrisk" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "creditrisk.labels" -}}
app.kubernetes.io/part-of: creditrisk
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "creditrisk.trainImage" -}}
{{ .Values.images.train.repository }}:{{ .Values.images.train.tag }}
{{- end -}}

{{- define "creditrisk.serveImage" -}}
{{ .Values.images.serve.repository }}:{{ .Values.images.serve.tag }}
{{- end -}}

{{- define "creditrisk.s3Secret" -}}
{{- .Values.s3.existingSecret | default (printf "%s-s3" (include "creditrisk.fullname" .)) -}}
{{- end -}}

{{- define "creditrisk.postgresSecret" -}}
{{- .Values.postgres.existingSecret | default (printf "%s-postgres" (include "creditrisk.fullname" .)) -}}
{{- end -}}

{{/* host:port of the S3 endpoint (the chart's MinIO unless s3.endpoint is set). */}}
{{- define "creditrisk.s3HostPort" -}}
{{- .Values.s3.endpoint | default (printf "%s-minio:9000" (include "creditrisk.fullname" .)) -}}
{{- end -}}

{{- define "creditrisk.s3Url" -}}
{{- printf "%s://%s" (ternary "https" "http" (eq (toString .Values.s3.useHttps) "1")) (include "creditrisk.s3HostPort" .) -}}
{{- end -}}

{{- define "creditrisk.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The S3 credentials as environment variables. */}}
{{- define "creditrisk.s3Env" -}}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "creditrisk.s3Secret" . }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "creditrisk.s3Secret" . }}
      key: AWS_SECRET_ACCESS_KEY
{{- end -}}

{{/* A random value kept across upgrades: the key of an existing Secret, else new. */}}
{{- define "creditrisk.keep" -}}
{{- $secret := lookup "v1" "Secret" .ns .name -}}
{{- if and $secret (hasKey $secret.data .key) -}}
{{- index $secret.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}
