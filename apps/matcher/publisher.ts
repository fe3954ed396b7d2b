// Publishes recorded matches to Kafka as AlertMatched (the outbox pattern): the match is recorded
// in Postgres first, in the same transaction as the matcher's positions, then published and
// marked. At least once: a matcher that dies between the two publishes again, and readers drop a
// repeat of the same (alertId, position). Rows are claimed with SKIP LOCKED, so several matcher
// copies share the work without publishing one row twice.
import { sql } from 'kysely';
import type { EventLog } from '../../infra/kafka/index.ts';
import type { Logger } from '../../infra/logger.ts';
import { wakeableSleep } from '../../infra/retry.ts';
import type { Db } from '../../projections/database.ts';

const BATCH = 500;

export class MatchPublisher {
  private readonly sleeper = wakeableSleep();
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(
    private readonly db: Db,
    private readonly log: EventLog,
    private readonly logger: Logger,
    private readonly onPublished: (n: number) => void,
  ) {
    this.done = this.run();
  }

  /** New matches were recorded: publish now rather than at the next poll. */
  wake(): void {
    this.sleeper.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.sleeper.wake();
    await this.done;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let n = 0;
      try {
        n = await this.publishSome();
        this.onPublished(n);
      } catch (err) {
        this.logger.warn({ err }, 'publishing matches failed; trying again');
      }
      if (n < BATCH) await this.sleeper.sleep(n > 0 ? 0 : 1000);
    }
  }

  private publishSome(): Promise<number> {
    return this.db.transaction().execute(async (trx) => {
      const { rows } = await sql<{
        alert_id: string;
        user_id: string;
        partition: number;
        offset: number;
        channel: string;
        position: string;
        station: string;
        start_ms: number;
        text: string;
        snippet: string;
        matched_at_ms: number;
      }>`SELECT alert_id, user_id, partition, "offset", channel, position, station, start_ms, text, snippet, matched_at_ms
         FROM alert_matches WHERE NOT published ORDER BY matched_at_ms LIMIT ${BATCH} FOR UPDATE SKIP LOCKED`.execute(trx);
      if (!rows.length) return 0;
      await this.log.append(
        rows.map((r) => ({
          type: 'AlertMatched' as const,
          key: r.alert_id,
          source: '/matcher',
          data: {
            alertId: r.alert_id,
            userId: r.user_id,
            channel: r.channel,
            position: r.position,
            station: r.station,
            start: r.start_ms,
            text: r.text,
            snippet: r.snippet,
            at: r.matched_at_ms,
          },
        })),
      );
      await sql`UPDATE alert_matches m SET published = true
                FROM unnest(${rows.map((r) => r.alert_id)}::text[], ${rows.map((r) => r.partition)}::int[],
                            ${rows.map((r) => r.offset)}::bigint[])
                  AS k(alert_id, partition, "offset")
                WHERE m.alert_id = k.alert_id AND m.partition = k.partition AND m."offset" = k."offset"`.execute(trx);
      return rows.length;
    });
  }
}
