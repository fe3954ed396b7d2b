// A point in time as a query names it (from, to): milliseconds since the epoch or an ISO 8601 date.
// Pure: a bad value is a DomainError whose message starts with the field, so the HTTP edge answers
// 400 naming it.
import { DomainError } from './decider.ts';

/** Milliseconds since the epoch, or an ISO 8601 date; undefined when absent or empty. */
export function parseTime(field: string, value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const ms = /^\d{1,15}$/.test(value) ? Number(value) : value.length <= 40 ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) throw new DomainError('invalid', `${field}: must be milliseconds since the epoch or an ISO 8601 date`);
  return ms;
}
