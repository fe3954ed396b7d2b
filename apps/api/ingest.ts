// POST /v1/channels/{channel}/captions: capture stations stream fragments in. A fragment is
// acknowledged (with its log position) only once Kafka has it with acks=all. The station is
// checked by the group's hook (access.ts). The rules a station can rely on:
// - every line read gets an answer line, in order, written before the response ends — also when
//   the request ends early (idle, the body cut short, the key removed): the last line then says why;
// - a line without an answer (the connection itself was lost) may or may not be stored: send it
//   again, a repeat is dropped by (channel, station, seq).
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import { CHANNEL_ID_RULE, isChannelId } from '../../domain/captions/channel.ts';
import { checkFragment, parseFragmentLine, type Fragment } from '../../domain/captions/fragment.ts';
import { formatPosition } from '../../domain/position.ts';
import type { Config } from '../../infra/config.ts';
import { KafkaUnavailable, type EventLog } from '../../infra/kafka/index.ts';
import { LATENCY_BUCKETS, prom, type Registry } from '../../infra/metrics.ts';
import type { StationKeys } from '../../infra/stations.ts';
import { AckStream } from './ack-stream.ts';
import { badRequest, HttpError } from './errors.ts';
import { isBlank, splitLines, type Line } from './lines.ts';
import { ingestDocs } from './api-schemas.ts';

const MAX_LINE_BYTES = 64 * 1024;
/** Answers of one stream not yet written (fragments waiting for Kafka, or for the station to read). */
const MAX_PENDING = 1024;
const NOT_STORED = 'not acknowledged: Kafka did not confirm it in time; send this fragment again (a repeat is dropped)';

type Ack = { seq: number; position: string } | { line: number; error: string; seq?: number };

/**
 * Sockets whose ingest stream wants to hear that the station half-closed its side before the body
 * was complete: Node reports it as a client error, and server.ts's clientErrorHandler calls this
 * instead of destroying the socket, so the answers can still be written.
 */
export const bodyCutShort = new WeakMap<Socket, () => void>();

const isNdjson = (contentType: string | undefined) => /^\s*application\/x-ndjson\s*(;|$)/i.test(contentType ?? '');

export function ingestRoutes(deps: { log: EventLog; stations: StationKeys; metrics: Registry; config: Config }): FastifyPluginAsync {
  const { log, stations, config } = deps;
  const fragments = new prom.Counter({
    name: 'castlog_ingest_fragments_total',
    help: 'Fragments by outcome',
    labelNames: ['outcome'],
    registers: [deps.metrics],
  });
  const ackLatency = new prom.Histogram({
    name: 'castlog_ingest_ack_latency_seconds',
    help: 'From a fragment read to its Kafka acknowledgement',
    buckets: LATENCY_BUCKETS,
    registers: [deps.metrics],
  });
  /** Open NDJSON streams per station: capped, and ended when the station's key is removed. */
  const open = new Map<string, Set<(why: string) => void>>();
  stations.onRemoved((station) => {
    for (const end of open.get(station) ?? []) end('authorization: the station key was removed');
  });

  function append(channel: string, station: string, f: Fragment): Promise<string> {
    const t0 = performance.now();
    return log
      .append([
        {
          type: 'CaptionFragmentReceived',
          key: channel,
          source: `/stations/${station}`,
          data: { channel, station, ...f, receivedAt: Date.now() },
        },
      ])
      .then(([p]) => {
        ackLatency.observe((performance.now() - t0) / 1000);
        fragments.inc({ outcome: 'accepted' });
        return formatPosition(p!);
      });
  }

  return async (app) => {
    // The NDJSON body is consumed as a stream by the handler, never buffered. Media types are
    // case-insensitive (fastify matches them so; the handler below does too).
    app.addContentTypeParser('application/x-ndjson', (_req, payload, done) => done(null, payload));

    app.post<{ Params: { channel: string } }>(
      '/:channel/captions',
      { config: { streamedBody: 'ingest', openapi: ingestDocs } },
      async (req, reply) => {
        const { channel } = req.params;
        if (!isChannelId(channel)) throw badRequest('channel', CHANNEL_ID_RULE);
        const station = req.station!;
        if (!(await log.ping())) throw new KafkaUnavailable('Kafka cannot be reached');

        if (!isNdjson(req.headers['content-type'])) {
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
            accepted = await Promise.all(
              valid.map(async (v) => ({ seq: v.fragment.seq, position: await append(channel, station, v.fragment) })),
            );
          } catch {
            fragments.inc({ outcome: 'unavailable' }, valid.length);
            throw new HttpError(
              503,
              'Service Unavailable: Kafka did not acknowledge; send the fragments again',
              undefined,
              {},
              { 'retry-after': '1' },
            );
          }
          return reply
            .status(accepted.length ? 200 : 400)
            .send({ accepted, rejected, ...(accepted.length ? {} : { error: 'no fragment was valid' }) });
        }

        const streams = open.get(station) ?? new Set();
        if (streams.size >= config.ingestMaxStreamsPerStation) {
          throw new HttpError(
            429,
            `authorization: station ${station} has ${streams.size} ingest streams open here, the most allowed; close one first`,
            'authorization',
            {},
            { 'retry-after': '5' },
          );
        }
        // From here on the response is ours: the head goes out at once, so the station knows its
        // stream is accepted before its first acknowledgement, then one line per input line.
        reply.hijack();
        const out = reply.raw;
        out.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
        out.flushHeaders();
        const acks = new AckStream<Ack>(out, MAX_PENDING);
        const socket = req.raw.socket;

        // Why the stream ends before its body does: idle, cut short, or the key removed. Stopping
        // wakes the read waiting for the next line (one waker at a time: racing every read against
        // one long-lived promise would keep a reaction per line alive).
        let endedBy: string | undefined;
        let wake: (() => void) | undefined;
        const stop = (why: string) => {
          endedBy ??= why;
          wake?.();
        };
        streams.add(stop);
        open.set(station, streams);
        bodyCutShort.set(socket, () => stop('body: the request ended before its declared length; every line read was answered above'));
        const idleSeconds = config.ingestIdleTimeoutMs / 1000;
        if (config.ingestIdleTimeoutMs > 0)
          req.raw.setTimeout(config.ingestIdleTimeoutMs, () =>
            stop(`body: nothing received for ${idleSeconds} s; the stream is closed (open a new one to go on)`),
          );

        let line = 0;
        const chunks = splitLines(req.body as Readable, MAX_LINE_BYTES)[Symbol.asyncIterator]();
        const nextLines = () =>
          new Promise<IteratorResult<Iterable<Line>> | undefined>((resolve, reject) => {
            wake = () => resolve(undefined);
            chunks.next().then(resolve, reject);
          });
        // Answers the next line; a promise only while the answers waiting to be written are at their cap.
        const answer = (l: Line): Promise<void> | undefined => {
          line++;
          if ('tooLong' in l) {
            fragments.inc({ outcome: 'rejected' });
            return acks.push(Promise.resolve({ line, error: `line is longer than ${MAX_LINE_BYTES} bytes` }));
          }
          if (isBlank(l.bytes)) return undefined;
          const check = parseFragmentLine(l.bytes);
          if (!check.ok) {
            fragments.inc({ outcome: 'rejected' });
            return acks.push(Promise.resolve({ line, error: check.error }));
          }
          const { seq } = check.fragment;
          const n = line;
          return acks.push(
            append(channel, station, check.fragment).then(
              (position): Ack => ({ seq, position }),
              (): Ack => (fragments.inc({ outcome: 'unavailable' }), { line: n, seq, error: NOT_STORED }),
            ),
          );
        };
        try {
          for (;;) {
            const next = endedBy === undefined ? await nextLines() : undefined;
            if (next === undefined || next.done) break;
            for (const l of next.value) {
              if (endedBy !== undefined) break;
              const full = answer(l);
              if (full) await full;
            }
          }
        } catch (err) {
          req.log.info({ err }, 'ingest stream ended early');
        } finally {
          streams.delete(stop);
          if (streams.size === 0) open.delete(station);
          bodyCutShort.delete(socket);
          req.raw.setTimeout(0);
        }
        await acks.end();
        if (endedBy) out.write(`${JSON.stringify({ error: endedBy, field: endedBy.split(':')[0] })}\n`);
        // A body left unread cannot be followed by another request on this connection.
        if (endedBy) out.once('finish', () => socket.destroy());
        out.end();
        return reply;
      },
    );
  };
}
