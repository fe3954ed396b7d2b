// The hash thread's side (hash-thread.ts is the caller's): sessions of named hashes, fed in order.
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

export type HashMessage =
  | { op: 'start'; id: number; algorithms: [string, string][]; fork?: { id: number; name: string } }
  | { op: 'update'; id: number; data: Uint8Array }
  /** `peek`: digests of copies, the hashes go on. */
  | { op: 'digest'; id: number; names: string[]; reply: number; peek?: boolean }
  | { op: 'drop'; id: number };

export interface HashReply {
  reply: number;
  digests: Record<string, Uint8Array>;
}

const sessions = new Map<number, Map<string, Hash>>();

function handle(m: HashMessage): HashReply | undefined {
  switch (m.op) {
    case 'update':
      for (const h of sessions.get(m.id)?.values() ?? []) h.update(m.data);
      return undefined;
    case 'start': {
      const session = new Map(m.algorithms.map(([name, alg]) => [name, createHash(alg)]));
      const from = m.fork && sessions.get(m.fork.id)?.get(m.fork.name);
      if (m.fork && from) session.set(m.fork.name, from.copy());
      sessions.set(m.id, session);
      return undefined;
    }
    case 'digest': {
      const session = sessions.get(m.id);
      const digests: Record<string, Uint8Array> = {};
      for (const name of m.names) {
        const h = session?.get(name);
        if (!h) continue;
        if (m.peek) {
          digests[name] = h.copy().digest();
          continue;
        }
        digests[name] = h.digest();
        session!.delete(name);
      }
      return { reply: m.reply, digests };
    }
    case 'drop':
      sessions.delete(m.id);
      return undefined;
  }
}

parentPort?.on('message', (m: HashMessage) => {
  const reply = handle(m);
  if (reply) parentPort!.postMessage(reply);
});
