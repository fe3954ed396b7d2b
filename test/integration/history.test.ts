// Caption history from the read model: channel list and paginated, filtered captions.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { System, fragment, waitFor } from '../support/system.ts';

let sys: System;
beforeAll(async () => {
  sys = await System.create();
  await Promise.all([sys.start('api'), sys.start('projector')]);
  const key = await sys.stationKey('history-station');
  await sys.postJson(
    'hist.one',
    key,
    Array.from({ length: 7 }, (_, i) => fragment(i + 1, `h${i + 1}`)),
  );
  await sys.postJson('hist.two', key, [fragment(1, 'other')]);
  await waitFor('rows', async () => (await sys.fragments('hist.one')).length === 7 && (await sys.fragments('hist.two')).length === 1);
});
afterAll(() => sys?.stop());

describe('GET /v1/channels', () => {
  it('lists channels with their last fragment time and count', async () => {
    const r = await sys.get('/v1/channels');
    expect(r.status).toBe(200);
    expect(r.body.channels).toEqual([
      { id: 'hist.one', lastFragmentAt: fragment(7).start, fragmentCount: 7, lastPosition: expect.stringMatching(/^\d+:\d+$/) },
      { id: 'hist.two', lastFragmentAt: fragment(1).start, fragmentCount: 1, lastPosition: expect.stringMatching(/^\d+:\d+$/) },
    ]);
  });
});

describe('GET /v1/channels/{channel}/captions', () => {
  it('pages through every fragment in order with the next cursor', async () => {
    const texts: string[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const r = await sys.get(`/v1/channels/hist.one/captions?limit=3${after ? `&after=${after}` : ''}`);
      expect(r.status).toBe(200);
      texts.push(...r.body.items.map((i: any) => i.text));
      after = r.body.next;
      pages++;
    } while (after);
    expect(texts).toEqual(['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7']);
    expect(pages).toBe(3);
  });

  it('filters by time, as milliseconds or ISO dates', async () => {
    const from = fragment(3).start;
    const to = fragment(6).start;
    const ms = await sys.get(`/v1/channels/hist.one/captions?from=${from}&to=${to}`);
    expect(ms.body.items.map((i: any) => i.seq)).toEqual([3, 4, 5]);
    const iso = await sys.get(`/v1/channels/hist.one/captions?from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`);
    expect(iso.body.items.map((i: any) => i.seq)).toEqual([3, 4, 5]);
    expect(ms.body.items[0]).toEqual({
      position: expect.any(String),
      station: 'history-station',
      seq: 3,
      text: 'h3',
      start: fragment(3).start,
      end: fragment(3).end,
      mode: null,
      lang: null,
    });
  });

  it('answers an unknown channel with an empty page', async () => {
    const r = await sys.get('/v1/channels/nobody/captions');
    expect(r).toEqual({ status: 200, body: { channel: 'nobody', items: [], next: null } });
  });

  it('rejects bad parameters with 400 naming the field', async () => {
    const cases: [string, string][] = [
      ['limit=0', 'limit'],
      ['limit=5000', 'limit'],
      ['limit=ten', 'limit'],
      ['after=yesterday', 'after'],
      ['after=99:1', 'after'],
      ['from=soon', 'from'],
      ['to=2024-13-45T99:00', 'to'],
      ['colour=blue', 'colour'],
    ];
    for (const [query, field] of cases) {
      const r = await sys.get(`/v1/channels/hist.one/captions?${query}`);
      expect(r.status, query).toBe(400);
      expect(r.body.field, query).toBe(field);
      expect(r.body.error, query).toMatch(new RegExp(`^${field}`));
    }
    const bad = await sys.get('/v1/channels/NOPE/captions');
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe('channel');
  });
});
