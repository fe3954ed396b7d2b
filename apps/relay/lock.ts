// The relay's one-active-copy rule: the relay's advisory lock, held by a session of its own that
// also LISTENs for appends (infra/session-lock.ts).
import { LOCKS } from '../../infra/locks.ts';
import { trySessionLock, type HeldLock } from '../../infra/session-lock.ts';

export type { HeldLock };

/** The channel the event store NOTIFYs on each append. */
const APPENDS = 'castlog_events';

export const tryRelayLock = (databaseUrl: string, onNotify: () => void, name: string = LOCKS.relay): Promise<HeldLock | undefined> =>
  trySessionLock(databaseUrl, name, APPENDS, onNotify);
