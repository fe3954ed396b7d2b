// The hashing thread gives the same digests as hashing in place, and a forked hash goes on from
// where its source stood without disturbing it.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import { HashThread } from '../../infra/blobs/hash-thread.ts';

const thread = new HashThread();
afterAll(() => thread.close());
const hex = (alg: string, ...parts: Buffer[]) => parts.reduce((h, p) => h.update(p), createHash(alg)).digest('hex');

it('hashes pieces fed in order, with every algorithm asked for', async () => {
  const pieces = Array.from({ length: 50 }, (_, i) => randomBytes(1000 + i * 977));
  const s = thread.start([
    ['a', 'sha256'],
    ['b', 'sha1'],
  ]);
  for (const p of pieces) s.update(p);
  const d = await s.digest(['a', 'b', 'nope']);
  expect(Object.keys(d).sort()).toEqual(['a', 'b']);
  expect(d.a!.toString('hex')).toBe(hex('sha256', ...pieces));
  expect(d.b!.toString('hex')).toBe(hex('sha1', ...pieces));
  s.drop();
});

it('a fork goes on from its source as it stood, and the source is untouched', async () => {
  const [one, two, three] = [randomBytes(70_000), randomBytes(5), randomBytes(123_456)];
  const first = thread.start([['whole', 'sha256']]);
  first.update(one);
  const second = thread.start([['chunk', 'sha256']], { session: first, name: 'whole' });
  second.update(two);
  const third = thread.start([], { session: second, name: 'whole' });
  third.update(three);
  expect((await third.digest(['whole'])).whole!.toString('hex')).toBe(hex('sha256', one, two, three));
  expect(await second.digest(['chunk', 'whole'])).toEqual({
    chunk: createHash('sha256').update(two).digest(),
    whole: createHash('sha256').update(one).update(two).digest(),
  });
  expect((await first.digest(['whole'])).whole!.toString('hex')).toBe(hex('sha256', one));
  // A piece handed over is a copy: changing the caller's buffer afterwards changes nothing.
  const s = thread.start([['x', 'sha256']]);
  const buf = Buffer.from('hello');
  s.update(buf);
  buf.fill(0);
  expect((await s.digest(['x'])).x!.toString('hex')).toBe(hex('sha256', Buffer.from('hello')));
});

it('a peek gives the digest so far and the hash goes on; a buffer taken is hashed without a copy', async () => {
  const [one, two] = [randomBytes(1 << 20), randomBytes(33_333)];
  const s = thread.start([['whole', 'sha256']]);
  const taken = Buffer.concat([one]);
  s.take(taken);
  // Handed over, not copied: the caller's view of it is gone.
  expect(taken.byteLength).toBe(0);
  expect((await s.peek(['whole'])).whole!.toString('hex')).toBe(hex('sha256', one));
  s.update(two);
  expect((await s.digest(['whole'])).whole!.toString('hex')).toBe(hex('sha256', one, two));
});
