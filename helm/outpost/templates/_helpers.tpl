{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "outpost.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name prefix of every object. Kept short enough that
"<fullname>-worker-<worker name>" stays a valid name.
*/}}
{{- define "outpost.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 30 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 30 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 30 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"name-version" for the helm.sh/chart label.
*/}}
{{- define "outpost.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels. Call with (dict "ctx" $ "component" "web").
*/}}
{{- define "outpost.selectorLabels" -}}
app.kubernetes.io/name: {{ include "outpost.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .worker }}
outpost/worker: {{ .worker }}
{{- end }}
{{- end }}

{{/*
Standard labels. Call with (dict "ctx" $ "component" "web" ["worker" name]).
*/}}
{{- define "outpost.labels" -}}
helm.sh/chart: {{ include "outpost.chart" .ctx }}
{{ include "outpost.selectorLabels" . }}
app.kubernetes.io/version: {{ include "outpost.imageTag" .ctx | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: outpost
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The Secret holding DATABASE_URL, REDIS_URL, SECRET_KEY, ... It is never
created by the chart, and rendering stops when it is not named.
*/}}
{{- define "outpost.secretName" -}}
{{- required "existingSecret is required: create a Secret with DATABASE_URL, REDIS_URL, SECRET_KEY, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, SENTRY_DSN and METRICS_TOKEN (see docs/deploy.md) and set existingSecret to its name" .Values.existingSecret }}
{{- end }}

{{- define "outpost.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "outpost.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "outpost.configMapName" -}}
{{- printf "%s-config" (include "outpost.fullname" .) }}
{{- end }}

{{- define "outpost.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion | toString }}
{{- end }}

{{- define "outpost.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "outpost.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
The domain organisations get subdomains of.
*/}}
{{- define "outpost.baseDomain" -}}
{{- if .Values.config.baseDomain }}
{{- .Values.config.baseDomain }}
{{- else if .Values.ingress.wildcardHost }}
{{- trimPrefix "*." .Values.ingress.wildcardHost }}
{{- else if .Values.ingress.hosts }}
{{- first .Values.ingress.hosts }}
{{- end }}
{{- end }}

{{/*
Host header of the web pods' HTTP probes. The kubelet would otherwise send the
pod IP, which host validation (ALLOWED_HOSTS) rejects.
*/}}
{{- define "outpost.probeHost" -}}
{{- if .Values.web.probes.host }}
{{- .Values.web.probes.host }}
{{- else if .Values.ingress.hosts }}
{{- first .Values.ingress.hosts }}
{{- else if include "outpost.baseDomain" . }}
{{- include "outpost.baseDomain" . }}
{{- else }}
{{- "localhost" }}
{{- end }}
{{- end }}

{{- define "outpost.allowedHosts" -}}
{{- if .Values.config.allowedHosts }}
{{- join "," .Values.config.allowedHosts }}
{{- else }}
{{- $hosts := list }}
{{- range .Values.ingress.hosts }}
{{- $hosts = append $hosts . }}
{{- end }}
{{- if .Values.ingress.wildcardHost }}
{{- $hosts = append $hosts (trimPrefix "*" .Values.ingress.wildcardHost) }}
{{- end }}
{{- with .Values.config.baseDomain }}
{{- $hosts = append $hosts . }}
{{- $hosts = append $hosts (printf ".%s" .) }}
{{- end }}
{{- $hosts = append $hosts (include "outpost.probeHost" .) }}
{{- join "," ($hosts | uniq) }}
{{- end }}
{{- end }}

{{- define "outpost.csrfTrustedOrigins" -}}
{{- if .Values.config.csrfTrustedOrigins }}
{{- join "," .Values.config.csrfTrustedOrigins }}
{{- else }}
{{- $origins := list }}
{{- range .Values.ingress.hosts }}
{{- $origins = append $origins (printf "https://%s" .) }}
{{- end }}
{{- with .Values.ingress.wildcardHost }}
{{- $origins = append $origins (printf "https://%s" .) }}
{{- end }}
{{- join "," ($origins | uniq) }}
{{- end }}
{{- end }}

{{/*
The non-secret settings as a flat YAML map of strings: the ConfigMap's data,
and the inline env of the migration hook (which runs before the ConfigMap of
a new release exists).
*/}}
{{- define "outpost.configData" -}}
DJANGO_SETTINGS_MODULE: {{ .Values.config.settingsModule | quote }}
ALLOWED_HOSTS: {{ include "outpost.allowedHosts" . | quote }}
OUTPOST_BASE_DOMAIN: {{ include "outpost.baseDomain" . | quote }}
CSRF_TRUSTED_ORIGINS: {{ include "outpost.csrfTrustedOrigins" . | quote }}
LOG_FORMAT: "json"
LOG_LEVEL: {{ .Values.config.logLevel | quote }}
SENTRY_ENVIRONMENT: {{ .Values.config.sentryEnvironment | quote }}
SENTRY_RELEASE: {{ .Values.config.sentryRelease | default (include "outpost.imageTag" .) | quote }}
RATELIMIT_FAIL_OPEN: {{ ternary "true" "false" (.Values.config.ratelimitFailOpen | default false) | quote }}
FORWARDED_ALLOW_IPS: {{ .Values.config.forwardedAllowIps | quote }}
RATELIMIT_TRUSTED_PROXIES: {{ join "," (.Values.config.ratelimitTrustedProxies | default list) | quote }}
# Several processes per pod: Prometheus samples are aggregated through files here (an emptyDir).
PROMETHEUS_MULTIPROC_DIR: "/tmp/prometheus"
# Celery workers serve their task metrics on this port (web pods ignore it).
CELERY_METRICS_PORT: "9808"
{{- range $key, $value := .Values.config.extra }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
Checksum of the rendered ConfigMap: a settings change changes the pod
template, so every Deployment rolls.
*/}}
{{- define "outpost.configChecksum" -}}
{{- include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}

{{/*
Pod annotations shared by every pod. Call with (dict "ctx" $ "extra" map).
*/}}
{{- define "outpost.podAnnotations" -}}
checksum/config: {{ include "outpost.configChecksum" .ctx }}
{{- with .ctx.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Environment shared by every container: the ConfigMap (except for the hook),
the existing Secret, and extra variables. Call with
(dict "ctx" $ "extraEnv" list "inlineConfig" bool).
*/}}
{{- define "outpost.envFrom" -}}
envFrom:
  {{- if not .inlineConfig }}
  - configMapRef:
      name: {{ include "outpost.configMapName" .ctx }}
  {{- end }}
  - secretRef:
      name: {{ include "outpost.secretName" .ctx }}
{{- $env := concat (.ctx.Values.extraEnv | default list) (.extraEnv | default list) }}
{{- if or .inlineConfig $env }}
env:
  {{- if .inlineConfig }}
  {{- range $key, $value := include "outpost.configData" .ctx | fromYaml }}
  - name: {{ $key }}
    value: {{ $value | toString | quote }}
  {{- end }}
  {{- end }}
  {{- with $env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Pod-level fields every pod shares: service account, security context,
scheduling. Call with (dict "ctx" $ "component" values-map
["serviceAccount" name]).
*/}}
{{- define "outpost.podSpecCommon" -}}
{{- $ctx := .ctx -}}
serviceAccountName: {{ .serviceAccount | default (include "outpost.serviceAccountName" $ctx) }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with $ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $ctx.Values.podSecurityContext | nindent 2 }}
{{- with $ctx.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with (.component.nodeSelector | default $ctx.Values.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.component.tolerations | default $ctx.Values.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.component.affinity | default $ctx.Values.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: tmp
    emptyDir:
      {{- with $ctx.Values.tmpVolume.medium }}
      medium: {{ . }}
      {{- end }}
      {{- with $ctx.Values.tmpVolume.sizeLimit }}
      sizeLimit: {{ . }}
      {{- end }}
{{- end }}

{{/*
Container-level fields every container shares.
*/}}
{{- define "outpost.containerCommon" -}}
image: {{ include "outpost.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end }}

{{/*
Deep merge of two maps as YAML: keys of "override" win, nested maps are
merged key by key, and a false, 0 or empty value in "override" still wins
(sprig's merge would drop those). Call with (dict "base" map "override" map).
*/}}
{{- define "outpost.deepMerge" -}}
{{- $out := dict }}
{{- range $key, $value := .base }}
{{- $_ := set $out $key $value }}
{{- end }}
{{- range $key, $value := .override }}
{{- $baseValue := get $.base $key }}
{{- if and (kindIs "map" $value) (kindIs "map" $baseValue) }}
{{- $_ := set $out $key (include "outpost.deepMerge" (dict "base" $baseValue "override" $value) | fromYaml) }}
{{- else }}
{{- $_ := set $out $key $value }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
A worker entry completed with workerDefaults. Maps that are settings groups
(autoscaling, probes, podDisruptionBudget, podAnnotations) merge key by key;
anything else in the entry (resources, scheduling, lists) replaces the default
whole. Call with (dict "ctx" $ "worker" entry); returns YAML.
*/}}
{{- define "outpost.worker" -}}
{{- $defaults := .ctx.Values.workerDefaults }}
{{- $out := dict }}
{{- range $key, $value := $defaults }}
{{- $_ := set $out $key $value }}
{{- end }}
{{- range $key, $value := .worker }}
{{- if and (has $key (list "autoscaling" "probes" "podDisruptionBudget" "podAnnotations")) (kindIs "map" $value) }}
{{- $_ := set $out $key (include "outpost.deepMerge" (dict "base" (get $defaults $key | default dict) "override" $value) | fromYaml) }}
{{- else }}
{{- $_ := set $out $key $value }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
HorizontalPodAutoscaler (autoscaling/v2). Call with
(dict "ctx" $ "name" name "component" c "worker" w "autoscaling" map).
*/}}
{{- define "outpost.hpa" -}}
{{- $as := .autoscaling }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .name }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "outpost.labels" (dict "ctx" .ctx "component" .component "worker" .worker) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .name }}
  minReplicas: {{ $as.minReplicas | int }}
  maxReplicas: {{ $as.maxReplicas | int }}
  metrics:
    {{- with $as.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ . | int }}
    {{- end }}
    {{- with $as.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . | int }}
    {{- end }}
  {{- with $as.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
PodDisruptionBudget (policy/v1). Call with
(dict "ctx" $ "name" name "component" c "worker" w "pdb" map).
*/}}
{{- define "outpost.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "outpost.labels" (dict "ctx" .ctx "component" .component "worker" .worker) | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" .pdb.minAvailable) }}
  minAvailable: {{ .pdb.minAvailable }}
  {{- else if not (kindIs "invalid" .pdb.maxUnavailable) }}
  maxUnavailable: {{ .pdb.maxUnavailable }}
  {{- else }}
  maxUnavailable: 1
  {{- end }}
  selector:
    matchLabels:
      {{- include "outpost.selectorLabels" (dict "ctx" .ctx "component" .component "worker" .worker) | nindent 6 }}
{{- end }}
