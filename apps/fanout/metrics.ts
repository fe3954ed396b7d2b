// The fanout's own metrics: what it delivers, whom it closes for falling behind, and how long a
// caption takes from ingest to its subscribers' sockets.
import { LATENCY_BUCKETS, prom, type Registry } from '../../infra/metrics.ts';

export function fanoutMetrics(registry: Registry) {
  return {
    deliveries: new prom.Counter({ name: 'castlog_fanout_deliveries_total', help: 'Messages handed to WebSockets', registers: [registry] }),
    slowClosed: new prom.Counter({
      name: 'castlog_fanout_slow_consumers_total',
      help: 'Clients closed for falling behind',
      registers: [registry],
    }),
    e2e: new prom.Histogram({
      name: 'castlog_e2e_latency_seconds',
      help: 'From ingest to the fanout handing the caption to subscribers',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
  };
}
