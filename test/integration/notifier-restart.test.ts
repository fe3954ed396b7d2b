// Once per cause across a crash: the notifier is killed (SIGKILL) while e-mails and webhooks stream
// out to slow receivers and more matches keep arriving, then started again beside a second copy.
// No match is e-mailed twice and no webhook cause is POSTed twice; every delivery is sent, except
// the ones the dead notifier was sending, which are marked interrupted (they may or may not have
// arrived), reported to their owner, not sent again by themselves, and sent when redelivered.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliveryRow, insertDeliveries, matchOf, TestSmtp, WebhookReceiver } from '../support/deliveries.ts';
import { jsonOf, rawRequest } from '../support/http.ts';
import { System, waitFor } from '../support/system.ts';
import { newUserId } from '../support/uploads.ts';

const ALERTS = 6;
const ROUNDS = 30;
let sys: System;
let copy: System;
let smtp: TestSmtp;
let receiver: WebhookReceiver;

beforeAll(async () => {
  smtp = await TestSmtp.start();
  receiver = await WebhookReceiver.start();
  const env = { SMTP_URL: smtp.url, WEBHOOK_ALLOWED_HOSTS: '127.0.0.1', ALERT_EMAIL_INTERVAL: '200', DELIVERY_RETRY_BASE_MS: '100' };
  sys = await System.create(env);
  copy = await System.sharing(sys);
  Object.assign(copy.env, env);
  await sys.start('api');
}, 120_000);
afterAll(async () => {
  await copy?.stop();
  await sys?.stop();
  await smtp?.close();
  await receiver?.close();
});

const call = async (method: string, path: string, user: string, body?: unknown) => {
  const headers = { 'x-userid': user, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
  const r = await rawRequest(sys.apiPort, method, path, headers, body === undefined ? undefined : JSON.stringify(body));
  return { status: r.status, body: jsonOf(r), text: r.body };
};

describe('a notifier killed mid-stream', () => {
  it('sends nothing twice and loses nothing but what it was sending, which is reported', async () => {
    const user = newUserId();
    const alerts: string[] = [];
    for (let i = 0; i < ALERTS; i++) {
      const r = await call('POST', '/v1/alerts', user, {
        query: `topic${i}`,
        email: `desk${i}@example.org`,
        webhook: { url: receiver.url() },
      });
      expect(r.status, r.text).toBe(201);
      alerts.push(r.body.alertId);
    }
    // Slow receivers, so sends are in flight when the notifier dies.
    receiver.answer = () => ({ delayMs: 120 });
    smtp.answer = () => ({ delayMs: 150 });
    await sys.start('notifier');

    // Matches keep arriving all along, as the matcher would record them.
    const inserted: { cause: string; text: string; email: number; webhook: number }[] = [];
    const inserting = (async () => {
      for (let round = 0; round < ROUNDS; round++) {
        for (const [i, alertId] of alerts.entries()) {
          const text = `topic${i} story ${round}`;
          const ids = await insertDeliveries(sys.db, user, matchOf(alertId, `topic${i}`, text), {
            email: `desk${i}@example.org`,
            webhook: receiver.url(),
          });
          inserted.push({ cause: ids.cause, text, email: ids.email!, webhook: ids.webhook! });
        }
        await new Promise((r) => setTimeout(r, 60));
      }
    })();

    // Kill it while the receiver holds a request it has not answered yet.
    await waitFor('webhooks under way', () => receiver.received.length >= 30 && receiver.received.some((h) => h.status === 0), 30_000, 5);
    await sys.kill('notifier');
    const atKill = receiver.received.length;
    // Another copy and the restarted one share what is left.
    await Promise.all([sys.start('notifier'), copy.start('notifier')]);
    await inserting;

    const all = inserted.flatMap((d) => [d.email, d.webhook]);
    const rows = await waitFor(
      'every delivery to be settled',
      async () => {
        const rows = await sys.db
          .selectFrom('deliveries')
          .select(['id', 'kind', 'cause', 'state', 'last_error'])
          .where('id', 'in', all)
          .execute();
        return rows.every((r) => r.state === 'sent' || r.state === 'interrupted') && rows;
      },
      90_000,
      200,
    );
    expect(rows).toHaveLength(all.length);
    expect(receiver.received.length).toBeGreaterThan(atKill); // the stream went on after the restart

    // Webhooks: each cause POSTed at most once; every one sent was received exactly once.
    const posted = new Map<string, number>();
    for (const h of receiver.received) {
      const id = JSON.parse(h.body).id as string;
      posted.set(id, (posted.get(id) ?? 0) + 1);
    }
    expect([...posted.values()].filter((n) => n > 1)).toEqual([]);
    const hooks = rows.filter((r) => r.kind === 'webhook');
    for (const r of hooks.filter((r) => r.state === 'sent')) expect(posted.get(r.cause), r.cause).toBe(1);
    const interruptedHooks = hooks.filter((r) => r.state === 'interrupted');
    // The request the receiver held when the notifier died is one of them.
    expect(interruptedHooks.length).toBeGreaterThanOrEqual(1);

    // E-mails: each match in at most one e-mail; every one sent in exactly one.
    const texts = smtp.received.map((m) => m.mail.text ?? '');
    const mailsWith = (text: string) => texts.filter((t) => t.includes(`${text}\n`)).length;
    const emails = rows.filter((r) => r.kind === 'email');
    for (const d of inserted) {
      const row = emails.find((r) => r.id === d.email)!;
      const n = mailsWith(d.text);
      if (row.state === 'sent') expect(n, d.text).toBe(1);
      else expect(n, d.text).toBeLessThanOrEqual(1);
    }

    // The interrupted are reported to their owner, with why.
    const interrupted = rows.filter((r) => r.state === 'interrupted');
    for (const r of interrupted) expect(r.last_error).toMatch(/^interrupted: /);
    const listed = await call('GET', `/v1/deliveries?alertId=${alerts[0]}&limit=100`, user);
    expect(listed.status).toBe(200);
    const reported = listed.body.items.filter((d: { state: string }) => d.state === 'interrupted');
    expect(reported.map((d: { id: number }) => d.id).sort()).toEqual(
      interrupted
        .filter((r) => r.cause.startsWith(`alert:${alerts[0]}:`))
        .map((r) => r.id)
        .sort(),
    );

    // Redelivered on request, and then it is sent.
    const one = interruptedHooks[0]!;
    const again = await call('POST', `/v1/deliveries/${one.id}/redeliver`, user);
    expect(again.status, again.text).toBe(202);
    await waitFor('the redelivered webhook', async () => (await deliveryRow(sys.db, one.id)).state === 'sent');
    expect(receiver.received.filter((h) => JSON.parse(h.body).id === one.cause).at(-1)!.status).toBe(200);
  });
});
