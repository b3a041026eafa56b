{{/*
Names, labels, images and the RBAC rules, in one place so every template agrees on them.
*/}}

{{- define "kubevision.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped name; 50 characters leave room for the -termination/-metrics/-webhook suffixes. */}}
{{- define "kubevision.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects also carry the namespace: two releases of the same name must not collide. */}}
{{- define "kubevision.clusterName" -}}
{{- printf "%s-%s" (include "kubevision.fullname" .) .Release.Namespace | trunc 253 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubevision.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubevision.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubevision.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kubevision.labels" -}}
helm.sh/chart: {{ include "kubevision.chart" . }}
{{ include "kubevision.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubevision
{{- end -}}

{{- define "kubevision.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubevision.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository@digest when a digest is set, else repository:tag (tag defaults to appVersion). */}}
{{- define "kubevision.imageRef" -}}
{{- $image := index . 0 -}}
{{- $root := index . 1 -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "kubevision.operatorImage" -}}
{{- include "kubevision.imageRef" (list .Values.image .) -}}
{{- end -}}

{{- define "kubevision.trainerImage" -}}
{{- include "kubevision.imageRef" (list .Values.trainer.image .) -}}
{{- end -}}

{{/* The namespaces served in namespaced mode, as a JSON list (fromJsonArray to use it). */}}
{{- define "kubevision.watchedNamespaces" -}}
{{- if .Values.watch.namespaces -}}
{{- .Values.watch.namespaces | uniq | toJson -}}
{{- else -}}
{{- list .Release.Namespace | toJson -}}
{{- end -}}
{{- end -}}

{{/* Stops the render on value combinations the schema cannot express; called by the Deployment. */}}
{{- define "kubevision.checkValues" -}}
{{- if and .Values.watch.allNamespaces .Values.watch.namespaces -}}
{{- fail "watch.namespaces is set but watch.allNamespaces is true: set watch.allNamespaces=false to serve only those namespaces, or empty watch.namespaces" -}}
{{- end -}}
{{- if .Values.webhook.enabled -}}
{{- if and .Values.webhook.certManager.enabled .Values.webhook.tls.secretName -}}
{{- fail "webhook.certManager.enabled and webhook.tls.secretName are both set: cert-manager writes its own Secret, so choose one" -}}
{{- end -}}
{{- if not (or .Values.webhook.certManager.enabled .Values.webhook.tls.secretName) -}}
{{- fail "webhook.enabled needs a serving certificate: set webhook.certManager.enabled=true (cert-manager installed), or webhook.tls.secretName (a kubernetes.io/tls Secret) with webhook.tls.caBundle" -}}
{{- end -}}
{{- if and .Values.webhook.tls.secretName (not .Values.webhook.tls.caBundle) (not .Values.webhook.annotations) -}}
{{- fail "webhook.tls.secretName needs webhook.tls.caBundle (base64 PEM of the CA that signed it), or webhook.annotations for a CA injector that fills it" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kubevision.webhookSecretName" -}}
{{- if .Values.webhook.certManager.enabled -}}
{{- printf "%s-webhook-tls" (include "kubevision.fullname" .) -}}
{{- else -}}
{{- .Values.webhook.tls.secretName -}}
{{- end -}}
{{- end -}}

{{/* Where the operator reads tls.crt/tls.key (--webhook-cert-dir). */}}
{{- define "kubevision.webhookCertDir" -}}/etc/kubevision/webhook-certs{{- end -}}

{{/*
The kopf handler ids of the validating webhooks. kopf serves each handler at /<handler id>, and a
request whose path names no handler is admitted unchecked, so these must equal the ids given to
@kopf.on.validate in kubevision.operator.
*/}}
{{- define "kubevision.webhookPath.automlimagejobs" -}}/validate-automlimagejob{{- end -}}
{{- define "kubevision.webhookPath.inferenceendpoints" -}}/validate-inferenceendpoint{{- end -}}

{{/* In-cluster base URL of the early-termination service; trials append the job's path. */}}
{{- define "kubevision.terminationUrl" -}}
{{- printf "http://%s-termination.%s.svc:%d" (include "kubevision.fullname" .) .Release.Namespace (int .Values.termination.port) -}}
{{- end -}}

{{/*
RBAC rules for objects inside a served namespace: a ClusterRole's rules in cluster-wide mode, a Role's
in every watched namespace otherwise. Each line is one need of the operator (see README, RBAC).
*/}}
{{- define "kubevision.namespacedRules" -}}
# The custom resources: watch them, write their status, add kopf's finalizer and annotations.
- apiGroups: [kubevision.io]
  resources: [automlimagejobs, automlimagejobs/status, inferenceendpoints, inferenceendpoints/status]
  verbs: [get, list, watch, patch, update]
# Children are created with blockOwnerDeletion owner references, which the OwnerReferencesPermissionEnforcement
# admission plugin (OpenShift, hardened clusters) allows only to who may update the owner's finalizers.
- apiGroups: [kubevision.io]
  resources: [automlimagejobs/finalizers, inferenceendpoints/finalizers]
  verbs: [update]
# Katib: one Experiment per job (or per conditional sub-space), deleted on timeout; trials are read.
- apiGroups: [kubeflow.org]
  resources: [experiments]
  verbs: [get, list, watch, create, delete, patch]
- apiGroups: [kubeflow.org]
  resources: [trials, pytorchjobs]
  verbs: [get, list, watch]
# KServe: the InferenceService behind an InferenceEndpoint.
- apiGroups: [serving.kserve.io]
  resources: [inferenceservices]
  verbs: [get, list, watch, create, patch, delete]
# Per-job early-termination token (Secret) and histories (ConfigMap).
- apiGroups: [""]
  resources: [configmaps, secrets]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- if and .Values.peering.enabled (not .Values.watch.allNamespaces) }}
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end -}}

{{/* Cluster-scoped reads: always the CRDs (kopf discovers the resources it serves), and namespaces and
the cluster peering in cluster-wide mode. */}}
{{- define "kubevision.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- if .Values.watch.allNamespaces }}
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- if .Values.peering.enabled }}
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end }}
{{- end -}}
