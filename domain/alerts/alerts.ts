// A user's alerts: one decider over all of them, so the per-user cap holds under any concurrency
// (one stream per user, appended at its expected version). Pure: no I/O.
import type { EventOf } from '../../schemas/types.generated.ts';
import { DomainError, type Decider } from '../decider.ts';

export type AlertEvent = EventOf<'AlertCreated' | 'AlertDeleted' | 'AlertEmailStopped'>;

export interface AlertDefinition {
  alertId: string;
  query: string;
  tsquery: string;
  channels: string[];
  lang: string | null;
  email: string | null;
  webhookUrl: string | null;
  createdAt: number;
}

export type AlertCommand =
  | (Omit<AlertDefinition, 'createdAt'> & { type: 'Create'; userId: string; maxAlerts: number; now: number })
  | { type: 'Delete'; alertId: string; userId: string; now: number }
  | { type: 'StopEmail'; alertId: string; userId: string; now: number };

export interface UserAlerts {
  /** The user's alerts that are not deleted, oldest first. */
  alerts: AlertDefinition[];
}

export const initialState = (): UserAlerts => ({ alerts: [] });

export function evolve(state: UserAlerts, event: AlertEvent): UserAlerts {
  switch (event.type) {
    case 'AlertCreated': {
      const { alertId, query, tsquery, channels, lang, email, webhookUrl, at } = event.data;
      return { alerts: [...state.alerts, { alertId, query, tsquery, channels, lang, email, webhookUrl, createdAt: at }] };
    }
    case 'AlertDeleted':
      return { alerts: state.alerts.filter((a) => a.alertId !== event.data.alertId) };
    case 'AlertEmailStopped':
      return { alerts: state.alerts.map((a) => (a.alertId === event.data.alertId ? { ...a, email: null } : a)) };
  }
}

const find = (state: UserAlerts, alertId: string) => {
  const alert = state.alerts.find((a) => a.alertId === alertId);
  if (!alert) throw new DomainError('not_found', `alertId: no alert ${alertId}`);
  return alert;
};

export function decide(command: AlertCommand, state: UserAlerts): AlertEvent[] {
  const { userId, now } = command;
  switch (command.type) {
    case 'Create': {
      const { alertId, query, tsquery, channels, lang, email, webhookUrl, maxAlerts } = command;
      if (state.alerts.some((a) => a.alertId === alertId)) throw new DomainError('conflict', `alertId: alert ${alertId} exists already`);
      if (state.alerts.length >= maxAlerts) {
        throw new DomainError('conflict', `alerts: at most ${maxAlerts} alerts per user; delete one first`);
      }
      return [{ type: 'AlertCreated', data: { alertId, userId, query, tsquery, channels, lang, email, webhookUrl, at: now } }];
    }
    case 'Delete':
      find(state, command.alertId);
      return [{ type: 'AlertDeleted', data: { alertId: command.alertId, userId, at: now } }];
    case 'StopEmail': {
      // Unsubscribing twice (or from an alert since deleted) is no error and changes nothing.
      const alert = state.alerts.find((a) => a.alertId === command.alertId);
      if (!alert?.email) return [];
      return [{ type: 'AlertEmailStopped', data: { alertId: command.alertId, userId, at: now } }];
    }
  }
}

export const userAlerts: Decider<AlertCommand, AlertEvent, UserAlerts> = { initialState, decide, evolve };

/** The event-store stream of a user's alerts. */
export const userAlertsStream = (userId: string) => `alerts-${userId}`;
