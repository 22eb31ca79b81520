// Validates every manifest under deploy/ (run through deploy/validate.sh, which installs the
// pinned packages of package-lock.json and copies this file next to them).
//
// Checks, each failure naming the file, the document and the field:
//  1. every Kubernetes object against the OpenAPI schema of its kind (kubernetes-models,
//     generated from a current Kubernetes release): types, enums, required fields;
//  2. no field the API does not know (the field lists of @kubernetes/client-node's models),
//     as `kubectl apply --validate=strict` would refuse;
//  3. the custom resources (ClusterSPIFFEID & co.) against the openAPIV3Schema of the CRDs in
//     deploy/, unknown fields included (the API server would silently drop them);
//  4. the IstioOperator against Istio's field lists (its package schema checks only the
//     kind), its overlays' patch paths and values against the Deployment they patch, its
//     `spire` injection template as a pod fragment, and the Helm values' copy of the template;
//  5. references the API server does not check: volume mounts to volumes, ConfigMaps,
//     Secrets and service accounts to objects in deploy/, probe and Service ports to
//     container ports, Service selectors to pod templates, role bindings to roles;
//  6. each kustomization: its resources exist, every manifest beside it is listed, and its
//     JSON 6902 patches apply (the patched objects are then checked like any other);
//  7. a ControllerManagerConfig carried in a ConfigMap has only keys the controller knows
//     (it ignores unknown ones silently);
//  8. the three CRDs' field lists against crd-fields.txt (derived from
//     spire-controller-manager's api/v1alpha1/*_types.go at the commit it names);
//  9. for each kustomization, the wiring across files: one trust domain, the agents' cluster
//     and service account allowed by the server, their projected token, the bundle ConfigMap
//     where the agent reads it, the Workload API socket shared through the CSI driver's host
//     directory as `socket`, the admin socket shared with the controller.

import { readFileSync, readdirSync, statSync, existsSync } from "node:fs";
import { join, relative, dirname, basename, resolve } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import Ajv from "ajv";
import * as clientModels from "@kubernetes/client-node/dist/gen/models/all.js";
import { IstioOperator } from "@kubernetes-models/istio/install.istio.io/v1alpha1/IstioOperator";

const [deployDirArg, fieldsFileArg] = process.argv.slice(2);
if (!deployDirArg || !fieldsFileArg) {
  console.error("usage: node validate.mjs <deploy-dir> <crd-fields.txt>");
  process.exit(2);
}
const deployDir = resolve(deployDirArg);
const fieldsFile = resolve(fieldsFileArg);

const failures = [];
// A unit is one object, one kustomization, one values file or the field-list comparison;
// it passes when it records no failure.
let passed = 0;
let failed = 0;
async function unit(check) {
  const before = failures.length;
  try {
    await check();
  } catch (e) {
    // Input shaped too far from what a check expects: a failure, never a crash.
    failures.push(`validator: ${e.stack ?? e}`);
  }
  if (failures.length > before) failed++;
  else passed++;
}
// A base rendered by two kustomizations reports its problems once.
const fail = (where, message) => {
  const line = `${where}: ${message}`;
  if (!failures.includes(line)) failures.push(line);
};
const rel = (path) => relative(deployDir, path) || ".";

// ---------------------------------------------------------------- reading

/** Every .yaml/.yml under `dir`, skipping the validator's own directory. */
function yamlFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name !== "validate" && name !== "node_modules") out.push(...yamlFiles(path));
    } else if (/\.ya?ml$/.test(name)) {
      out.push(path);
    }
  }
  return out;
}

/** The documents of a YAML file as plain values; parse errors are failures. */
function readDocuments(path) {
  const docs = [];
  parseAllDocuments(readFileSync(path, "utf8"), { uniqueKeys: true }).forEach((doc, i) => {
    const where = `${rel(path)}#${i + 1}`;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) fail(where, `YAML: ${e.message}`);
      return;
    }
    const value = doc.toJS({ maxAliasCount: 0 });
    if (value !== null && value !== undefined) docs.push({ where, value });
  });
  return docs;
}

const describe = (obj) => `${obj?.kind ?? "?"} ${obj?.metadata?.namespace ? obj.metadata.namespace + "/" : ""}${obj?.metadata?.name ?? "?"}`;

// ---------------------------------------------------------------- field lists (check 2)

const PRIMITIVES = new Set(["string", "number", "boolean", "Date", "any", "object", "IntOrString"]);

/** Reports fields of `value` that type `type` (a client-node model type name) lacks. */
function unknownFields(value, type, path, report) {
  if (value === null || value === undefined || PRIMITIVES.has(type)) return;
  let m = /^Array<(.+)>$/.exec(type);
  if (m) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, m[1], `${path}[${i}]`, report));
    return;
  }
  m = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (m) {
    if (typeof value === "object") for (const [k, v] of Object.entries(value)) unknownFields(v, m[1], `${path}.${k}`, report);
    return;
  }
  const attributes = fieldsOf(type);
  if (!attributes) {
    report(`${path}: no field list for type ${type} (validator gap)`);
    return;
  }
  if (typeof value !== "object" || Array.isArray(value)) {
    // The Kubernetes schemas report wrong types; Istio's fields have only this check.
    if (ISTIO_TYPES[type]) report(`${path}: expected a mapping (${type})`);
    return;
  }
  for (const [key, child] of Object.entries(value)) {
    if (!attributes.has(key)) {
      report(`${path}.${key}: unknown field (${type} has ${[...attributes.keys()].join(", ")})`);
      continue;
    }
    let childType = attributes.get(key);
    // client-node types a schema's items/additionalProperties as `any`; they are schemas too.
    if (type === "V1JSONSchemaProps" && (key === "items" || key === "additionalProperties") && typeof child === "object") {
      childType = "V1JSONSchemaProps";
    }
    if (ISTIO_TYPES[type] && ["string", "boolean", "number"].includes(childType) && typeof child !== childType) {
      report(`${path}.${key}: expected a ${childType}, found ${JSON.stringify(child)}`);
    }
    unknownFields(child, childType, `${path}.${key}`, report);
  }
}

/** The client-node model name of a built-in kind: `apps/v1` `DaemonSet` -> V1DaemonSet. */
function modelName(apiVersion, kind) {
  const version = apiVersion.split("/").pop();
  return version.charAt(0).toUpperCase() + version.slice(1) + kind;
}

// ---------------------------------------------------------------- IstioOperator (check 4)

// @kubernetes-models/istio's IstioOperator schema covers only apiVersion, kind and metadata,
// and Istio's own CRD keeps unknown fields: these are the fields of IstioOperatorSpec and the
// types under it (istio/istio operator/pkg/apis/types.go, commit
// 1dbf09e8b97315d7b080f492bcc8380fd6a8bb3f), with client-node model names for the
// Kubernetes types they embed. "object" and "any" are not looked into (meshConfig, values:
// the spire template in values is checked on its own).
const ISTIO_TYPES = {
  IstioOperator: { apiVersion: "string", kind: "string", metadata: "V1ObjectMeta", spec: "IstioOperatorSpec" },
  IstioOperatorSpec: {
    profile: "string", installPackagePath: "string", hub: "string", tag: "any", namespace: "string",
    revision: "string", compatibilityVersion: "string", meshConfig: "object",
    components: "IstioComponentSpec", values: "object", unvalidatedValues: "any",
  },
  IstioComponentSpec: {
    base: "IstioBaseComponentSpec", pilot: "IstioComponentSpecEntry", cni: "IstioComponentSpecEntry",
    ztunnel: "IstioComponentSpecEntry", istiodRemote: "IstioComponentSpecEntry",
    ingressGateways: "Array<IstioGatewayComponentSpec>", egressGateways: "Array<IstioGatewayComponentSpec>",
    gateway: "IstioComponentSpecEntry",
  },
  IstioBaseComponentSpec: { enabled: "boolean", k8s: "IstioKubernetesResources" },
  IstioComponentSpecEntry: { enabled: "boolean", namespace: "string", hub: "string", tag: "any", k8s: "IstioKubernetesResources" },
  IstioGatewayComponentSpec: {
    enabled: "boolean", namespace: "string", hub: "string", tag: "any", k8s: "IstioKubernetesResources",
    name: "string", label: "{ [key: string]: string; }",
  },
  IstioKubernetesResources: {
    affinity: "V1Affinity", env: "Array<V1EnvVar>", hpaSpec: "V2HorizontalPodAutoscalerSpec",
    imagePullPolicy: "string", nodeSelector: "{ [key: string]: string; }",
    podDisruptionBudget: "V1PodDisruptionBudgetSpec", podAnnotations: "{ [key: string]: string; }",
    priorityClassName: "string", readinessProbe: "V1Probe", replicaCount: "number",
    resources: "V1ResourceRequirements", service: "V1ServiceSpec", strategy: "V1DeploymentStrategy",
    tolerations: "Array<V1Toleration>", serviceAnnotations: "{ [key: string]: string; }",
    securityContext: "V1PodSecurityContext", volumes: "Array<V1Volume>",
    volumeMounts: "Array<V1VolumeMount>", overlays: "Array<IstioKubernetesOverlay>",
  },
  IstioKubernetesOverlay: { apiVersion: "string", kind: "string", name: "string", patches: "Array<IstioPatch>" },
  IstioPatch: { path: "string", value: "any" },
};

/** The fields of `type`: Istio's from ISTIO_TYPES, Kubernetes' from client-node. */
function fieldsOf(type) {
  if (ISTIO_TYPES[type]) return new Map(Object.entries(ISTIO_TYPES[type]));
  const model = clientModels[type];
  if (!model || typeof model.getAttributeTypeMap !== "function") return null;
  return new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
}

/** The type an Istio overlay path (`spec.template.spec.volumes.[name:x]`) leads to. */
function overlayTarget(apiVersion, kind, path) {
  let type = modelName(apiVersion ?? "", kind ?? "");
  for (const segment of path.split(".")) {
    if (segment.startsWith("[")) {
      const element = /^Array<(.+)>$/.exec(type);
      if (!element) throw new Error(`${segment} selects a list element, but ${type} is not a list`);
      type = element[1];
      continue;
    }
    const fields = fieldsOf(type);
    if (!fields) throw new Error(`${segment}: ${type} has no fields to select`);
    if (!fields.has(segment)) throw new Error(`${segment}: not a field of ${type}`);
    type = fields.get(segment);
  }
  return type;
}

/** The overlays' patches: each path exists in the patched kind, each value has its fields. */
function checkIstioOverlays(operator, report) {
  const components = operator.spec?.components ?? {};
  const entries = Object.entries(components).flatMap(([name, c]) =>
    Array.isArray(c) ? c.map((g, i) => [`components.${name}[${i}]`, g]) : [[`components.${name}`, c]]);
  for (const [where, component] of entries) {
    (component?.k8s?.overlays ?? []).forEach((overlay, i) => {
      (overlay.patches ?? []).forEach((patch, j) => {
        const at = `${where}.k8s.overlays[${i}].patches[${j}]`;
        try {
          const type = overlayTarget(overlay.apiVersion, overlay.kind, patch.path ?? "");
          unknownFields(patch.value, type, `${at}.value`, report);
        } catch (e) {
          report(`${at}.path ${patch.path}: ${e.message}`);
        }
      });
    });
  }
}

// ---------------------------------------------------------------- schemas (checks 1, 3)

/** kubernetes-models' class for a built-in kind, or null when it has none. */
async function builtinModel(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  const module = group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
  try {
    return (await import(module))[kind] ?? null;
  } catch {
    return null;
  }
}

const ajv = new Ajv({ allErrors: true, strict: false });
/** "group/version/Kind" -> { validate, schema } from the CRDs found in deploy/. */
const crdSchemas = new Map();

function registerCrd(crd, where) {
  if (typeof crd.spec?.group !== "string" || typeof crd.spec?.names?.kind !== "string") {
    return fail(where, `${describe(crd)}: spec.group and spec.names.kind are required`);
  }
  for (const version of crd.spec.versions ?? []) {
    const schema = version.schema?.openAPIV3Schema;
    if (!schema) {
      fail(where, `${describe(crd)} version ${version.name} has no openAPIV3Schema`);
      continue;
    }
    try {
      crdSchemas.set(`${crd.spec.group}/${version.name}/${crd.spec.names.kind}`, { validate: ajv.compile(schema), schema });
    } catch (e) {
      fail(where, `${describe(crd)}: its openAPIV3Schema does not compile: ${e.message}`);
    }
  }
}

/** Fields a structural schema does not declare (what the API server would prune). */
function prunedFields(value, schema, path, report) {
  if (value === null || typeof value !== "object" || !schema) return;
  if (schema["x-kubernetes-preserve-unknown-fields"]) return;
  if (Array.isArray(value)) {
    if (schema.items) value.forEach((v, i) => prunedFields(v, schema.items, `${path}[${i}]`, report));
    return;
  }
  if (schema.properties) {
    for (const [key, child] of Object.entries(value)) {
      if (path === "" && key === "metadata") continue;
      if (!(key in schema.properties)) report(`${path}.${key}: unknown field (not in the CRD's schema)`);
      else prunedFields(child, schema.properties[key], `${path}.${key}`, report);
    }
  } else if (typeof schema.additionalProperties === "object") {
    for (const [key, child] of Object.entries(value)) prunedFields(child, schema.additionalProperties, `${path}.${key}`, report);
  }
}

const ajvErrors = (errors) => errors.map((e) => `${e.instancePath || "(root)"} ${e.message}${e.params?.allowedValues ? ` (${e.params.allowedValues.join(", ")})` : ""}`);

// ---------------------------------------------------------------- one object

/** Checks 1 to 4 on one object. */
async function checkObject(obj, where) {
  const report = (message) => fail(where, `${describe(obj)}: ${message}`);
  if (typeof obj !== "object" || Array.isArray(obj)) return report("not a mapping");
  for (const key of ["apiVersion", "kind"]) if (typeof obj[key] !== "string") return report(`${key} missing`);
  if (typeof obj.metadata?.name !== "string" && obj.kind !== "IstioOperator") return report("metadata.name missing");

  const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
  const crd = crdSchemas.get(`${group}/${version}/${obj.kind}`);
  if (crd) {
    if (!crd.validate(obj)) ajvErrors(crd.validate.errors).forEach(report);
    prunedFields(obj, crd.schema, "", report);
    return;
  }
  if (obj.apiVersion === "install.istio.io/v1alpha1" && obj.kind === "IstioOperator") {
    try {
      new IstioOperator(obj).validate();
    } catch (e) {
      report(e.message);
    }
    unknownFields(obj, "IstioOperator", "", report);
    checkIstioOverlays(obj, report);
    checkSpireTemplate(obj.spec?.values?.sidecarInjectorWebhook?.templates?.spire, report);
    return;
  }
  const Model = await builtinModel(obj.apiVersion, obj.kind);
  if (!Model) return report(`no schema for ${obj.apiVersion} ${obj.kind} (not a Kubernetes kind, and no CRD in deploy/ defines it)`);
  try {
    new Model(obj).validate();
  } catch (e) {
    report(e.message);
  }
  unknownFields(obj, modelName(obj.apiVersion, obj.kind), "", report);
  checkEmbeddedYaml(obj, report);
}

/** Istio's `spire` injection template: a pod fragment mounting the CSI socket volume. */
function checkSpireTemplate(text, report) {
  if (typeof text !== "string") return report("values.sidecarInjectorWebhook.templates.spire missing");
  let fragment;
  try {
    fragment = parseYaml(text, { uniqueKeys: true });
  } catch (e) {
    return report(`the spire template is not YAML: ${e.message}`);
  }
  unknownFields(fragment, "V1Pod", "templates.spire", report);
  const proxy = fragment?.spec?.containers?.find((c) => c.name === "istio-proxy");
  const mount = proxy?.volumeMounts?.find((m) => m.mountPath === "/run/secrets/workload-spiffe-uds");
  const volume = fragment?.spec?.volumes?.find((v) => v.name === mount?.name);
  if (!mount) report("the spire template does not mount /run/secrets/workload-spiffe-uds into istio-proxy");
  else if (volume?.csi?.driver !== "csi.spiffe.io") report(`the spire template's volume ${mount.name} is not a csi.spiffe.io CSI volume`);
}

// ---------------------------------------------------------------- embedded configs

// spire-controller-manager decodes its config file leniently: a misspelt key is ignored, not
// refused. These are the json tags of ControllerManagerConfig and the structs it embeds
// (api/v1alpha1/controllermanagerconfig_types.go at the commit crd-fields.txt names, and
// component-base's LeaderElectionConfiguration).
const CONTROLLER_CONFIG_KEYS = {
  "": ["apiVersion", "kind", "clusterName", "clusterDomain", "trustDomain", "ignoreNamespaces",
    "validatingWebhookConfigurationName", "gcInterval", "spireServerSocketPath", "logLevel",
    "logEncoding", "grpc", "syncPeriod", "leaderElection", "cacheNamespace", "cacheNamespaces",
    "gracefulShutDown", "controller", "metrics", "health", "webhook", "className",
    "watchClassless", "parentIDTemplate", "reconcile", "entryIDPrefix", "entryIDPrefixCleanup",
    "staticManifestPath", "expandEnvStaticManifests", "enableEntryRenderCache",
    "entryRenderCacheSize"],
  reconcile: ["clusterSPIFFEIDs", "clusterFederatedTrustDomains", "clusterStaticEntries"],
  controller: ["groupKindConcurrency", "cacheSyncTimeout", "recoverPanic"],
  metrics: ["bindAddress"],
  health: ["healthProbeBindAddress", "readinessEndpointName", "livenessEndpointName"],
  webhook: ["port", "host", "certDir"],
  leaderElection: ["leaderElect", "leaseDuration", "renewDeadline", "retryPeriod", "resourceLock",
    "resourceName", "resourceNamespace"],
};

/** YAML files carried in a ConfigMap parse; a ControllerManagerConfig has only known keys. */
function checkEmbeddedYaml(obj, report) {
  if (obj.kind !== "ConfigMap") return;
  for (const [key, text] of Object.entries(obj.data ?? {})) {
    if (!/\.ya?ml$/.test(key)) continue;
    let doc;
    try {
      doc = parseYaml(text, { uniqueKeys: true });
    } catch (e) {
      report(`data.${key} is not YAML: ${e.message}`);
      continue;
    }
    if (doc?.kind !== "ControllerManagerConfig") continue;
    if (doc.apiVersion !== "spire.spiffe.io/v1alpha1") report(`data.${key}: apiVersion must be spire.spiffe.io/v1alpha1`);
    for (const [section, keys] of Object.entries(CONTROLLER_CONFIG_KEYS)) {
      const value = section ? doc[section] : doc;
      if (value === undefined || value === null) continue;
      if (typeof value !== "object" || Array.isArray(value)) {
        report(`data.${key}: ${section} must be a mapping`);
        continue;
      }
      for (const k of Object.keys(value)) {
        if (!keys.includes(k)) report(`data.${key}: ${section ? section + "." : ""}${k} is not a ControllerManagerConfig key`);
      }
    }
    for (const required of ["trustDomain", "clusterName"]) {
      if (typeof doc[required] !== "string" || doc[required] === "") report(`data.${key}: ${required} is required`);
    }
  }
}

// ---------------------------------------------------------------- references (check 5)

/** The pod template of a workload object, as its spec and labels. */
function podTemplates(obj) {
  const spec = obj?.spec?.template?.spec;
  return spec ? [{ spec, labels: obj.spec.template.metadata?.labels ?? {} }] : [];
}

/** Check 5 on `objects[i]`, resolving names among all of `objects`. */
function checkReferences(objects, only = objects) {
  const key = (kind, ns, name) => `${kind}/${ns ?? ""}/${name}`;
  const present = new Set(objects.map(({ obj }) => key(obj.kind, obj.metadata?.namespace, obj.metadata?.name)));
  const has = (kind, ns, name) => present.has(key(kind, ns, name));
  for (const { obj, where } of only) {
    const report = (message) => fail(where, `${describe(obj)}: ${message}`);
    const ns = obj.metadata?.namespace;
    for (const { spec, labels } of podTemplates(obj)) {
      const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
      const containers = [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
      const claims = new Set((obj.spec.volumeClaimTemplates ?? []).map((c) => c.metadata?.name));
      for (const c of containers) {
        for (const m of c.volumeMounts ?? []) {
          if (!volumes.has(m.name) && !claims.has(m.name)) report(`container ${c.name} mounts volume ${m.name}, which the pod does not define`);
        }
        const ports = new Set((c.ports ?? []).flatMap((p) => [p.name, p.containerPort]));
        for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"]) {
          const port = c[probe]?.httpGet?.port ?? c[probe]?.tcpSocket?.port;
          if (port !== undefined && !ports.has(port)) report(`container ${c.name}'s ${probe} uses port ${port}, which it does not declare`);
        }
        for (const e of c.env ?? []) {
          const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
          const kind = e.valueFrom?.secretKeyRef ? "Secret" : "ConfigMap";
          if (ref && !ref.optional && !has(kind, ns, ref.name)) report(`env ${e.name} reads ${kind} ${ref.name}, which deploy/ does not define in ${ns}`);
        }
      }
      for (const v of volumes.values()) {
        if (v.configMap && !has("ConfigMap", ns, v.configMap.name)) report(`volume ${v.name} reads ConfigMap ${v.configMap.name}, which deploy/ does not define in ${ns}`);
        if (v.secret && !has("Secret", ns, v.secret.secretName)) report(`volume ${v.name} reads Secret ${v.secret.secretName}, which deploy/ does not define in ${ns}`);
      }
      const sa = spec.serviceAccountName;
      if (sa && !has("ServiceAccount", ns, sa)) report(`service account ${sa} is not defined in ${ns}`);
      const selector = obj.spec.selector?.matchLabels ?? {};
      for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) report(`selector ${k}=${v} does not match the pod template's labels`);
    }
    if (obj.kind === "Service" && obj.spec?.selector) {
      const selected = objects.flatMap(({ obj: o }) => (o.metadata?.namespace === ns ? podTemplates(o) : []))
        .filter(({ labels }) => Object.entries(obj.spec.selector).every(([k, v]) => labels[k] === v));
      if (selected.length === 0) report("its selector matches no pod template in deploy/");
      for (const port of obj.spec.ports ?? []) {
        if (typeof port.targetPort !== "string") continue;
        const named = selected.some(({ spec }) => [...(spec.containers ?? [])].some((c) => (c.ports ?? []).some((p) => p.name === port.targetPort)));
        if (!named) report(`port ${port.name ?? port.port} targets ${port.targetPort}, which no selected container names`);
      }
    }
    if (obj.kind === "RoleBinding" || obj.kind === "ClusterRoleBinding") {
      const roleNs = obj.roleRef?.kind === "Role" ? ns : undefined;
      if (!has(obj.roleRef?.kind, roleNs, obj.roleRef?.name)) report(`roleRef ${obj.roleRef?.kind} ${obj.roleRef?.name} is not defined in deploy/`);
      for (const s of obj.subjects ?? []) {
        if (s.kind === "ServiceAccount" && !has("ServiceAccount", s.namespace ?? ns, s.name)) report(`subject ServiceAccount ${s.namespace}/${s.name} is not defined in deploy/`);
      }
    }
  }
}

// ---------------------------------------------------------------- wiring (check 9)

/** The first `key = "value"` of an HCL text (the configs here keep one per key). */
const hclString = (text, key) => new RegExp(`^\\s*${key}\\s*=\\s*"([^"]*)"`, "m").exec(text)?.[1];

/** The pod spec and container that mount ConfigMap `name` (the one running that config). */
function consumer(objects, configMap) {
  for (const { obj } of objects) {
    for (const { spec } of podTemplates(obj)) {
      const volume = (spec.volumes ?? []).find((v) => v.configMap?.name === configMap);
      const container = volume && (spec.containers ?? []).find((c) => (c.volumeMounts ?? []).some((m) => m.name === volume.name));
      if (container) return { obj, spec, container };
    }
  }
  return null;
}

/** The volume mounted at the directory `dir` in `container` (exactly there). */
function volumeAt(spec, container, dir) {
  const mount = (container.volumeMounts ?? []).find((m) => m.mountPath.replace(/\/+$/, "") === dir);
  return mount && (spec.volumes ?? []).find((v) => v.name === mount.name);
}

/** What one install needs to line up across files: names, paths, sockets, tokens. */
function checkWiring(objects, where) {
  const report = (message) => fail(where, message);
  const configMap = (name) => objects.find(({ obj }) => obj.kind === "ConfigMap" && obj.metadata?.name === name)?.obj;
  const holder = (key) => objects.find(({ obj }) => obj.kind === "ConfigMap" && typeof obj.data?.[key] === "string")?.obj;
  const serverCm = holder("server.conf");
  const agentCm = holder("agent.conf");
  if (!serverCm || !agentCm) return report("no ConfigMap with server.conf and agent.conf");
  const server = serverCm.data["server.conf"];
  const agent = agentCm.data["agent.conf"];
  const controllerCm = objects.find(({ obj }) => obj.kind === "ConfigMap" && Object.values(obj.data ?? {}).some((t) => /kind:\s*ControllerManagerConfig/.test(t)))?.obj;
  const controller = controllerCm && parseYaml(Object.values(controllerCm.data).find((t) => /kind:\s*ControllerManagerConfig/.test(t)));

  // One trust domain everywhere.
  const td = hclString(server, "trust_domain");
  const tds = {
    "agent.conf": hclString(agent, "trust_domain"),
    ControllerManagerConfig: controller?.trustDomain,
    "the IstioOperator's meshConfig": istioOperator()?.spec?.meshConfig?.trustDomain,
  };
  for (const [name, value] of Object.entries(tds)) if (value !== td) report(`trust domain: ${name} has ${value}, server.conf has ${td}`);

  // The agent's k8s_psat cluster is one the server allows, for the agent's service account;
  // the controller parents entries under that cluster's agents.
  const clusters = new Map([...server.matchAll(/"([^"]+)"\s*=\s*\{\s*service_account_allow_list\s*=\s*\[([^\]]*)\]/g)]
    .map((m) => [m[1], [...m[2].matchAll(/"([^"]+)"/g)].map((x) => x[1])]));
  const cluster = hclString(agent, "cluster");
  if (!clusters.has(cluster)) report(`agent.conf's k8s_psat cluster ${cluster} is not in server.conf's clusters (${[...clusters.keys()].join(", ")})`);
  if (controller && controller.clusterName !== cluster) report(`the controller's clusterName ${controller.clusterName} is not the agents' cluster ${cluster}`);
  const agentPod = consumer(objects, agentCm.metadata.name);
  if (!agentPod) return report(`no pod mounts ConfigMap ${agentCm.metadata.name}`);
  const account = `${agentPod.obj.metadata.namespace}:${agentPod.spec.serviceAccountName}`;
  if (!(clusters.get(cluster) ?? []).includes(account)) report(`the agents run as ${account}, which cluster ${cluster}'s service_account_allow_list does not allow`);

  // The agent's projected token, where k8s_psat reads it, for the audience the server checks.
  const tokenPath = hclString(agent, "token_path") ?? "/var/run/secrets/tokens/spire-agent";
  const tokenVolume = volumeAt(agentPod.spec, agentPod.container, dirname(tokenPath));
  const token = tokenVolume?.projected?.sources?.find((s) => s.serviceAccountToken?.path === basename(tokenPath))?.serviceAccountToken;
  if (!token) report(`the agent container has no projected service account token at ${tokenPath}`);
  else if ((token.audience ?? "") !== "spire-server") report(`the agent's token has audience ${token.audience}, k8s_psat's default is spire-server`);

  // The bootstrap bundle: the ConfigMap the notifier writes, mounted where the agent reads.
  const bundlePath = hclString(agent, "trust_bundle_path") ?? "";
  const notifierMap = hclString(server, "config_map") ?? "spire-bundle";
  const notifierKey = hclString(server, "config_map_key") ?? "bundle.crt";
  const bundleVolume = volumeAt(agentPod.spec, agentPod.container, dirname(bundlePath));
  if (bundleVolume?.configMap?.name !== notifierMap || basename(bundlePath) !== notifierKey) {
    report(`agent.conf's trust_bundle_path ${bundlePath} is not key ${notifierKey} of ConfigMap ${notifierMap} (what k8sbundle writes) mounted in the agent`);
  }
  if (!configMap(notifierMap)) report(`ConfigMap ${notifierMap}, which k8sbundle patches, is not defined (it must exist)`);

  // The Workload API socket: named `socket` (Istio's SDS path), in the host directory that
  // the CSI driver shares.
  const socketPath = hclString(agent, "socket_path") ?? "";
  if (basename(socketPath) !== "socket") report(`agent.conf's socket_path ${socketPath} must end in /socket: Istio looks for /run/secrets/workload-spiffe-uds/socket`);
  const hostDir = volumeAt(agentPod.spec, agentPod.container, dirname(socketPath))?.hostPath?.path;
  if (!hostDir) report(`the agent's socket directory ${dirname(socketPath)} is not a hostPath volume`);
  const csi = objects.map(({ obj }) => obj).find((o) => (o.spec?.template?.spec?.containers ?? []).some((c) => (c.args ?? []).includes("-workload-api-socket-dir")));
  if (!csi) {
    report("no SPIFFE CSI driver (a container with -workload-api-socket-dir)");
  } else {
    const spec = csi.spec.template.spec;
    const c = spec.containers.find((x) => (x.args ?? []).includes("-workload-api-socket-dir"));
    const dir = c.args[c.args.indexOf("-workload-api-socket-dir") + 1];
    const shared = volumeAt(spec, c, dir)?.hostPath?.path;
    if (hostDir && shared !== hostDir) report(`the CSI driver shares ${shared}, the agent's socket is in ${hostDir}`);
  }

  // The admin socket: a volume the server and the controller both mount.
  const serverPod = consumer(objects, serverCm.metadata.name);
  if (!serverPod) return report(`no pod mounts ConfigMap ${serverCm.metadata.name}`);
  const adminPath = hclString(server, "socket_path") ?? "/tmp/spire-server/private/api.sock";
  const adminVolume = volumeAt(serverPod.spec, serverPod.container, dirname(adminPath));
  if (!adminVolume?.emptyDir) report(`sigil-server's admin socket directory ${dirname(adminPath)} is not an emptyDir mount`);
  if (controller) {
    const controllerPath = controller.spireServerSocketPath ?? "/spire-server/api.sock";
    const side = (serverPod.spec.containers ?? []).find((c) => c !== serverPod.container &&
      (c.volumeMounts ?? []).some((m) => m.name === adminVolume?.name && m.mountPath.replace(/\/+$/, "") === dirname(controllerPath)));
    if (!side) report(`no container beside sigil-server mounts the admin socket volume at ${dirname(controllerPath)} (the controller's spireServerSocketPath)`);
    if (basename(controllerPath) !== basename(adminPath)) report(`the controller dials ${basename(controllerPath)}, the server listens on ${basename(adminPath)}`);
  }
}

// ---------------------------------------------------------------- kustomizations (check 6)

/** JSON pointer tokens of `path`. */
const pointer = (path) => path.split("/").slice(1).map((t) => t.replaceAll("~1", "/").replaceAll("~0", "~"));

/** Applies JSON 6902 operations (add, replace, remove) to `doc` in place. */
function applyPatch(doc, ops) {
  for (const op of ops) {
    const tokens = pointer(op.path ?? "");
    if (tokens.length === 0) throw new Error(`${op.op} ${op.path}: the root cannot be patched`);
    const last = tokens.pop();
    let parent = doc;
    for (const t of tokens) {
      parent = Array.isArray(parent) ? parent[Number(t)] : parent?.[t];
      if (parent === undefined || parent === null) throw new Error(`${op.op} ${op.path}: ${t} does not exist`);
    }
    const exists = Array.isArray(parent) ? Number(last) < parent.length : Object.hasOwn(parent, last);
    switch (op.op) {
      case "add":
        if (Array.isArray(parent)) parent.splice(last === "-" ? parent.length : Number(last), 0, op.value);
        else parent[last] = op.value;
        break;
      case "replace":
        if (!exists) throw new Error(`replace ${op.path}: nothing there to replace`);
        parent[last] = op.value;
        break;
      case "remove":
        if (!exists) throw new Error(`remove ${op.path}: nothing there to remove`);
        if (Array.isArray(parent)) parent.splice(Number(last), 1);
        else delete parent[last];
        break;
      default:
        throw new Error(`${op.op} ${op.path}: only add, replace and remove are supported here`);
    }
  }
}

/** Renders the kustomization in `dir`: its resources, recursively, with its patches applied. */
function renderKustomization(dir, seen = new Set()) {
  const file = join(dir, "kustomization.yaml");
  const where = rel(file);
  if (seen.has(dir)) throw new Error(`${where}: includes itself`);
  seen.add(dir);
  const k = parseYaml(readFileSync(file, "utf8"), { uniqueKeys: true }) ?? {};
  if (k.apiVersion !== "kustomize.config.k8s.io/v1beta1" || k.kind !== "Kustomization") {
    fail(where, "apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization");
  }
  const known = new Set(["apiVersion", "kind", "resources", "patches"]);
  for (const field of Object.keys(k)) if (!known.has(field)) fail(where, `${field}: not supported by this validator (extend validate.mjs)`);
  const objects = [];
  const listed = new Set();
  for (const resource of k.resources ?? []) {
    const path = resolve(dir, resource);
    if (!existsSync(path)) {
      fail(where, `resource ${resource} does not exist`);
    } else if (statSync(path).isDirectory()) {
      if (!existsSync(join(path, "kustomization.yaml"))) fail(where, `resource ${resource} is a directory without kustomization.yaml`);
      else objects.push(...renderKustomization(path, seen));
    } else {
      listed.add(path);
      objects.push(...readDocuments(path).map((d) => ({ obj: structuredClone(d.value), where: `${where} <- ${d.where}` })));
    }
  }
  // A manifest beside the kustomization but left out of it is a mistake (or an example,
  // named *.example.yaml); nothing else is skipped.
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (/\.ya?ml$/.test(name) && name !== "kustomization.yaml" && !name.endsWith(".example.yaml") && !listed.has(path)) {
      fail(where, `${name} is not listed in resources`);
    }
  }
  (k.patches ?? []).forEach((patch, i) => {
    const label = `${where} patches[${i}]`;
    const t = patch.target ?? {};
    const matches = objects.filter(({ obj }) =>
      (t.kind === undefined || obj.kind === t.kind) &&
      (t.name === undefined || obj.metadata?.name === t.name) &&
      (t.namespace === undefined || obj.metadata?.namespace === t.namespace) &&
      (t.version === undefined || obj.apiVersion.split("/").pop() === t.version) &&
      (t.group === undefined || (obj.apiVersion.includes("/") ? obj.apiVersion.split("/")[0] : "") === t.group));
    if (matches.length !== 1) return fail(label, `target ${JSON.stringify(t)} matches ${matches.length} objects, not 1`);
    let ops;
    try {
      ops = typeof patch.patch === "string" ? parseYaml(patch.patch, { uniqueKeys: true }) : null;
    } catch (e) {
      return fail(label, `patch is not YAML: ${e.message}`);
    }
    if (!Array.isArray(ops)) return fail(label, "patch must be an inline list of JSON 6902 operations");
    try {
      applyPatch(matches[0].obj, ops);
      matches[0].where += ` (patched by ${label})`;
    } catch (e) {
      fail(label, e.message);
    }
  });
  return objects;
}

// ---------------------------------------------------------------- CRD field lists (check 8)

/** `Kind path type [required] [enum=a|b] [pattern=p] [default=json]` lines of a CRD's schema. */
function crdFieldLines(crd) {
  const lines = [];
  const walk = (schema, path, required) => {
    const type = schema.type === "array" ? `[]${schema.items?.type ?? "?"}` : schema.type ?? "?";
    const extra = [
      required ? "required" : null,
      schema.enum ? `enum=${schema.enum.join("|")}` : null,
      schema.pattern !== undefined ? `pattern=${schema.pattern}` : null,
      schema.default !== undefined ? `default=${JSON.stringify(schema.default)}` : null,
    ].filter(Boolean);
    if (path) lines.push([crd.spec.names.kind, path, type, ...extra].join(" "));
    const req = new Set(schema.required ?? []);
    for (const [name, child] of Object.entries(schema.properties ?? {})) {
      if (!path && ["apiVersion", "kind", "metadata"].includes(name)) continue;
      walk(child, path ? `${path}.${name}` : name, req.has(name));
    }
    if (schema.type === "array" && schema.items?.properties) walk({ ...schema.items, type: "object" }, `${path}[]`, false);
  };
  for (const version of crd.spec.versions ?? []) {
    if (version.schema?.openAPIV3Schema) walk(version.schema.openAPIV3Schema, "", false);
  }
  return lines.filter((l) => !l.includes("[] object")).sort();
}

function checkCrdFields(crds) {
  const expected = readFileSync(fieldsFile, "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const kinds = new Set(expected.map((l) => l.split(" ")[0]));
  const actual = crds.filter((c) => kinds.has(c.spec?.names?.kind)).flatMap(crdFieldLines);
  const where = relative(process.cwd(), fieldsFile);
  const found = new Set(crds.map((c) => c.spec?.names?.kind));
  for (const kind of kinds) if (!found.has(kind)) fail(where, `no CRD in deploy/ defines ${kind}`);
  const a = new Set(actual);
  const e = new Set(expected);
  for (const line of expected) if (!a.has(line)) fail(where, `the CRDs lack: ${line}`);
  for (const line of actual) if (!e.has(line)) fail(where, `the CRDs have, but the field list does not: ${line}`);
}

// ---------------------------------------------------------------- main

const files = yamlFiles(deployDir);
if (files.length === 0) fail(deployDir, "no YAML files to validate");
const manifests = [];
const kustomizationDirs = [];
const valuesFiles = [];
for (const file of files) {
  if (basename(file) === "kustomization.yaml") kustomizationDirs.push(dirname(file));
  else if (file.endsWith("-values.yaml")) valuesFiles.push(file);
  else manifests.push(...readDocuments(file).map((d) => ({ obj: d.value, where: d.where })));
}

/** The IstioOperator in deploy/ (Istio's half of the wiring), if any. */
function istioOperator() {
  return manifests.find(({ obj }) => obj?.kind === "IstioOperator")?.obj;
}

const crds = manifests.map(({ obj }) => obj).filter((o) => o?.kind === "CustomResourceDefinition");
for (const { obj, where } of manifests) if (obj?.kind === "CustomResourceDefinition") registerCrd(obj, where);

const objects = manifests.filter(({ obj }) => typeof obj === "object" && obj !== null);
for (const entry of manifests) {
  await unit(async () => {
    await checkObject(entry.obj, entry.where);
    if (objects.includes(entry)) checkReferences(objects, [entry]);
  });
}

for (const dir of kustomizationDirs) {
  await unit(async () => {
    let rendered = [];
    try {
      rendered = renderKustomization(dir);
    } catch (e) {
      fail(rel(join(dir, "kustomization.yaml")), e.message);
    }
    // Objects a patch changed are checked again; the rest were checked as files above.
    for (const { obj, where } of rendered) if (where.includes("(patched by")) await checkObject(obj, where);
    // What the operator creates by hand (*.example.yaml beside the kustomization, e.g. the
    // database Secret) may be referred to.
    const examples = readdirSync(dir).filter((n) => n.endsWith(".example.yaml"))
      .flatMap((n) => readDocuments(join(dir, n)).map((d) => ({ obj: d.value, where: d.where })));
    checkReferences([...rendered, ...examples], rendered);
    checkWiring(rendered, rel(join(dir, "kustomization.yaml")));
  });
}

// The Helm values carry the same `spire` template as the IstioOperator.
const operator = istioOperator();
for (const file of valuesFiles) await unit(() => {
  let values;
  try {
    values = parseYaml(readFileSync(file, "utf8"), { uniqueKeys: true });
  } catch (e) {
    return fail(rel(file), `YAML: ${e.message}`);
  }
  const template = values?.sidecarInjectorWebhook?.templates?.spire;
  checkSpireTemplate(template, (m) => fail(rel(file), m));
  const expected = operator?.spec?.values?.sidecarInjectorWebhook?.templates?.spire;
  if (!operator) fail(rel(file), "no IstioOperator in deploy/ to compare the spire template with");
  else if (typeof template === "string" && !isDeepStrictEqual(parseYaml(template), parseYaml(expected))) {
    fail(rel(file), "its spire template differs from the IstioOperator's");
  }
  if (values?.meshConfig?.trustDomain !== operator?.spec?.meshConfig?.trustDomain) {
    fail(rel(file), `meshConfig.trustDomain ${values?.meshConfig?.trustDomain} differs from the IstioOperator's`);
  }
});

await unit(() => checkCrdFields(crds));

for (const f of failures) console.log(`FAIL ${f}`);
console.log(`${files.length} files, ${manifests.length} objects, ${kustomizationDirs.length} kustomizations`);
console.log(`${failures.length} problems`);
console.log(`validate: ${passed} passed, ${failed} failed`);
process.exit(failures.length === 0 ? 0 : 1);
