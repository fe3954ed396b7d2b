// An encode job's webhook through the real processes (api, relay, projector, worker with ffmpeg,
// notifier): a request with a webhook gets its attempt's EncodeFailed or EncodeCompleted POSTed,
// signed with the job's secret; each once, also when the notifier starts after the request or is
// killed and started again; the owner sees the deliveries, nobody else does.
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobStore } from '../../infra/blobs/blob-store.ts';
import { verifyWebhookSignature, webhookSecret } from '../../infra/signing.ts';
import { WebhookReceiver } from '../support/deliveries.ts';
import { jsonOrUndefined } from '../support/http.ts';
import { SIGNING_SECRET, System, waitFor } from '../support/system.ts';
import { idOf, makeClip, newUserId, sha256, tusUpload } from '../support/uploads.ts';

let sys: System;
let dir: string;
let blobDir: string;
let receiver: WebhookReceiver;

beforeAll(async () => {
  dir = `/tmp/castlog-tests/encode-webhooks-${Date.now()}`;
  blobDir = join(dir, 'blobs');
  await mkdir(dir, { recursive: true });
  receiver = await WebhookReceiver.start();
  sys = await System.create({ BLOB_DIR: blobDir, WORKER_LEASE_MS: '3000', WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' });
  // No notifier yet: the first one starts after the first request was made.
  await Promise.all([sys.start('api'), sys.start('relay'), sys.start('projector'), sys.start('worker')]);
}, 120_000);
afterAll(async () => {
  await sys?.stop();
  await receiver?.close();
  await rm(dir, { recursive: true, force: true });
});

async function call(method: string, path: string, userId: string, body?: unknown) {
  const r = await fetch(sys.api + path, {
    method,
    headers: { 'x-userid': userId, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: jsonOrUndefined(text), text };
}

/** True once the notifier's group has committed every record now in `encodes`. */
async function notifierCaughtUp(): Promise<boolean> {
  const committed = await sys.log.committed('castlog-notifier', 'encodes');
  const ends = await sys.log.offsets('encodes');
  return ends.every(({ partition, low, high }) => high === low || (committed.get(partition) ?? -1) >= high);
}

const hooksAt = (path: string) => receiver.at(path).map((h) => ({ ...h, json: JSON.parse(h.body) }));
const now = () => Math.floor(Date.now() / 1000);

describe('encode webhooks', () => {
  it("POSTs each attempt's EncodeFailed and EncodeCompleted, signed with the job's secret, once each", async () => {
    const user = newUserId();
    const clip = join(dir, 'clip.mp4');
    await makeClip(clip, { seconds: 1, width: 160, height: 120 });
    const bytes = readFileSync(clip);
    const uploadId = idOf(await tusUpload(sys.api, bytes, { userId: user, filename: 'clip.mp4' }));
    // The stored file goes bad: the first attempt fails at its probe.
    const stored = new BlobStore(blobDir).pathOf(sha256(bytes));
    await writeFile(stored, bytes.subarray(0, bytes.length >> 1));

    const first = await call('POST', '/v1/encodes', user, {
      uploadId,
      options: { preset: 'ultrafast' },
      webhook: { url: receiver.url('/first') },
    });
    expect(first.status, first.text).toBe(202);
    const { jobId } = first.body;
    const secret = webhookSecret(SIGNING_SECRET, `encode:${jobId}`);
    expect(first.body.webhook).toEqual({ url: receiver.url('/first'), secret });
    await waitFor(
      'the first attempt to fail',
      async () => (await call('GET', `/v1/encodes/${jobId}`, user)).body?.status === 'failed',
      60_000,
    );
    await sys.start('notifier');

    const [failed] = await waitFor('EncodeFailed at the webhook', () => hooksAt('/first').length >= 1 && hooksAt('/first'), 30_000);
    expect(failed!.headers['castlog-event']).toBe('EncodeFailed');
    expect(verifyWebhookSignature(secret, failed!.body, String(failed!.headers['castlog-signature']), now())).toBe(true);
    expect(failed!.json).toMatchObject({
      type: 'EncodeFailed',
      id: `encode:${jobId}:1:EncodeFailed`,
      jobId,
      data: { jobId, attempt: 1, status: 'failed', step: 'probe', reason: expect.stringMatching(/^probe: /) },
    });

    // Asked again with the file whole, and another webhook: that attempt's outcome goes there.
    await writeFile(stored, bytes);
    const second = await call('POST', '/v1/encodes', user, {
      uploadId,
      options: { preset: 'ultrafast' },
      webhook: { url: receiver.url('/second') },
    });
    expect(second.status, second.text).toBe(202);
    expect(second.body).toMatchObject({ jobId, attempt: 2 });
    const [completed] = await waitFor(
      'EncodeCompleted at the webhook',
      () => hooksAt('/second').length >= 1 && hooksAt('/second'),
      90_000,
      200,
    );
    expect(completed!.headers['castlog-event']).toBe('EncodeCompleted');
    expect(verifyWebhookSignature(secret, completed!.body, String(completed!.headers['castlog-signature']), now())).toBe(true);
    // The webhook may arrive before the read model has the completion.
    const job = await waitFor('the job completed in the read model', async () => {
      const body = (await call('GET', `/v1/encodes/${jobId}`, user)).body;
      return body?.status === 'completed' && body;
    });
    expect(completed!.json).toEqual({
      type: 'EncodeCompleted',
      id: `encode:${jobId}:2:EncodeCompleted`,
      jobId,
      data: {
        jobId,
        attempt: 2,
        status: 'completed',
        output: { size: job.output.size, container: 'mp4', url: `http://localhost:${sys.apiPort}/v1/encodes/${jobId}/output` },
        at: expect.any(Number),
      },
    });

    // The owner sees both deliveries, sent, once each; nobody else sees any.
    const listed = await waitFor('both deliveries sent', async () => {
      const r = await call('GET', `/v1/deliveries?jobId=${jobId}`, user);
      return r.body.items.length === 2 && r.body.items.every((d: { state: string }) => d.state === 'sent') && r.body.items;
    });
    expect(listed.map((d: { cause: string }) => d.cause)).toEqual([`encode:${jobId}:1:EncodeFailed`, `encode:${jobId}:2:EncodeCompleted`]);
    expect((await call('GET', `/v1/deliveries?jobId=${jobId}`, newUserId())).body.items).toEqual([]);
    expect(hooksAt('/first')).toHaveLength(1);
    expect(hooksAt('/second')).toHaveLength(1);
  }, 180_000);

  it('is sent once when the notifier was killed and started again meanwhile', async () => {
    const user = newUserId();
    const clip = join(dir, 'other.mp4');
    await makeClip(clip, { seconds: 1, width: 176, height: 144 });
    const uploadId = idOf(await tusUpload(sys.api, readFileSync(clip), { userId: user, filename: 'other.mp4' }));
    await sys.kill('notifier');
    const asked = await call('POST', '/v1/encodes', user, {
      uploadId,
      options: { preset: 'ultrafast' },
      webhook: { url: receiver.url('/restart') },
    });
    expect(asked.status, asked.text).toBe(202);
    const { jobId } = asked.body;
    await waitFor(
      'the encode to complete',
      async () => (await call('GET', `/v1/encodes/${jobId}`, user)).body?.status === 'completed',
      90_000,
      200,
    );
    await sys.start('notifier');
    await waitFor('the webhook sent', async () => {
      const row = await sys.db.selectFrom('deliveries').select('state').where('job_id', '=', jobId).executeTakeFirst();
      return row?.state === 'sent';
    });
    // Once more: a restart reads the topic on from where the group was, and adds no second delivery.
    await sys.kill('notifier');
    await sys.start('notifier');
    await waitFor('the notifier group to have read all of encodes', notifierCaughtUp);
    const rows = await sys.db.selectFrom('deliveries').select(['cause', 'state']).where('job_id', '=', jobId).execute();
    expect(rows).toEqual([{ cause: `encode:${jobId}:1:EncodeCompleted`, state: 'sent' }]);
    expect(hooksAt('/restart').map((h) => h.json.id)).toEqual([`encode:${jobId}:1:EncodeCompleted`]);
  }, 180_000);
});
