// POST /v1/channels/{channel}/captions: capture stations stream fragments in. A fragment is
// acknowledged (with its log position) only once Kafka has it with acks=all.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { CHANNEL_ID_RULE, isChannelId } from '../../domain/captions/channel.ts';
import { checkFragment, parseFragmentLine, type Fragment } from '../../domain/captions/fragment.ts';
import { formatPosition } from '../../domain/position.ts';
import type { EventLog } from '../../infra/kafka.ts';
import { prom, LATENCY_BUCKETS, type Registry } from '../../infra/metrics.ts';
import type { StationKeys } from '../../infra/stations.ts';
import { HttpError, badRequest } from './errors.ts';
import { splitLines } from './lines.ts';
import { bearerOf } from '../../infra/bearer.ts';

const MAX_LINE_BYTES = 64 * 1024;
/** Fragments of one request waiting for Kafka before we stop reading more of it. */
const MAX_IN_FLIGHT = 2048;
const NOT_STORED = 'not acknowledged: Kafka did not confirm it in time; send this fragment again (a repeat is dropped)';

type Ack = { seq: number; position: string } | { line: number; error: string; seq?: number };

export function ingestRoutes(app: FastifyInstance, deps: { log: EventLog; stations: StationKeys; metrics: Registry }): void {
  const { log, stations } = deps;
  const fragments = new prom.Counter({ name: 'castlog_ingest_fragments_total', help: 'Fragments by outcome', labelNames: ['outcome'], registers: [deps.metrics] });
  const ackLatency = new prom.Histogram({ name: 'castlog_ingest_ack_latency_seconds', help: 'From a fragment read to its Kafka acknowledgement', buckets: LATENCY_BUCKETS, registers: [deps.metrics] });

  // The NDJSON body is consumed as a stream by the handler, never buffered.
  app.addContentTypeParser('application/x-ndjson', (_req, payload, done) => done(null, payload));

  async function authenticate(req: FastifyRequest): Promise<string> {
    const key = bearerOf(req.headers.authorization);
    if (!key) throw new HttpError(401, 'authorization: a station key is required (Authorization: Bearer <key>)', 'authorization');
    const station = await stations.verify(key).catch(() => {
      throw new HttpError(503, 'Service Unavailable: the database cannot be reached');
    });
    if (!station) throw new HttpError(401, 'authorization: unknown station key', 'authorization');
    return station;
  }

  function append(channel: string, station: string, f: Fragment): Promise<string> {
    const t0 = performance.now();
    return log
      .append([{ type: 'CaptionFragmentReceived', key: channel, source: `/stations/${station}`, data: { channel, station, ...f, receivedAt: Date.now() } }])
      .then(([p]) => {
        ackLatency.observe((performance.now() - t0) / 1000);
        fragments.inc({ outcome: 'accepted' });
        return formatPosition(p!);
      });
  }

  app.post<{ Params: { channel: string } }>('/v1/channels/:channel/captions', async (req, reply) => {
    const { channel } = req.params;
    if (!isChannelId(channel)) throw badRequest('channel', CHANNEL_ID_RULE);
    const station = await authenticate(req);
    if (!(await log.ping())) throw new HttpError(503, 'Service Unavailable: Kafka cannot be reached; nothing was written');

    if (req.headers['content-type']?.startsWith('application/x-ndjson')) {
      // From here on the response is ours: the head goes out at once, so the station knows its
      // stream is accepted before its first acknowledgement, then one line per input line.
      reply.hijack();
      const out = reply.raw;
      out.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      out.flushHeaders();
      let line = 0;
      let inFlight = 0;
      let written: Promise<unknown> = Promise.resolve();
      const respond = (ack: Promise<Ack>) => {
        written = Promise.all([written, ack]).then(([, a]) => out.write(`${JSON.stringify(a)}\n`));
      };
      try {
        for await (const l of splitLines(req.body as Readable, MAX_LINE_BYTES)) {
          line++;
          if ('tooLong' in l) {
            fragments.inc({ outcome: 'rejected' });
            respond(Promise.resolve({ line, error: `line is longer than ${MAX_LINE_BYTES} bytes` }));
            continue;
          }
          if (l.bytes.length === 0 || /^\s*$/.test(l.bytes.toString('latin1'))) continue;
          const check = parseFragmentLine(l.bytes);
          if (!check.ok) {
            fragments.inc({ outcome: 'rejected' });
            respond(Promise.resolve({ line, error: check.error }));
            continue;
          }
          const { seq } = check.fragment;
          const n = line;
          inFlight++;
          respond(
            append(channel, station, check.fragment).then(
              (position) => ({ seq, position }),
              () => (fragments.inc({ outcome: 'unavailable' }), { line: n, seq, error: NOT_STORED }),
            ).finally(() => inFlight--),
          );
          if (inFlight >= MAX_IN_FLIGHT) await written;
        }
      } catch (err) {
        req.log.info({ err: String(err) }, 'ingest stream ended early');
      }
      await written;
      out.end();
      return reply;
    }

    // application/json: one fragment or an array of them.
    const items = Array.isArray(req.body) ? (req.body as unknown[]) : [req.body];
    if (items.length === 0) throw badRequest('body', 'must hold at least one fragment');
    const rejected: Ack[] = [];
    const valid: { line: number; fragment: Fragment }[] = [];
    items.forEach((item, i) => {
      const check = checkFragment(item);
      if (check.ok) valid.push({ line: i + 1, fragment: check.fragment });
      else rejected.push({ line: i + 1, error: check.error });
    });
    fragments.inc({ outcome: 'rejected' }, rejected.length);
    let accepted: Ack[];
    try {
      accepted = await Promise.all(valid.map(async (v) => ({ seq: v.fragment.seq, position: await append(channel, station, v.fragment) })));
    } catch {
      fragments.inc({ outcome: 'unavailable' }, valid.length);
      throw new HttpError(503, 'Service Unavailable: Kafka did not acknowledge; send the fragments again');
    }
    return reply.status(accepted.length ? 200 : 400).send({ accepted, rejected, ...(accepted.length ? {} : { error: 'no fragment was valid' }) });
  });
}
