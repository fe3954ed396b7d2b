// The deployment files, checked as far as this machine can without a Docker engine or a cluster:
// the Kubernetes manifests (rendered by kustomize, as `kubectl apply -k` would) against the
// Kubernetes API schemas and the Strimzi and CloudNativePG CRD schemas; infra/compose.yaml against
// the compose-spec schema; and what the image promises, read from the Dockerfile (not linted: no
// Dockerfile linter installs here). Schemas: deploy/schemas (README.md there says whence).
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import formats from 'ajv-formats';
import { parseAllDocuments, parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { appArgs } from '../../apps/node-args.ts';
import { loadConfig } from '../../infra/config.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCHEMAS = join(ROOT, 'deploy', 'schemas');
const KUSTOMIZE = join(ROOT, 'deploy', 'kubernetes');
const PROCESSES = ['api', 'relay', 'projector', 'fanout', 'worker', 'matcher', 'notifier'];

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; spec?: any; data?: any };

const json = (file: string) => JSON.parse(readFileSync(join(SCHEMAS, file), 'utf8'));
const ajv = new Ajv({ strict: false, allErrors: true });
// A CommonJS module: its default export is the function under NodeNext's typing.
formats.default(ajv);
const kubernetes = json('kubernetes.json') as { kinds: string[] };
ajv.addSchema(kubernetes, 'kubernetes');

/** A validator for every kind the deploy files use, by `apiVersion/kind`. */
const validators = new Map<string, ValidateFunction>();
for (const name of kubernetes.kinds) {
  const def = (kubernetes as any).definitions[name];
  validators.set(`${def.properties.apiVersion.const}/${def.properties.kind.const}`, ajv.getSchema(`kubernetes#/definitions/${name}`)!);
}
validators.set('kafka.strimzi.io/v1/Kafka', ajv.compile(json('strimzi-kafka-v1.json')));
validators.set('kafka.strimzi.io/v1/KafkaNodePool', ajv.compile(json('strimzi-kafkanodepool-v1.json')));
validators.set('postgresql.cnpg.io/v1/Cluster', ajv.compile(json('cnpg-cluster-v1.json')));

function problems(m: Manifest): string[] {
  const validate = validators.get(`${m.apiVersion}/${m.kind}`);
  if (!validate) return [`no schema for ${m.apiVersion} ${m.kind}`];
  return validate(m) ? [] : validate.errors!.map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
}

const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;

/** What `kubectl apply -k <dir>` would send. */
function render(dir: string): Manifest[] {
  const r = spawnSync('kubectl', ['kustomize', join(KUSTOMIZE, dir)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kustomize ${dir}: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Manifest);
}

/** Every whole resource file (not the overlays' patches): checked even where kustomize is missing. */
function resourceFiles(): { file: string; manifest: Manifest }[] {
  const found: { file: string; manifest: Manifest }[] = [];
  for (const dir of ['base', 'components/in-cluster-data']) {
    for (const f of readdirSync(join(KUSTOMIZE, dir)).filter((x) => x.endsWith('.yaml') && x !== 'kustomization.yaml')) {
      const text = readFileSync(join(KUSTOMIZE, dir, f), 'utf8');
      for (const d of parseAllDocuments(text)) found.push({ file: `${dir}/${f}`, manifest: d.toJS() as Manifest });
    }
  }
  return found;
}

describe('Kubernetes manifests', () => {
  it('every resource file is valid against the Kubernetes API and the operators CRD schemas', () => {
    const files = resourceFiles();
    expect(files.length).toBeGreaterThan(20);
    for (const { file, manifest } of files) expect(problems(manifest), `${file}: ${manifest.kind} ${manifest.metadata?.name}`).toEqual([]);
  });

  it('a misspelt field or a wrong type is caught (the schemas are strict)', () => {
    const deployment = resourceFiles().find((f) => f.manifest.kind === 'Deployment')!.manifest;
    const misspelt = structuredClone(deployment);
    const container = misspelt.spec.template.spec.containers[0];
    container.readinesProbe = container.readinessProbe;
    delete container.readinessProbe;
    expect(problems(misspelt).join('\n')).toMatch(/additional/);
    const wrongType = structuredClone(deployment);
    wrongType.spec.replicas = 'two';
    expect(problems(wrongType)).not.toEqual([]);
    const pool = resourceFiles().find((f) => f.manifest.kind === 'KafkaNodePool')!.manifest;
    expect(problems({ ...pool, spec: { ...pool.spec, roles: ['leader'] } })).not.toEqual([]);
  });

  for (const target of ['base', 'overlays/production']) {
    it.skipIf(!kubectl)(`${target}, as kustomize renders it, is valid and complete`, () => {
      const manifests = render(target);
      for (const m of manifests) expect(problems(m), `${m.kind} ${m.metadata.name}`).toEqual([]);
      const named = (kind: string, name: string) => manifests.find((m) => m.kind === kind && m.metadata.name === name);
      for (const p of PROCESSES) {
        const d = named('Deployment', `castlog-${p}`);
        expect(d, `a Deployment for ${p}`).toBeDefined();
        const pod = d!.spec.template.spec;
        const [c] = pod.containers;
        expect(c.args).toEqual([`apps/${p}/main.ts`]);
        expect(c.readinessProbe.httpGet.path).toBe('/readyz');
        expect(c.livenessProbe.httpGet.path).toBe('/healthz');
        expect(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, `${p} resources`).toBeTruthy();
        expect(pod.securityContext.runAsNonRoot).toBe(true);
        // A Service for the port, and a disruption budget for the pods.
        const port = c.ports[0].containerPort;
        const svc = named('Service', `castlog-${p}`);
        expect(svc?.spec.ports.map((x: { port: number }) => x.port)).toEqual([port]);
        expect(svc?.spec.selector).toEqual(d!.spec.selector.matchLabels);
        expect(named('PodDisruptionBudget', `castlog-${p}`)?.spec.selector.matchLabels).toEqual(d!.spec.selector.matchLabels);
      }
      const hpa = named('HorizontalPodAutoscaler', 'castlog-fanout');
      expect(hpa?.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'castlog-fanout' });
    });
  }

  it.skipIf(!kubectl)('production runs Kafka on Strimzi (KRaft, three nodes) and Postgres on CloudNativePG', () => {
    const manifests = render('overlays/production');
    expect(new Set(manifests.map((m) => m.metadata.namespace ?? 'castlog'))).toEqual(new Set(['castlog']));
    const pool = manifests.find((m) => m.kind === 'KafkaNodePool')!;
    expect(pool.spec).toMatchObject({ replicas: 3, roles: ['controller', 'broker'] });
    const kafka = manifests.find((m) => m.kind === 'Kafka')!;
    // The node pool belongs to this Kafka, and the topic catalog's replication is the cluster's default.
    expect((pool.metadata as any).labels['strimzi.io/cluster']).toBe(kafka.metadata.name);
    expect(kafka.spec.kafka.config).toMatchObject({ 'min.insync.replicas': 2, 'default.replication.factor': 3 });
    const config = manifests.find((m) => m.kind === 'ConfigMap' && m.metadata.name === 'castlog-config')!;
    expect(config.data.KAFKA_BROKERS).toMatch(new RegExp(`^${kafka.metadata.name}-kafka-bootstrap\\b`));
    // New topics wait for the whole pool at a first start (an operator scaling the pool changes both).
    expect(loadConfig(config.data).kafkaClusterSize).toBe(pool.spec.replicas);
    const db = manifests.find((m) => m.kind === 'Cluster')!;
    expect(db.spec.instances).toBe(3);
    const uri = manifests
      .find((m) => m.kind === 'Deployment')!
      .spec.template.spec.containers[0].env.find((e: { name: string }) => e.name === 'DATABASE_URL');
    expect(uri.valueFrom.secretKeyRef).toEqual({ name: `${db.metadata.name}-app`, key: 'uri' });
  });
});

describe('infra/compose.yaml', () => {
  // Merge keys (<<) as Docker Compose reads them.
  const compose = parse(readFileSync(join(ROOT, 'infra', 'compose.yaml'), 'utf8'), { merge: true });

  it('is valid against the compose-spec schema', () => {
    // The schema names draft-07 by an https URL ajv does not know by that name; it is draft-07.
    const { $schema: _draft07, ...schema } = json('compose-spec.json');
    const validate = ajv.compile(schema);
    expect(validate(compose) ? [] : validate.errors).toEqual([]);
    expect(validate({ services: { api: { image: 'castlog', comand: ['x'] } } })).toBe(false);
  });

  it('runs Kafka, Postgres and every process from the one image, two fanouts', () => {
    const services = compose.services as Record<string, { image?: string; command?: string[] }>;
    expect(services.kafka?.image).toMatch(/^apache\/kafka:/);
    expect(services.postgres?.image).toMatch(/^postgres:/);
    const commands = Object.values(services)
      .filter((s) => s.image === 'castlog:latest')
      .map((s) => s.command?.[0]);
    for (const p of PROCESSES) expect(commands, p).toContain(`apps/${p}/main.ts`);
    expect(commands.filter((c) => c === 'apps/fanout/main.ts')).toHaveLength(2);
  });
});

describe('Dockerfile', () => {
  // What can be read from it; building it needs a Docker engine, which this machine has not.
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const stages = text.split(/^FROM /m).slice(1);
  const final = stages.at(-1)!;

  it('is multi-stage; the final image runs as a non-root user, without npm, any process by its command', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(final).toMatch(/^USER (?!0\b|root\b)\S+/m);
    expect(final).toMatch(/rm -rf [^\n]*\/usr\/local\/lib\/node_modules\/npm/);
    expect(final).not.toMatch(/build-essential|gcc|g\+\+|python3|make\b/);
    // The image runs an app as the supervisor, tests and benches do (apps/node-args.ts), flags included.
    const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(final)![1]!) as string[];
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(final)![1]!) as string[];
    expect(entrypoint.slice(0, 2)).toEqual(['/usr/bin/tini', '--']);
    expect([...entrypoint.slice(2), ...cmd]).toEqual(['node', ...appArgs('api')]);
    for (const p of PROCESSES) expect(readdirSync(join(ROOT, 'apps', p))).toContain('main.ts');
  });
});
