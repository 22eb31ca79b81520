// Proves that validate.mjs still fails on broken manifests: each case copies deploy/, breaks
// one thing in the copy, runs the validator on it and expects a non-zero exit with the named
// problem in its output. Guards against a package update or an edit turning a check into one
// that cannot fail. Run by `deploy/validate.sh --self-test`.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { tmpdir } from "node:os";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const [deployDir, fieldsFile] = process.argv.slice(2);
if (!deployDir || !fieldsFile) {
  console.error("usage: node selftest.mjs <deploy-dir> <crd-fields.txt>");
  process.exit(2);
}
const validator = join(dirname(fileURLToPath(import.meta.url)), "validate.mjs");

// [what breaks, file, text to replace, replacement, text the report must contain]
const CASES = [
  ["a wrong type (schema)", "base/30-server.yaml", "  replicas: 1\n", "  replicas: one\n", "spec/replicas must be integer"],
  ["a misspelt field (field list)", "base/40-agent.yaml", "          readinessProbe:", "          readinesProbe:", ".readinesProbe: unknown field"],
  ["a mount of a missing volume (references)", "base/40-agent.yaml", "            - name: agent-token\n              mountPath", "            - name: agent-tokens\n              mountPath", "mounts volume agent-tokens, which the pod does not define"],
  ["a ClusterSPIFFEID without its template (CRD schema)", "istio/clusterspiffeids.yaml", "  spiffeIDTemplate:", "  spiffeIdTemplate:", "must have required property 'spiffeIDTemplate'"],
  ["a CRD field removed (field list)", "base/01-crds.yaml", "                storeSVID:\n                  type: boolean\n", "", "the CRDs lack: ClusterStaticEntry spec.storeSVID boolean"],
  ["an IstioOperator typo (Istio field list)", "istio/istio-operator.yaml", "        enabled: true\n", "        enable: true\n", ".enable: unknown field"],
  ["a broken overlay path", "istio/istio-operator.yaml", "spec.template.spec.containers.[name:istio-proxy]", "spec.template.spec.container.[name:istio-proxy]", "container: not a field of V1PodSpec"],
  ["a patch that does not apply (kustomize)", "postgres/kustomization.yaml", "path: /spec/replicas", "path: /spec/replica/count", "replica does not exist"],
  ["a controller config typo", "base/30-server.yaml", "    clusterName: demo-cluster", "    clustername: demo-cluster", "clustername is not a ControllerManagerConfig key"],
  ["two trust domains (wiring)", "base/40-agent.yaml", 'trust_domain = "example.org"', 'trust_domain = "example.com"', "trust domain: agent.conf has example.com"],
  ["a YAML syntax error", "base/00-namespace.yaml", "  name: spire\n", "  name: [spire\n", "YAML:"],
];

let passed = 0;
let failed = 0;
const run = (dir) => spawnSync(process.execPath, [validator, dir, fieldsFile], { encoding: "utf8" });

const clean = run(deployDir);
if (clean.status !== 0) {
  console.log(`FAIL the unbroken deploy/ does not pass, so the cases prove nothing:\n${clean.stdout}${clean.stderr}`);
  process.exit(1);
}
for (const [name, file, from, to, expected] of CASES) {
  const copy = mkdtempSync(join(tmpdir(), "sigil-deploy-selftest-"));
  try {
    cpSync(deployDir, copy, { recursive: true, filter: (src) => !src.includes("node_modules") });
    const path = join(copy, file);
    const text = readFileSync(path, "utf8");
    if (!text.includes(from)) {
      console.log(`FAIL ${name}: ${file} no longer contains ${JSON.stringify(from)} (update the case)`);
      failed++;
      continue;
    }
    writeFileSync(path, text.replace(from, to));
    const result = run(copy);
    const output = result.stdout + result.stderr;
    if (result.status === 1 && output.includes(expected)) {
      console.log(`ok   ${name}`);
      passed++;
    } else {
      console.log(`FAIL ${name}: expected exit 1 and ${JSON.stringify(expected)}, got exit ${result.status}:\n${output}`);
      failed++;
    }
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}
console.log(`selftest: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
