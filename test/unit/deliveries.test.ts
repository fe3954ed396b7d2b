// The notifier's pure parts: when a failed delivery is tried again, what an alert e-mail says (and
// that a payload cannot put markup into it), and the bodies webhooks receive.
import { describe, expect, it } from 'vitest';
import { alertEmail, safeSnippet, type EmailMatch } from '../../apps/notifier/email-message.ts';
import { encodeWebhookPayload } from '../../apps/notifier/encode-webhooks.ts';
import { webhookBody } from '../../apps/notifier/dispatcher.ts';
import { backoffMs, nextAttemptAt, retryUntil } from '../../domain/deliveries/retry-schedule.ts';

const policy = { baseMs: 10_000, maxMs: 3600_000, windowMs: 24 * 3600_000 };

describe('retry schedule', () => {
  it('doubles the pause from 10 s with each failure, up to an hour', () => {
    expect([1, 2, 3, 4, 9, 10, 11, 50].map((n) => backoffMs(policy, n))).toEqual([
      10_000, 20_000, 40_000, 80_000, 2_560_000, 3600_000, 3600_000, 3600_000,
    ]);
  });

  it('tries for 24 hours, the last try at the end of the window, then no more', () => {
    const created = 1_000_000;
    const until = retryUntil(policy, created, null);
    expect(until).toBe(created + 24 * 3600_000);
    expect(nextAttemptAt(policy, 1, created, until)).toBe(created + 10_000);
    expect(nextAttemptAt(policy, 20, until - 60_000, until)).toBe(until);
    expect(nextAttemptAt(policy, 20, until, until)).toBeUndefined();
    // Over a whole window, with every attempt failing at once: about 30 attempts, never one after it.
    let now = created;
    let attempts = 0;
    for (let next: number | undefined = created; next !== undefined; next = nextAttemptAt(policy, attempts, now, until)) {
      now = next;
      attempts++;
    }
    expect(now).toBe(until);
    expect(attempts).toBeGreaterThan(25);
    expect(attempts).toBeLessThan(40);
  });

  it('a redeliver is a series of its own', () => {
    expect(retryUntil(policy, 0, 5_000_000)).toBe(5_000_000);
  });
});

describe('alert e-mail', () => {
  const match = (text: string, snippet: string, start = Date.UTC(2026, 10, 29, 19, 30)): EmailMatch => ({
    alertId: 'a1',
    query: 'prime minister',
    channel: 'bbc1',
    position: '4:17',
    station: 'bbc-capture',
    start,
    text,
    snippet,
  });
  const links = { alertsPage: 'https://castlog.example/alerts', unsubscribe: 'https://castlog.example/v1/unsubscribe?token=abc.def' };

  it('names the query, the match, the alerts page and the unsubscribe link, in text and HTML', () => {
    const m = alertEmail([match('THE PRIME MINISTER SAID', 'THE <mark>PRIME</mark> <mark>MINISTER</mark> SAID')], links);
    expect(m.subject).toBe('Alert "prime minister": bbc1 at 2026-11-29 19:30:00 UTC');
    expect(m.text).toContain('bbc1 · 2026-11-29 19:30:00 UTC · bbc-capture · position 4:17\n  THE PRIME MINISTER SAID\n');
    expect(m.text).toContain('https://castlog.example/alerts');
    expect(m.text).toContain('https://castlog.example/v1/unsubscribe?token=abc.def');
    expect(m.html).toContain('THE <mark>PRIME</mark> <mark>MINISTER</mark> SAID');
    expect(m.html).toContain('<a href="https://castlog.example/alerts">');
    expect(m.html).toContain('&quot;prime minister&quot;');
  });

  it('a digest lists every match, in order', () => {
    const m = alertEmail([match('one', 'one'), match('two', 'two'), match('three', 'three')], links);
    expect(m.subject).toBe('Alert "prime minister": 3 matches');
    expect(m.text.indexOf('  one\n')).toBeLessThan(m.text.indexOf('  two\n'));
    expect(m.text.indexOf('  two\n')).toBeLessThan(m.text.indexOf('  three\n'));
  });

  it('keeps only <mark> of a snippet: anything else is shown as text', () => {
    expect(safeSnippet('a <mark>b</mark> &amp; c')).toBe('a <mark>b</mark> &amp; c');
    expect(safeSnippet('<script>alert(1)</script><mark>x</mark>')).toBe('&lt;script&gt;alert(1)&lt;/script&gt;<mark>x</mark>');
    expect(safeSnippet('<img src=x onerror=alert(1)>')).toBe('&lt;img src=x onerror=alert(1)&gt;');
    expect(safeSnippet('<mark onclick="x">y</mark>')).toBe('&lt;mark onclick=&quot;x&quot;&gt;y</mark>');
    const html = alertEmail([match('t', '<b>bold</b> <mark>t</mark>')], links).html;
    expect(html).not.toContain('<b>');
  });
});

describe('webhook bodies', () => {
  it('put type and id first, whatever order the stored payload has', () => {
    const body = webhookBody({ data: { x: 1 }, alertId: 'a', id: 'alert:a:0:1', type: 'AlertMatched' });
    expect(body).toBe('{"type":"AlertMatched","id":"alert:a:0:1","data":{"x":1},"alertId":"a"}');
  });

  it("an encode's outcome: completed with the output's URL, failed with the step and reason", () => {
    const at = 1_800_000_000_000;
    const completed = encodeWebhookPayload(
      { type: 'EncodeCompleted', data: { jobId: 'j', userId: 'u', outputSha256: 'ab', size: 123, container: 'mkv', at } },
      'encode:j:2:EncodeCompleted',
      2,
      'https://castlog.example',
    );
    expect(completed).toEqual({
      type: 'EncodeCompleted',
      id: 'encode:j:2:EncodeCompleted',
      jobId: 'j',
      data: {
        jobId: 'j',
        attempt: 2,
        status: 'completed',
        output: { size: 123, container: 'mkv', url: 'https://castlog.example/v1/encodes/j/output' },
        at,
      },
    });
    const failed = encodeWebhookPayload(
      { type: 'EncodeFailed', data: { jobId: 'j', userId: 'u', step: 'probe', reason: 'probe: bad', stderrTail: 'x', at } },
      'encode:j:1:EncodeFailed',
      1,
      'https://castlog.example',
    );
    expect(failed).toEqual({
      type: 'EncodeFailed',
      id: 'encode:j:1:EncodeFailed',
      jobId: 'j',
      data: { jobId: 'j', attempt: 1, status: 'failed', step: 'probe', reason: 'probe: bad', at },
    });
  });
});
