// A viewer (one user id) and the streams they watch. Rules:
// - only issued user ids exist; at most `limit` streams count at once (per-user limit or default);
// - an activation is a lease until expiresAt, renewed by a heartbeat or by activating again;
// - a lease past its expiry never counts, whether or not its expiry has been recorded yet:
//   any decision first records the expiries it finds.
import type { EventOf } from '../../schemas/types.generated.ts';
import { DomainError, type Decider } from '../decider.ts';

export type ViewerEvent = EventOf<
  'UserIdIssued' | 'UserLimitSet' | 'StreamActivated' | 'StreamHeartbeat' | 'StreamDeactivated' | 'ActivationRejected'
>;

export type ViewerCommand =
  | { type: 'IssueUserId'; userId: string; now: number }
  | { type: 'SetLimit'; userId: string; limit: number; now: number }
  | { type: 'Activate'; userId: string; streamId: string; now: number; ttlMs: number; defaultLimit: number }
  | { type: 'Heartbeat'; userId: string; streamId: string; now: number; ttlMs: number }
  | { type: 'Deactivate'; userId: string; streamId: string; now: number }
  | { type: 'ExpireLeases'; userId: string; now: number };

export interface ViewerState {
  issued: boolean;
  limit: number | null;
  /** streamId -> lease expiry (ms), in activation order. */
  leases: Record<string, number>;
}

export const MAX_LIMIT = 1000;

export const initialState = (): ViewerState => ({ issued: false, limit: null, leases: {} });

export function evolve(state: ViewerState, event: ViewerEvent): ViewerState {
  switch (event.type) {
    case 'UserIdIssued':
      return { ...state, issued: true };
    case 'UserLimitSet':
      return { ...state, limit: event.data.limit };
    case 'StreamActivated':
    case 'StreamHeartbeat':
      return { ...state, leases: { ...state.leases, [event.data.streamId]: event.data.expiresAt } };
    case 'StreamDeactivated': {
      const { [event.data.streamId]: _gone, ...leases } = state.leases;
      return { ...state, leases };
    }
    case 'ActivationRejected':
      return state;
  }
}

/** Streams whose lease is still running at `now`, in activation order. */
export function activeStreams(state: ViewerState, now: number): string[] {
  return Object.entries(state.leases)
    .filter(([, until]) => until > now)
    .map(([id]) => id);
}

export function limitOf(state: Pick<ViewerState, 'limit'>, defaultLimit: number): number {
  return state.limit ?? defaultLimit;
}

function expiries(state: ViewerState, userId: string, now: number): ViewerEvent[] {
  return Object.entries(state.leases)
    .filter(([, until]) => until <= now)
    .map(([streamId, until]) => ({ type: 'StreamDeactivated', data: { userId, streamId, reason: 'expired', at: Math.max(until, 0) } }));
}

export function decide(command: ViewerCommand, state: ViewerState): ViewerEvent[] {
  const { userId, now } = command;
  if (command.type === 'IssueUserId') {
    if (state.issued) throw new DomainError('conflict', 'user id already issued');
    return [{ type: 'UserIdIssued', data: { userId, at: now } }];
  }
  if (!state.issued) throw new DomainError('not_found', `unknown user id ${userId}`);
  const expired = expiries(state, userId, now);
  const active = activeStreams(state, now);

  switch (command.type) {
    case 'SetLimit':
      if (!Number.isInteger(command.limit) || command.limit < 0 || command.limit > MAX_LIMIT) {
        throw new DomainError('invalid', `limit: must be an integer from 0 to ${MAX_LIMIT}`);
      }
      return [...expired, { type: 'UserLimitSet', data: { userId, limit: command.limit, at: now } }];
    case 'Activate': {
      const { streamId } = command;
      const expiresAt = now + command.ttlMs;
      if (active.includes(streamId)) return [...expired, { type: 'StreamHeartbeat', data: { userId, streamId, at: now, expiresAt } }];
      const limit = limitOf(state, command.defaultLimit);
      if (active.length >= limit) {
        return [...expired, { type: 'ActivationRejected', data: { userId, streamId, limit, active, at: now } }];
      }
      return [...expired, { type: 'StreamActivated', data: { userId, streamId, at: now, expiresAt } }];
    }
    case 'Heartbeat':
      if (!active.includes(command.streamId)) {
        throw new DomainError('conflict', `stream ${command.streamId} is not active for this user; activate it again`);
      }
      return [
        ...expired,
        { type: 'StreamHeartbeat', data: { userId, streamId: command.streamId, at: now, expiresAt: now + command.ttlMs } },
      ];
    case 'Deactivate':
      if (!active.includes(command.streamId)) return expired;
      return [...expired, { type: 'StreamDeactivated', data: { userId, streamId: command.streamId, reason: 'stopped', at: now } }];
    case 'ExpireLeases':
      return expired;
  }
}

export const viewer: Decider<ViewerCommand, ViewerEvent, ViewerState> = { initialState, decide, evolve };

/** The event-store stream of a user. */
export const viewerStream = (userId: string) => `viewer-${userId}`;
