// Re-makes the schema files in this folder from checkouts of their upstream repositories (see
// README.md here): only what the deploy files use, so the repository carries kilobytes, not the
// whole of Kubernetes' API. Run: npx tsx deploy/schemas/vendor.ts <k8s-python> <strimzi> <cnpg> <compose-spec>
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

const HERE = new URL('.', import.meta.url).pathname;
const args = process.argv.slice(2);
const usage = 'usage: vendor.ts <kubernetes-client/python> <strimzi-kafka-operator> <cloudnative-pg> <compose-spec>';
if (args.length !== 4) throw new Error(usage);
const [k8sPython, strimzi, cnpg, compose] = args as [string, string, string, string];

/** A file at the checkout's HEAD (a bare mirror or a work tree alike). */
const show = (repo: string, path: string) =>
  execFileSync('git', ['-C', repo, 'show', `HEAD:${path}`], { encoding: 'utf8', maxBuffer: 1 << 28 });
const write = (name: string, schema: unknown) => writeFileSync(join(HERE, name), `${JSON.stringify(schema)}\n`);

type Schema = Record<string, any>;

// Kubernetes: the kinds the manifests use, with every definition they reach. Like kubeconform's
// "strict" schemas, an object with known properties accepts no others (a misspelt field fails).
const KINDS = [
  'io.k8s.api.apps.v1.Deployment',
  'io.k8s.api.core.v1.Service',
  'io.k8s.api.core.v1.ConfigMap',
  'io.k8s.api.core.v1.Secret',
  'io.k8s.api.core.v1.PersistentVolumeClaim',
  'io.k8s.api.core.v1.Namespace',
  'io.k8s.api.policy.v1.PodDisruptionBudget',
  'io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler',
];
const swagger = JSON.parse(show(k8sPython, 'kubernetes/swagger.json.unprocessed')) as { definitions: Record<string, Schema> };
const definitions: Record<string, Schema> = {};
const reach = (name: string) => {
  if (definitions[name]) return;
  const def = structuredClone(swagger.definitions[name]);
  if (!def) throw new Error(`no definition ${name}`);
  definitions[name] = def;
  const walk = (s: any): void => {
    if (!s || typeof s !== 'object') return;
    if (typeof s.$ref === 'string') reach(s.$ref.replace('#/definitions/', ''));
    if (s.type === 'object' && s.properties && s.additionalProperties === undefined) s.additionalProperties = false;
    for (const v of Object.values(s)) walk(v);
  };
  walk(def);
};
KINDS.forEach(reach);
// Written as a string in the spec, but an integer or a string in manifests (ports, budgets).
definitions['io.k8s.apimachinery.pkg.util.intstr.IntOrString'] = { oneOf: [{ type: 'string' }, { type: 'integer' }] };
definitions['io.k8s.apimachinery.pkg.api.resource.Quantity'] = { oneOf: [{ type: 'string' }, { type: 'number' }] };
for (const name of KINDS) {
  const def = definitions[name]!;
  const [gvk] = def['x-kubernetes-group-version-kind'] as { group: string; version: string; kind: string }[];
  def.properties.apiVersion = { const: gvk!.group ? `${gvk!.group}/${gvk!.version}` : gvk!.version };
  def.properties.kind = { const: gvk!.kind };
  def.required = [...new Set([...(def.required ?? []), 'apiVersion', 'kind', 'metadata'])];
}
write('kubernetes.json', { $schema: 'http://json-schema.org/draft-07/schema#', kinds: KINDS, definitions });

// The operators' own CRDs: the openAPIV3Schema the API server checks custom resources against.
const crd = (repo: string, path: string, version: string) => {
  const doc = parse(show(repo, path)) as { spec: { versions: { name: string; schema: { openAPIV3Schema: Schema } }[] } };
  const v = doc.spec.versions.find((x) => x.name === version);
  if (!v) throw new Error(`${path} has no version ${version}`);
  return v.schema.openAPIV3Schema;
};
const charts = 'packaging/helm-charts/helm3/strimzi-kafka-operator/crds';
write('strimzi-kafka-v1.json', crd(strimzi, `${charts}/040-Crd-kafka.yaml`, 'v1'));
write('strimzi-kafkanodepool-v1.json', crd(strimzi, `${charts}/045-Crd-kafkanodepool.yaml`, 'v1'));
write('cnpg-cluster-v1.json', crd(cnpg, 'config/crd/bases/postgresql.cnpg.io_clusters.yaml', 'v1'));
write('compose-spec.json', JSON.parse(show(compose, 'schema/compose-spec.json')));
