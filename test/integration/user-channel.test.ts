// A user's own channel on the fanout carries every event of their streams, uploads and encodes,
// live, and nobody else's.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LiveClient, System, waitFor } from '../support/system.ts';

let sys: System;
beforeAll(async () => {
  sys = await System.create();
  await Promise.all([sys.start('api'), sys.start('relay'), sys.start('fanout')]);
});
afterAll(() => sys?.stop());

const b64 = (s: string) => Buffer.from(s).toString('base64');

it('pushes upload events to their owner on user:<id>, next to stream events, under one subscription', async () => {
  const userId = (await sys.get('/users/newId')).body.userId as string;
  const mine = await LiveClient.connect(sys.live, { 'x-userid': userId });
  const other = await LiveClient.connect(sys.live, { 'x-userid': (await sys.get('/users/newId')).body.userId });
  try {
    mine.subscribe(`user:${userId}`);
    other.subscribe(`user:${userId}`); // someone else's channel: refused
    await mine.waitFor('subscribed', `user:${userId}`);
    // One answer for the channel, however many topics feed it.
    await mine.barrier();
    expect(mine.messages.filter((m) => m.type === 'subscribed')).toHaveLength(1);

    const created = await fetch(`${sys.api}/v1/uploads/`, {
      method: 'POST',
      headers: {
        'tus-resumable': '1.0.0',
        'x-userid': userId,
        'upload-length': '16',
        'upload-metadata': `filename ${b64('tiny.mp4')},filetype ${b64('video/mp4')}`,
      },
    });
    expect(created.status).toBe(201);
    const location = created.headers.get('location')!;
    const patched = await fetch(new URL(location, sys.api), {
      method: 'PATCH',
      headers: { 'tus-resumable': '1.0.0', 'x-userid': userId, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
      body: new Uint8Array(8), // half: the upload stays open
    });
    expect(patched.status).toBe(204);
    const s = (await sys.get('/streams/newId')).body.streamId as string;
    await fetch(`${sys.api}/streams/${s}/activate`, { method: 'PATCH', headers: { 'x-userid': userId } });

    const events = await waitFor('upload and stream events', () => {
      const got = mine.messages.filter((m) => m.type === 'event');
      const names = got.map((e) => e.event);
      return names.includes('UploadCreated') && names.includes('UploadChunkAppended') && names.includes('StreamActivated') && got;
    });
    const chunk = events.find((e: any) => e.event === 'UploadChunkAppended');
    expect(chunk).toMatchObject({
      channel: `user:${userId}`,
      position: expect.stringMatching(/^uploads\/\d+:\d+$/),
      data: { userId, offset: 0, length: 8 },
    });
    expect(events.find((e: any) => e.event === 'StreamActivated').position).toMatch(/^\d+:\d+$/);
    // Sent to every subscriber at once: had other been let in, its copy would be in before this marker.
    await other.barrier();
    expect(other.messages.filter((m) => m.type === 'event')).toEqual([]);
    // Still one answer, now that every topic feeding the channel has delivered to it.
    expect(mine.messages.filter((m) => m.type === 'subscribed')).toHaveLength(1);
    expect(other.messages.find((m) => m.type === 'error')).toMatchObject({ code: 'forbidden' });
  } finally {
    mine.close();
    other.close();
  }
});
