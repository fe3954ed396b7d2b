// Prometheus metrics (prom-client): one registry per process, default Node metrics included.
import { createServer, type Server } from 'node:http';
import client from 'prom-client';

export type Registry = client.Registry;
export { client as prom };

export function createRegistry(app: string): client.Registry {
  const registry = new client.Registry();
  registry.setDefaultLabels({ app });
  client.collectDefaultMetrics({ register: registry });
  // prom-client names three gauges *_total, which Prometheus keeps for counters (promtool refuses
  // them); the same counts are there by type in nodejs_active_handles, _requests and _resources.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(name);
  }
  return registry;
}

/** Latency buckets from 0.5 ms to 10 s, for end-to-end and request latencies. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** A tiny HTTP server for processes that have no other: /healthz and /metrics. */
export function serveMetrics(registry: client.Registry, port: number, ready: () => Promise<boolean>): Server {
  const server = createServer(async (req, res) => {
    if (req.url === '/metrics') {
      res.setHeader('content-type', registry.contentType);
      res.end(await registry.metrics());
    } else if (req.url === '/healthz') {
      res.end('{"status":"ok"}');
    } else if (req.url === '/readyz') {
      const ok = await ready();
      res.statusCode = ok ? 200 : 503;
      res.end(JSON.stringify({ status: ok ? 'ready' : 'unavailable' }));
    } else {
      res.statusCode = 404;
      res.end('{"error":"not found"}');
    }
  });
  server.listen(port, '0.0.0.0');
  return server;
}
