// The uWebSockets.js server: /v1/live for browsers, /healthz, /readyz and /metrics for operators.
import uWS from 'uWebSockets.js';
import type { Registry } from '../../infra/metrics.ts';
import { bearerOf, CallerRefused, proxiedUser, userOf } from '../../infra/caller.ts';
import type { UserTokens } from '../../infra/user-tokens.ts';
import { USER_PREFIX } from './feeds.ts';
import { Client, type Hub, type Socket } from './hub.ts';
import { CHANNEL_ID_RULE, isChannelId } from '../../domain/captions/channel.ts';
import type { Replayer } from './replay.ts';
import {
  CLOSE_RESTART,
  CLOSE_TOO_BIG,
  FRAME_HARD_LIMIT_BYTES,
  MAX_FRAME_BYTES,
  errorMessage,
  isRefusal,
  parseClientMessage,
  refusal,
} from './protocol.ts';
import { originRefusal, type OriginRule } from '../../infra/origins.ts';
import { WriteSlices, type Member } from './slices.ts';

interface UserData {
  socket?: UwsSocket;
  /** The user the trusted proxy in front vouched for (x-userid on the upgrade request), or a user token named. */
  userId: string;
}

/**
 * The hub's view of one uWS socket. A class, so each connection holds one small object and shares
 * the methods: an object of six arrow functions closing over the socket cost ~2 KB of JS heap per
 * connection, most of what a connection cost the fanout (the connections bench measures it).
 * Its topics are joined and left in its write slice's turn (slices.ts); a direct send first replays
 * that slice, so what was published before it comes first.
 */
class UwsSocket implements Socket, Member {
  gone = false;
  /** The hub's client on this socket. */
  readonly client = new Client(this);
  constructor(
    private readonly ws: uWS.WebSocket<UserData>,
    private readonly slices: WriteSlices,
    private readonly slice: number,
  ) {}
  send(message: string): number {
    this.slices.flush(this.slice);
    return this.ws.send(message, false);
  }
  bufferedAmount(): number {
    return this.ws.getBufferedAmount();
  }
  cork(fn: () => void): void {
    this.slices.flush(this.slice);
    this.ws.cork(fn);
  }
  end(code: number, reason: string): void {
    this.ws.end(code, reason);
  }
  subscribe(topic: string): void {
    this.slices.join(this, this.slice, topic);
  }
  unsubscribe(topic: string): void {
    this.slices.leave(this, this.slice, topic);
  }
  join(topic: string): void {
    this.ws.subscribe(topic);
  }
  leave(topic: string): void {
    this.ws.unsubscribe(topic);
  }
}

export interface Hubs {
  captions: Hub;
  /** Users' own events, on channels "user:<id>". */
  users?: Hub;
  /** Historical ranges replayed at their original pacing. */
  replays?: Replayer;
}

export interface FanoutServer {
  port: number;
  connections(): number;
  close(): void;
}

export function startFanoutServer(
  hubs: Hubs,
  opts: {
    port: number;
    maxBackpressure: number;
    metrics: Registry;
    ready: () => Promise<boolean>;
    tokens?: UserTokens;
    /** Which pages may connect; absent: any (for tests and benchmarks that embed the server). */
    origins?: OriginRule;
    /** Slices the sockets are written in (slices.ts); absent: 1, all at once. */
    writeSlices?: number;
    /** Socket writes a loop turn starts before the rest of the slices wait for the next (slices.ts). */
    writesPerTurn?: number;
  },
): Promise<FanoutServer> {
  const sockets = new Set<uWS.WebSocket<UserData>>();
  const decoder = new TextDecoder();
  // Live captions go out through uWS pub/sub, written by uWS to every socket on a topic, in slices
  // over several turns where a turn's writes would be many.
  const slices = new WriteSlices(
    { publish: (topic, message) => void app.publish(topic, message, false, false) },
    opts.writeSlices ?? 1,
    setImmediate,
    opts.writesPerTurn,
  );
  const app = uWS
    .App()
    .ws<UserData>('/v1/live', {
      compression: uWS.DISABLED,
      // uWS cuts a connection over its limit without a close frame: the protocol's limit is ours.
      maxPayloadLength: FRAME_HARD_LIMIT_BYTES,
      idleTimeout: 120,
      sendPingsAutomatically: true,
      // The hub closes a slow client itself, with a code that says how to resume; this is only a backstop.
      maxBackpressure: Math.max(opts.maxBackpressure * 16, 64 * 1024 * 1024),
      closeOnBackpressureLimit: 0,
      upgrade: (res, req, context) => {
        const refused = opts.origins && originRefusal(req.getHeader('origin'), req.getHeader('host'), opts.origins);
        if (refused) {
          return void res
            .writeStatus('403 Forbidden')
            .writeHeader('content-type', 'application/json')
            .end(JSON.stringify({ error: `origin: ${refused}`, field: 'origin' }));
        }
        const headers = [
          req.getHeader('sec-websocket-key'),
          req.getHeader('sec-websocket-protocol'),
          req.getHeader('sec-websocket-extensions'),
        ] as const;
        // Who the user is: the same rule as the api (infra/caller.ts). A browser cannot set headers
        // on a WebSocket: it proves who it is with ?token=<user token>.
        const queryToken = req.getQuery('token') || undefined;
        const token = queryToken ?? bearerOf(req.getHeader('authorization') || undefined);
        const refuse = (err: unknown) => {
          const e = err instanceof CallerRefused ? err : new CallerRefused(401, 'token', 'not a valid user token');
          const status = { 400: '400 Bad Request', 401: '401 Unauthorized', 403: '403 Forbidden' }[e.statusCode];
          res.cork(() =>
            res
              .writeStatus(status)
              .writeHeader('content-type', 'application/json')
              .end(JSON.stringify({ error: e.message, field: e.field })),
          );
        };
        let proxied: string | undefined;
        try {
          proxied = proxiedUser(req.getHeader('x-userid'));
        } catch (err) {
          return refuse(err);
        }
        if (token === undefined) return void res.upgrade<UserData>({ userId: proxied ?? '' }, ...headers, context);
        let aborted = false;
        res.onAborted(() => (aborted = true));
        void userOf(opts.tokens, proxied, token, queryToken !== undefined ? 'token' : 'authorization').then(
          (userId) => !aborted && res.cork(() => res.upgrade<UserData>({ userId: userId ?? '' }, ...headers, context)),
          (err: unknown) => !aborted && refuse(err),
        );
      },
      open: (ws) => {
        sockets.add(ws);
        ws.getUserData().socket = new UwsSocket(ws, slices, slices.assign());
      },
      message: (ws, raw, isBinary) => {
        const { client } = ws.getUserData().socket!;
        if (raw.byteLength > MAX_FRAME_BYTES) return void ws.end(CLOSE_TOO_BIG, `message too big: at most ${MAX_FRAME_BYTES} bytes`);
        if (isBinary)
          return void ws.send(
            errorMessage('bad_request', refusal('frame', 'must be a text frame of JSON; binary frames are not read')),
            false,
          );
        const m = parseClientMessage(decoder.decode(raw));
        if (isRefusal(m)) return void ws.send(errorMessage('bad_request', m), false);
        if (m.op === 'replay' || m.op === 'stop_replay') {
          const { replays } = hubs;
          if (!replays) return void ws.send(errorMessage('bad_request', refusal('op', 'replays are not served here')), false);
          if (m.op === 'stop_replay') return replays.stop(client, m.id);
          if (!isChannelId(m.channel))
            return void ws.send(errorMessage('invalid_channel', refusal('channel', CHANNEL_ID_RULE), m.channel), false);
          return replays.start(client, m);
        }
        let hub = hubs.captions;
        if (m.channel.startsWith(USER_PREFIX)) {
          if (!hubs.users)
            return void ws.send(errorMessage('invalid_channel', refusal('channel', 'user channels are not served here'), m.channel), false);
          if (m.channel.slice(USER_PREFIX.length) !== ws.getUserData().userId) {
            return void ws.send(
              errorMessage(
                'forbidden',
                refusal('channel', 'a user channel is only for that user (x-userid, or ?token=<user token>)'),
                m.channel,
              ),
              false,
            );
          }
          hub = hubs.users;
        }
        if (m.op === 'subscribe') hub.subscribe(client, m.channel, m.since, m.batch);
        else hub.unsubscribe(client, m.channel);
      },
      close: (ws) => {
        sockets.delete(ws);
        const socket = ws.getUserData().socket;
        if (socket) {
          // uWS took it off its topics; the hubs' unsubscribes below only bring the counts down.
          socket.gone = true;
          const { client } = socket;
          for (const hub of [hubs.captions, hubs.users]) hub?.disconnect(client);
          hubs.replays?.stopAll(client);
        }
      },
    })
    .get('/healthz', (res) => void res.writeHeader('content-type', 'application/json').end('{"status":"ok"}'))
    .get('/readyz', (res) => {
      let aborted = false;
      res.onAborted(() => (aborted = true));
      void opts.ready().then((ok) => {
        if (!aborted)
          res.cork(() =>
            res.writeStatus(ok ? '200 OK' : '503 Service Unavailable').end(JSON.stringify({ status: ok ? 'ready' : 'unavailable' })),
          );
      });
    })
    .get('/metrics', (res) => {
      let aborted = false;
      res.onAborted(() => (aborted = true));
      void opts.metrics.metrics().then((text) => {
        if (!aborted) res.cork(() => res.writeHeader('content-type', opts.metrics.contentType).end(text));
      });
    })
    .any('/*', (res) => void res.writeStatus('404 Not Found').end('{"error":"not found"}'));

  for (const hub of [hubs.captions, hubs.users]) hub?.publishWith(slices);

  return new Promise((resolve, reject) => {
    app.listen('0.0.0.0', opts.port, (token) => {
      if (!token) return reject(new Error(`fanout cannot listen on port ${opts.port}`));
      resolve({
        port: uWS.us_socket_local_port(token),
        connections: () => sockets.size,
        close: () => {
          for (const ws of [...sockets]) ws.end(CLOSE_RESTART, 'server restarting: reconnect and resubscribe with since');
          uWS.us_listen_socket_close(token);
        },
      });
    });
  });
}
