// What the notifier's tests share: a real SMTP server (smtp-server) whose messages are parsed with
// mailparser, a real HTTP receiver of webhooks, and delivery rows as the matcher inserts them.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import type { Db } from '../../projections/database.ts';

/** How a test server answers one message or request: as told, after a pause. */
export interface Answer {
  /** An SMTP reply code for a refusal (4xx, 5xx), or an HTTP status; undefined: accept (250, 200). */
  status?: number;
  delayMs?: number;
  /** Never answer (the sender's timeout must end the attempt). */
  hang?: boolean;
}

export interface ReceivedMail {
  at: number;
  raw: Buffer;
  mail: ParsedMail;
  /** Raw header lines by lower-case name (mailparser folds List-* headers into one object). */
  header: (name: string) => string | undefined;
}

/** A real SMTP server on 127.0.0.1 that keeps and parses every message it accepts. */
export class TestSmtp {
  readonly received: ReceivedMail[] = [];
  /** Messages offered (accepted or not). */
  offered = 0;
  /** Connections that broke (a client that went away mid-message). */
  readonly connectionErrors: Error[] = [];
  answer: (n: number) => Answer = () => ({});
  port = 0;
  private readonly server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData: (stream, _session, callback) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const answer = this.answer(++this.offered);
        if (answer.hang) return;
        setTimeout(() => {
          if (answer.status) return callback(Object.assign(new Error(`refused (${answer.status})`), { responseCode: answer.status }));
          const raw = Buffer.concat(chunks);
          void simpleParser(raw).then((mail) => {
            const lines = new Map(
              mail.headerLines.map((h) => [
                h.key,
                h.line
                  .slice(h.line.indexOf(':') + 1)
                  .replace(/\r?\n\s+/g, ' ')
                  .trim(),
              ]),
            );
            this.received.push({ at: Date.now(), raw, mail, header: (name) => lines.get(name.toLowerCase()) });
            callback();
          });
        }, answer.delayMs ?? 0);
      });
    },
  });

  static async start(): Promise<TestSmtp> {
    const smtp = new TestSmtp();
    // A client gone mid-message (a notifier killed with -9: the restart test's point) is reported
    // by smtp-server as an 'error' event, which unheard would be an uncaught exception here.
    smtp.server.on('error', (err: Error) => smtp.connectionErrors.push(err));
    await new Promise<void>((resolve) => smtp.server.listen(0, '127.0.0.1', resolve));
    smtp.port = (smtp.server.server.address() as AddressInfo).port;
    return smtp;
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.port}`;
  }

  /** Messages to `alertId` (by the header the notifier sets). */
  of(alertId: string): ReceivedMail[] {
    return this.received.filter((m) => m.header('x-castlog-alert') === alertId);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export interface ReceivedHook {
  at: number;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** The answer it was given (0: none). */
  status: number;
}

/** A real HTTP server on 127.0.0.1 that records every webhook request and answers as told. */
export class WebhookReceiver {
  readonly received: ReceivedHook[] = [];
  answer: (hook: ReceivedHook, n: number) => Answer = () => ({});
  port = 0;
  private readonly server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('error', () => undefined); // a sender killed mid-body: nothing was received
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const hook: ReceivedHook = {
        at: Date.now(),
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
        status: 0,
      };
      this.received.push(hook);
      const answer = this.answer(hook, this.received.length);
      if (answer.hang) return;
      setTimeout(() => {
        hook.status = answer.status ?? 200;
        res.writeHead(hook.status, { 'content-type': 'text/plain' }).end(hook.status < 300 ? 'ok' : 'not now');
      }, answer.delayMs ?? 0);
    });
  });

  static async start(): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver();
    receiver.server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
    receiver.port = (receiver.server.address() as AddressInfo).port;
    return receiver;
  }

  url(path = '/hook'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Requests that came to `path`. */
  at(path: string): ReceivedHook[] {
    return this.received.filter((h) => h.path === path);
  }

  /** Requests that came to `path`, once every one of them has been answered (a request is recorded before its answer). */
  answeredAt(path: string): ReceivedHook[] | undefined {
    const hooks = this.at(path);
    return hooks.every((h) => h.status !== 0) ? hooks : undefined;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

let seq = 0;

/** A match of an alert as the matcher records it (the payload's fields). */
export function matchOf(alertId: string, query: string, text: string, extra: { channel?: string; start?: number } = {}) {
  const offset = ++seq;
  const words = query.replace(/"/g, '').split(/\s+/);
  const snippet = text
    .split(/(\s+)/)
    .map((w) => (words.some((q) => q && w.toLowerCase().startsWith(q.toLowerCase())) ? `<mark>${w}</mark>` : w))
    .join('');
  return {
    alertId,
    query,
    channel: extra.channel ?? 'bbc1',
    position: `0:${offset}`,
    station: 'test-station',
    start: extra.start ?? 1_700_000_000_000 + offset * 1000,
    text,
    snippet,
    partition: 0,
    offset,
  };
}

/** The delivery rows one match causes, as the matcher inserts them; returns their ids by kind. */
export async function insertDeliveries(
  db: Db,
  userId: string,
  match: ReturnType<typeof matchOf>,
  to: { email?: string; webhook?: string },
  now = Date.now(),
): Promise<{ email?: number; webhook?: number; cause: string }> {
  const { partition, offset, query, ...data } = match;
  const cause = `alert:${match.alertId}:${partition}:${offset}`;
  const base = { cause, user_id: userId, alert_id: match.alertId, job_id: null, next_attempt_at_ms: now, created_at_ms: now };
  const rows = [
    ...(to.email ? [{ ...base, kind: 'email' as const, target: to.email, payload: JSON.stringify({ ...data, query }) }] : []),
    ...(to.webhook
      ? [
          {
            ...base,
            kind: 'webhook' as const,
            target: to.webhook,
            payload: JSON.stringify({ type: 'AlertMatched', id: cause, alertId: match.alertId, data }),
          },
        ]
      : []),
  ];
  const ids = await db.insertInto('deliveries').values(rows).returning(['id', 'kind']).execute();
  return {
    cause,
    email: ids.find((r) => r.kind === 'email')?.id,
    webhook: ids.find((r) => r.kind === 'webhook')?.id,
  };
}

/** A delivery row as it stands. */
export const deliveryRow = (db: Db, id: number) => db.selectFrom('deliveries').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

/** A delivery's attempts, in order. */
export const attemptsOf = (db: Db, id: number) =>
  db.selectFrom('delivery_attempts').selectAll().where('delivery_id', '=', id).orderBy('attempt').execute();
