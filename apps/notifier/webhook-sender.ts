// One webhook attempt: the destination checked at send time (infra/webhook-target.ts) and the
// connection made to the very address that was checked, the body POSTed signed, the whole attempt
// bounded in time, and no more of the answer read than a few KB. 2xx is delivered; anything else
// (another status, a redirect, no answer in time) is a failure to try again, except a destination
// that is not allowed, which stays so.
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { isTargetProblem, resolveWebhookTarget, type HostResolver, type ResolvedAddress } from '../../infra/webhook-target.ts';

/** Bytes of an answer read at most (the rest is not read); errors quote the start of it. */
const MAX_ANSWER_BYTES = 4096;
const QUOTED_CHARS = 200;

export interface WebhookRequest {
  url: string;
  body: string;
  headers: Record<string, string>;
}

export interface WebhookResult {
  status: number | null;
  /** null: delivered (2xx). */
  error: string | null;
  permanent: boolean;
}

export interface WebhookSendOptions {
  allowedHosts: readonly string[];
  timeoutMs: number;
  resolve?: HostResolver;
}

/** A lookup that answers only the checked address, whatever the name would resolve to now. */
const pinned =
  (address: ResolvedAddress): LookupFunction =>
  (_host, options, callback) => {
    if ((options as { all?: boolean }).all) (callback as (e: null, a: ResolvedAddress[]) => void)(null, [address]);
    else callback(null, address.address, address.family);
  };

export async function sendWebhook(req: WebhookRequest, opts: WebhookSendOptions): Promise<WebhookResult> {
  const target = await resolveWebhookTarget(req.url, opts.allowedHosts, opts.resolve);
  if (isTargetProblem(target)) {
    return { status: null, error: `webhook.url: ${target.problem}`, permanent: target.kind === 'refused' };
  }
  const { url, address } = target;
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<WebhookResult>((resolve) => {
    let settled = false;
    const settle = (result: WebhookResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy();
      resolve(result);
    };
    const request = client.request(url, {
      method: 'POST',
      lookup: pinned(address),
      agent: false, // a connection per attempt: nothing pooled under a name that may resolve elsewhere later
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(req.body),
        'user-agent': 'castlog-webhooks/1',
        ...req.headers,
      },
    });
    const timer = setTimeout(
      () => settle({ status: null, error: `no complete answer within ${opts.timeoutMs} ms`, permanent: false }),
      opts.timeoutMs,
    );
    request.on('error', (err: NodeJS.ErrnoException) =>
      settle({ status: null, error: `${err.code ?? 'error'}: ${err.message}`.slice(0, 500), permanent: false }),
    );
    request.on('response', (res) => {
      const status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () => {
        const answer = Buffer.concat(chunks).toString('utf8').slice(0, QUOTED_CHARS).replace(/\s+/g, ' ').trim();
        const ok = status >= 200 && status < 300;
        settle({ status, error: ok ? null : `HTTP ${status}${answer ? `: ${answer}` : ''}`, permanent: false });
      };
      res.on('data', (chunk: Buffer) => {
        if (size < MAX_ANSWER_BYTES) chunks.push(chunk.subarray(0, MAX_ANSWER_BYTES - size));
        size += chunk.length;
        if (size >= MAX_ANSWER_BYTES) done(); // enough: the rest is not read
      });
      res.on('end', done);
      res.on('error', done);
    });
    request.end(req.body);
  });
}
