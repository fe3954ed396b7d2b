// Alert e-mails through the real notifier to a real SMTP server (smtp-server in this test), each
// message parsed with mailparser: the first match at once, later ones gathered into one digest
// after ALERT_EMAIL_INTERVAL, every match e-mailed once; the signed one-click unsubscribe link
// (RFC 8058) works as a mail client uses it — GET shows a button and changes nothing, POST stops
// the alert's e-mails through the decider (AlertEmailStopped) and what was waiting is not sent;
// an SMTP server's "try later" is tried again, its refusal is not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readUnsubscribeToken, unsubscribeToken } from '../../infra/signing.ts';
import { attemptsOf, deliveryRow, insertDeliveries, matchOf, TestSmtp } from '../support/deliveries.ts';
import { jsonOf, rawRequest } from '../support/http.ts';
import { SIGNING_SECRET, System, waitFor } from '../support/system.ts';
import { newUserId } from '../support/uploads.ts';

const INTERVAL_MS = 2500;
/** How much later an e-mail may reach the SMTP server than the notifier sent it, on a loaded machine. */
const SMTP_SLACK_MS = 300;
let sys: System;
let smtp: TestSmtp;

beforeAll(async () => {
  smtp = await TestSmtp.start();
  sys = await System.create({
    SMTP_URL: smtp.url,
    ALERT_EMAIL_INTERVAL: String(INTERVAL_MS),
    DELIVERY_RETRY_BASE_MS: '200',
    DELIVERY_RETRY_MAX_MS: '400',
    MAIL_FROM: 'castlog test <alerts@castlog.test>',
  });
  sys.env.PUBLIC_API_URL = sys.api;
  await Promise.all([sys.start('api'), sys.start('notifier')]);
}, 120_000);
afterAll(async () => {
  await sys?.stop();
  await smtp?.close();
});

const call = async (method: string, path: string, user?: string, body?: unknown, headers: Record<string, string> = {}) => {
  const r = await rawRequest(
    sys.apiPort,
    method,
    path,
    { ...(user ? { 'x-userid': user } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  );
  return { status: r.status, body: jsonOf(r), text: r.body, headers: r.headers };
};

async function createAlert(user: string, query: string, email = 'desk@example.org'): Promise<string> {
  const r = await call('POST', '/v1/alerts', user, { query, email });
  expect(r.status, r.text).toBe(201);
  return r.body.alertId;
}

const sentOrFailed = (id: number) =>
  waitFor(`delivery ${id} to be done`, async () => {
    const row = await deliveryRow(sys.db, id);
    return (row.state === 'sent' || row.state === 'failed') && row;
  });

/** The one-click link of a received e-mail, from its List-Unsubscribe header. */
const unsubscribeLink = (m: { header: (name: string) => string | undefined }) =>
  /^<([^>]+)>$/.exec(m.header('list-unsubscribe') ?? '')?.[1];

describe('alert e-mail', () => {
  it('sends the first match at once: text and HTML, the query, the snippet, the alerts page and a signed unsubscribe link', async () => {
    const user = newUserId();
    const alertId = await createAlert(user, 'prime minister');
    const { email } = await insertDeliveries(sys.db, user, matchOf(alertId, 'prime minister', 'THE PRIME MINISTER SAID TODAY'), {
      email: 'desk@example.org',
    });
    const [mail] = await waitFor('the e-mail', () => smtp.of(alertId).length === 1 && smtp.of(alertId));
    expect(mail!.mail.subject).toContain('prime minister');
    expect(mail!.mail.to).toMatchObject({ text: 'desk@example.org' });
    expect(mail!.mail.from?.value).toEqual([{ name: 'castlog test', address: 'alerts@castlog.test' }]);
    expect(mail!.mail.text).toContain('THE PRIME MINISTER SAID TODAY');
    expect(mail!.mail.text).toContain(`${sys.api}/alerts`);
    expect(mail!.mail.html).toContain('<mark>PRIME</mark> <mark>MINISTER</mark>');
    expect(mail!.mail.html).toContain(`href="${sys.api}/alerts"`);
    // RFC 8058: a URI to POST to, and the key/value a mail client posts.
    expect(mail!.header('list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');
    const link = unsubscribeLink(mail!);
    expect(link).toMatch(new RegExp(`^${sys.api}/v1/unsubscribe\\?token=`));
    expect(readUnsubscribeToken(SIGNING_SECRET, new URL(link!).searchParams.get('token')!)).toEqual({ userId: user, alertId });

    const row = await sentOrFailed(email!);
    expect(row).toMatchObject({ state: 'sent', attempts: 1, last_error: null });
    expect(await attemptsOf(sys.db, email!)).toMatchObject([{ attempt: 1, status: 250, error: null }]);
  });

  it('gathers the matches of the interval into one digest, and e-mails each match once', async () => {
    const user = newUserId();
    const alertId = await createAlert(user, 'weather');
    const first = await insertDeliveries(sys.db, user, matchOf(alertId, 'weather', 'weather warning for the north'), {
      email: 'desk@example.org',
    });
    await waitFor('the first e-mail', () => smtp.of(alertId).length === 1);
    const later = [];
    for (const text of ['more weather at ten', 'weather: snow', 'the weather tomorrow']) {
      later.push(await insertDeliveries(sys.db, user, matchOf(alertId, 'weather', text), { email: 'desk@example.org' }));
    }
    const [one, digest] = await waitFor('the digest', () => smtp.of(alertId).length >= 2 && smtp.of(alertId));
    // Not before the interval was over, and all three in it. Times are when the SMTP server got
    // each message, so an earlier message delivered slowly on a loaded machine shortens the gap a
    // little: SMTP_SLACK_MS allows for that (a digest sent early would come about INTERVAL_MS early).
    expect(digest!.at - one!.at).toBeGreaterThanOrEqual(INTERVAL_MS - SMTP_SLACK_MS);
    expect(digest!.mail.subject).toContain('3 matches');
    for (const text of ['more weather at ten', 'weather: snow', 'the weather tomorrow']) expect(digest!.mail.text).toContain(text);
    expect(digest!.mail.text).not.toContain('weather warning for the north');
    for (const { email } of [first, ...later]) expect(await sentOrFailed(email!)).toMatchObject({ state: 'sent', attempts: 1 });
    // A later match, once the next interval is over, is an e-mail of its own; nothing is e-mailed twice.
    const last = await insertDeliveries(sys.db, user, matchOf(alertId, 'weather', 'weather, last'), { email: 'desk@example.org' });
    await sentOrFailed(last.email!);
    const mails = smtp.of(alertId);
    expect(mails).toHaveLength(3);
    expect(mails[2]!.at - mails[1]!.at).toBeGreaterThanOrEqual(INTERVAL_MS - SMTP_SLACK_MS);
    const bodies = mails.map((m) => m.mail.text ?? '');
    for (const text of ['weather warning for the north', 'more weather at ten', 'weather: snow', 'the weather tomorrow', 'weather, last']) {
      expect(
        bodies.filter((b) => b.includes(text)),
        text,
      ).toHaveLength(1);
    }
  });

  it('unsubscribes with one click: GET shows a button and changes nothing, POST stops the e-mails', async () => {
    const user = newUserId();
    const alertId = await createAlert(user, 'election');
    await insertDeliveries(sys.db, user, matchOf(alertId, 'election', 'election night'), { email: 'desk@example.org' });
    const [mail] = await waitFor('the e-mail', () => smtp.of(alertId).length === 1 && smtp.of(alertId));
    const link = new URL(unsubscribeLink(mail!)!);
    const target = `${link.pathname}${link.search}`;
    // A match that waits out the interval when the user unsubscribes.
    const waiting = await insertDeliveries(sys.db, user, matchOf(alertId, 'election', 'election results'), { email: 'desk@example.org' });

    const page = await call('GET', target, undefined, undefined, { accept: 'text/html' });
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.text).toContain('election');
    expect(page.text).toMatch(/<form method="post" action="\/v1\/unsubscribe\?token=[^"]+">/);
    expect(page.text).toContain('name="List-Unsubscribe" value="One-Click"');
    expect((await sys.storedEvents(`alerts-${user}`)).map((e) => e.type)).toEqual(['AlertCreated']);

    // As a mail client sends it (RFC 8058): the form body, no cookies, no credentials.
    const stop = await call('POST', target, undefined, 'List-Unsubscribe=One-Click', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(stop.status, stop.text).toBe(200);
    expect(stop.body).toEqual({ alertId, emailStopped: true });
    expect((await sys.storedEvents(`alerts-${user}`)).map((e) => e.type)).toEqual(['AlertCreated', 'AlertEmailStopped']);
    expect(await deliveryRow(sys.db, waiting.email!)).toMatchObject({ state: 'failed', last_error: 'cancelled: unsubscribed' });
    const alert = await call('GET', `/v1/alerts/${alertId}`, user);
    expect(alert.body.email).toBeNull();

    // A match the matcher recorded before it heard of the unsubscribe: the notifier does not send it.
    const late = await insertDeliveries(sys.db, user, matchOf(alertId, 'election', 'election recount'), { email: 'desk@example.org' });
    await sys.db.updateTable('alert_email_pacing').set({ next_email_at_ms: 0 }).where('alert_id', '=', alertId).execute();
    expect(await sentOrFailed(late.email!)).toMatchObject({ state: 'failed', last_error: 'cancelled: unsubscribed' });
    expect(smtp.of(alertId)).toHaveLength(1);

    // The button (a browser's form post) and a second click: no error, nothing more decided.
    const again = await call('POST', target, undefined, 'List-Unsubscribe=One-Click', {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'text/html',
    });
    expect(again.status).toBe(200);
    expect(again.text).toContain('E-mails stopped');
    expect((await sys.storedEvents(`alerts-${user}`)).map((e) => e.type)).toEqual(['AlertCreated', 'AlertEmailStopped']);
    const after = await call('GET', target, undefined, undefined, { accept: 'text/html' });
    expect(after.text).toContain('E-mails are stopped');
  });

  it('takes the multipart/form-data body mail clients may send', async () => {
    const user = newUserId();
    const alertId = await createAlert(user, 'budget');
    const token = unsubscribeToken(SIGNING_SECRET, user, alertId);
    const boundary = 'xYzZY';
    const body = `--${boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--${boundary}--\r\n`;
    const r = await call('POST', `/v1/unsubscribe?token=${token}`, undefined, body, {
      'content-type': `multipart/form-data; boundary=${boundary}`,
    });
    expect(r.status, r.text).toBe(200);
    expect((await sys.storedEvents(`alerts-${user}`)).map((e) => e.type)).toEqual(['AlertCreated', 'AlertEmailStopped']);
  });

  it('refuses a link that is not ours and a POST without the one-click body, naming the field, changing nothing', async () => {
    const user = newUserId();
    const alertId = await createAlert(user, 'strike');
    const token = unsubscribeToken(SIGNING_SECRET, user, alertId);
    const forged = unsubscribeToken('another-secret-of-at-least-32-bytes-long', user, alertId);
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const cases: [string, string, string | undefined, Record<string, string>, string][] = [
      ['GET', '/v1/unsubscribe', undefined, {}, 'token'],
      ['GET', `/v1/unsubscribe?token=${forged}`, undefined, {}, 'token'],
      ['GET', `/v1/unsubscribe?token=${token.slice(0, -2)}`, undefined, {}, 'token'],
      ['POST', `/v1/unsubscribe?token=${forged}`, 'List-Unsubscribe=One-Click', form, 'token'],
      ['POST', `/v1/unsubscribe?token=${token}`, undefined, {}, 'List-Unsubscribe'],
      ['POST', `/v1/unsubscribe?token=${token}`, 'List-Unsubscribe=Yes', form, 'List-Unsubscribe'],
      [
        'POST',
        `/v1/unsubscribe?token=${token}`,
        '{"List-Unsubscribe":"One-Click"}',
        { 'content-type': 'application/json' },
        'List-Unsubscribe',
      ],
      ['GET', `/v1/unsubscribe?token=${token}&extra=1`, undefined, {}, 'extra'],
    ];
    for (const [method, path, body, headers, field] of cases) {
      const r = await call(method, path, undefined, body, headers);
      expect(r.status, `${method} ${path}: ${r.text}`).toBe(400);
      expect(r.body.field, `${method} ${path}`).toBe(field);
    }
    expect((await sys.storedEvents(`alerts-${user}`)).map((e) => e.type)).toEqual(['AlertCreated']);
  });

  it('tries again when the SMTP server says "try later", and gives up when it refuses', async () => {
    const user = newUserId();
    const later = await createAlert(user, 'storm');
    const refused = await createAlert(user, 'flood', 'nobody@example.org');
    // The next message offered is refused as told; the others are accepted.
    const refusals = new Map<number, number>();
    smtp.answer = (n) => ({ status: refusals.get(n) });
    refusals.set(smtp.offered + 1, 451);
    const a = await insertDeliveries(sys.db, user, matchOf(later, 'storm', 'storm coming'), { email: 'desk@example.org' });
    expect(await sentOrFailed(a.email!)).toMatchObject({ state: 'sent', attempts: 2 });
    const tried = await attemptsOf(sys.db, a.email!);
    expect(tried.map((t) => t.status)).toEqual([451, 250]);
    expect(tried[0]!.error).toMatch(/SMTP/);
    // The retry waited its backoff (DELIVERY_RETRY_BASE_MS).
    expect(tried[1]!.at_ms - tried[0]!.at_ms).toBeGreaterThanOrEqual(200);

    refusals.set(smtp.offered + 1, 550);
    const b = await insertDeliveries(sys.db, user, matchOf(refused, 'flood', 'flood warning'), { email: 'nobody@example.org' });
    const row = await sentOrFailed(b.email!);
    expect(row).toMatchObject({ state: 'failed', attempts: 1 });
    expect(row.last_error).toMatch(/SMTP/);
    expect(smtp.of(refused)).toHaveLength(0);
    smtp.answer = () => ({});
  });

  it('e-mails nothing more for a deleted alert', async () => {
    const user = newUserId();
    const alertId = await createAlert(user, 'harbour');
    expect((await call('DELETE', `/v1/alerts/${alertId}`, user)).status).toBe(204);
    const { email } = await insertDeliveries(sys.db, user, matchOf(alertId, 'harbour', 'harbour closed'), { email: 'desk@example.org' });
    expect(await sentOrFailed(email!)).toMatchObject({ state: 'failed', last_error: 'cancelled: the alert was deleted' });
    expect(smtp.of(alertId)).toHaveLength(0);
  });
});
