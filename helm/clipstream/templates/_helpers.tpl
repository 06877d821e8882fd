{{/* Names and labels */}}
{{- define "clipstream.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "clipstream.labels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "clipstream.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "clipstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "clipstream.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "clipstream.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Settings every service reads (services/common/settings.py), and the secrets among them */}}
{{- define "clipstream.commonEnv" -}}
{{- if .Values.milvus.tokenSecret.name }}
- name: CLIPSTREAM_MILVUS_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ .Values.milvus.tokenSecret.name }}, key: {{ .Values.milvus.tokenSecret.key }}}
{{- end }}
{{- include "clipstream.envMap" .Values.commonEnv }}
{{- end -}}

{{- define "clipstream.envMap" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/*
One Deployment per service: the same pod shape for each, so a component file only names what differs.
Arguments: root, component, module, args, port (health/metrics/readiness port), portName, env (list
YAML), values (the component's block), mountModels.
*/}}
{{- define "clipstream.deployment" -}}
{{- $root := .root -}}
{{- $v := .values -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "clipstream.fullname" $root }}-{{ .component }}
  labels:
    {{- include "clipstream.labels" . | nindent 4 }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "clipstream.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "clipstream.selectorLabels" . | nindent 8 }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        {{- if $root.Values.metrics.podAnnotations }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ .port | quote }}
        prometheus.io/path: /metrics
        {{- end }}
    spec:
      serviceAccountName: {{ include "clipstream.serviceAccountName" $root }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      # a consumer leaves its group on SIGTERM; in-flight transactions abort and are redone elsewhere
      terminationGracePeriodSeconds: 60
      containers:
        - name: {{ .component }}
          image: {{ include "clipstream.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: {{ toJson (concat (list "-m" .module) (.args | default list)) }}
          ports:
            - name: {{ .portName }}
              containerPort: {{ .port }}
          envFrom:
            - configMapRef:
                name: {{ include "clipstream.fullname" $root }}-common
          env:
            {{- with include "clipstream.commonEnv" $root }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with $v.env }}
            {{- include "clipstream.envMap" . | nindent 12 }}
            {{- end }}
          livenessProbe:
            httpGet: {path: /healthz, port: {{ .portName }}}
            periodSeconds: 10
            failureThreshold: 6
          readinessProbe:
            httpGet: {path: /readyz, port: {{ .portName }}}
            periodSeconds: 5
            failureThreshold: 3
          startupProbe:
            httpGet: {path: /healthz, port: {{ .portName }}}
            periodSeconds: 5
            failureThreshold: 60
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - {name: state, mountPath: /var/lib/clipstream}
            - {name: tmp, mountPath: /tmp}
            {{- if and .mountModels $root.Values.models.existingClaim }}
            - {name: models, mountPath: {{ $root.Values.models.mountPath }}, readOnly: true}
            {{- end }}
      volumes:
        - {name: state, emptyDir: {}}
        - {name: tmp, emptyDir: {}}
        {{- if and .mountModels $root.Values.models.existingClaim }}
        - name: models
          persistentVolumeClaim: {claimName: {{ $root.Values.models.existingClaim }}, readOnly: true}
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{/* Scale a consumer on its group's lag (KEDA); replicas beyond the partition count would sit idle */}}
{{- define "clipstream.scaledObject" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- if $v.autoscaling.enabled }}
{{- if gt (int $v.autoscaling.maxReplicas) (int $root.Values.kafka.topicPartitions) }}
{{- fail (printf "%s.autoscaling.maxReplicas (%v) exceeds kafka.topicPartitions (%v)" .component $v.autoscaling.maxReplicas $root.Values.kafka.topicPartitions) }}
{{- end }}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ include "clipstream.fullname" $root }}-{{ .component }}
  labels:
    {{- include "clipstream.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    name: {{ include "clipstream.fullname" $root }}-{{ .component }}
  minReplicaCount: {{ $v.autoscaling.minReplicas }}
  maxReplicaCount: {{ $v.autoscaling.maxReplicas }}
  triggers:
    - type: kafka
      metadata:
        bootstrapServers: {{ $root.Values.kafka.bootstrap }}
        consumerGroup: {{ .group }}
        topic: {{ .topic }}
        lagThreshold: {{ $v.autoscaling.lagThreshold | quote }}
    {{- if .backfillTopic }}
    # a reindex's backlog (`clipstream reindex`) scales the same replicas; they serve it only while fresh input is quiet
    - type: kafka
      metadata:
        bootstrapServers: {{ $root.Values.kafka.bootstrap }}
        consumerGroup: {{ .group }}-backfill
        topic: {{ .backfillTopic }}
        lagThreshold: {{ $v.autoscaling.lagThreshold | quote }}
    {{- end }}
{{- end }}
{{- end -}}

{{/* A consumer's fixed replica count cannot usefully exceed its topic's partitions */}}
{{- define "clipstream.consumerReplicas" -}}
{{- if and (not .values.autoscaling.enabled) (gt (int .values.replicas) (int .root.Values.kafka.topicPartitions)) }}
{{- fail (printf "%s.replicas (%v) exceeds kafka.topicPartitions (%v)" .component .values.replicas .root.Values.kafka.topicPartitions) }}
{{- end }}
{{- end -}}

{{/* The decoder's health binding and its sources */}}
{{- define "clipstream.decoderEnv" -}}
- {name: CLIPSTREAM_DECODER_HEALTH_HOST, value: 0.0.0.0}
{{ include "clipstream.sourceEnv" . }}
{{- end -}}

{{/* The decoder's source allowlists and S3 credentials: whoever reads sources (decoder, QC references,
search playback) admits them by these */}}
{{- define "clipstream.sourceEnv" -}}
{{- $d := .Values.decoder -}}
- {name: CLIPSTREAM_DECODER_ALLOWED_ROOTS, value: {{ toJson $d.allowedRoots | quote }}}
- {name: CLIPSTREAM_DECODER_HTTP_PREFIXES, value: {{ toJson $d.httpPrefixes | quote }}}
- {name: CLIPSTREAM_DECODER_S3_PREFIXES, value: {{ toJson $d.s3Prefixes | quote }}}
- {name: CLIPSTREAM_DECODER_S3_REGION, value: {{ $d.s3Region | quote }}}
{{- if $d.s3EndpointUrl }}
- {name: CLIPSTREAM_DECODER_S3_ENDPOINT_URL, value: {{ $d.s3EndpointUrl | quote }}}
{{- end }}
{{- if $d.s3CredentialsSecret.name }}
- name: CLIPSTREAM_DECODER_S3_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ $d.s3CredentialsSecret.name }}, key: {{ $d.s3CredentialsSecret.accessKeyKey }}}}
- name: CLIPSTREAM_DECODER_S3_SECRET_KEY
  valueFrom: {secretKeyRef: {name: {{ $d.s3CredentialsSecret.name }}, key: {{ $d.s3CredentialsSecret.secretKeyKey }}}}
{{- end }}
{{- end -}}

{{/* Outcome webhooks: the gateway (registration) and the dispatcher (delivery) share the receiver allowlist
and the key that seals the endpoints' signing secrets */}}
{{- define "clipstream.webhooksEnv" -}}
{{- $w := .Values.webhooks -}}
{{- $secret := required "webhooks.secretKeySecret.name: a Secret holding the key that encrypts webhook signing secrets" $w.secretKeySecret.name -}}
- {name: CLIPSTREAM_WEBHOOKS_ALLOWED_URL_PREFIXES, value: {{ toJson $w.allowedUrlPrefixes | quote }}}
- name: CLIPSTREAM_WEBHOOKS_SECRET_KEY
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ $w.secretKeySecret.key }}}}
{{- end -}}
