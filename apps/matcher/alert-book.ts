// The alerts the matcher knows, read from the `alerts` topic: every definition (for its e-mail and
// webhook), and the index that says which a caption matches.
import type { AlertDefinition } from '../../domain/alerts/alerts.ts';
import { AlertIndex } from '../../domain/alerts/matcher.ts';
import type { LogRecord } from '../../infra/kafka/index.ts';

export interface KnownAlert extends AlertDefinition {
  userId: string;
}

export class AlertBook {
  readonly index = new AlertIndex();
  private readonly alerts = new Map<string, KnownAlert>();

  get size(): number {
    return this.alerts.size;
  }

  get(alertId: string): KnownAlert | undefined {
    return this.alerts.get(alertId);
  }

  apply(record: LogRecord): void {
    const e = record.event;
    switch (e.type) {
      case 'AlertCreated': {
        const { alertId, userId, query, tsquery, channels, lang, email, webhookUrl, at } = e.data;
        this.alerts.set(alertId, { alertId, userId, query, tsquery, channels, lang, email, webhookUrl, createdAt: at });
        this.index.add({ alertId, userId, tsquery, channels, createdAt: at });
        return;
      }
      case 'AlertDeleted':
        this.alerts.delete(e.data.alertId);
        this.index.remove(e.data.alertId);
        return;
      case 'AlertEmailStopped': {
        const alert = this.alerts.get(e.data.alertId);
        if (alert) alert.email = null;
        return;
      }
      default:
        return; // AlertMatched: the matcher's own output
    }
  }
}
