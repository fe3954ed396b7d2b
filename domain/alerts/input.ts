// What a user may ask an alert for, checked before anything is decided: each problem names its
// field. The query's words are checked by Postgres later (the caller converts it). Pure.
import { CHANNEL_ID_RULE, isChannelId } from '../captions/channel.ts';
import { BCP47_RULE, isBcp47 } from '../captions/fragment.ts';
import { queryProblem } from '../captions/search-query.ts';
import { DomainError } from '../decider.ts';

export const MAX_CHANNELS = 50;
export const MAX_EMAIL_CHARS = 254;
export const MAX_URL_CHARS = 2048;

export interface AlertInput {
  query: string;
  channels: string[];
  lang: string | null;
  email: string | null;
  webhookUrl: string | null;
}

const invalid = (field: string, problem: string) => new DomainError('invalid', `${field}: ${problem}`);
const FIELDS = new Set(['query', 'channels', 'lang', 'email', 'webhook']);
// An address of the common form: a local part, @, a domain with a dot; no spaces or controls.
const LOCAL = String.raw`[^\s@<>()[\]\\,;:"\u0000-\u001f\u007f]+`;
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const EMAIL = new RegExp(String.raw`^${LOCAL}@${LABEL}(?:\.${LABEL})+$`);

/** The webhook URL's problem, if any: http(s), with a host, no credentials, within length. */
export function webhookUrlProblem(text: unknown): string | undefined {
  if (typeof text !== 'string' || !text) return 'must be an http or https URL';
  if (text.length > MAX_URL_CHARS) return `must be at most ${MAX_URL_CHARS} characters`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be an http or https URL';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be an http or https URL';
  if (url.username || url.password) return 'must not carry credentials';
  if (url.hash) return 'must not have a #fragment';
  return undefined;
}

export function checkAlertInput(body: unknown): AlertInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('body', 'must be a JSON object');
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) if (!FIELDS.has(key)) throw invalid(key, 'unknown field');
  if (typeof b.query !== 'string') throw invalid('query', 'required: a search, in the syntax of /v1/search');
  const query = b.query.trim();
  const problem = queryProblem(query);
  if (problem) throw invalid('query', problem);
  let channels: string[] = [];
  if (b.channels !== undefined && b.channels !== null) {
    if (!Array.isArray(b.channels)) throw invalid('channels', 'must be an array of channel ids');
    if (b.channels.length > MAX_CHANNELS) throw invalid('channels', `at most ${MAX_CHANNELS} channels`);
    b.channels.forEach((c, i) => {
      if (!isChannelId(c)) throw invalid(`channels[${i}]`, CHANNEL_ID_RULE);
    });
    channels = [...new Set(b.channels as string[])];
  }
  const lang = b.lang === undefined || b.lang === null || b.lang === '' ? null : b.lang;
  if (lang !== null && !isBcp47(lang)) throw invalid('lang', BCP47_RULE);
  let email: string | null = null;
  if (b.email !== undefined && b.email !== null && b.email !== '') {
    if (typeof b.email !== 'string' || b.email.length > MAX_EMAIL_CHARS || !EMAIL.test(b.email)) {
      throw invalid('email', `must be an e-mail address (at most ${MAX_EMAIL_CHARS} characters)`);
    }
    email = b.email;
  }
  let webhookUrl: string | null = null;
  if (b.webhook !== undefined && b.webhook !== null) {
    const w = b.webhook as Record<string, unknown>;
    if (typeof w !== 'object' || Array.isArray(w)) throw invalid('webhook', 'must be an object {"url": "https://…"}');
    for (const key of Object.keys(w)) if (key !== 'url') throw invalid(`webhook.${key}`, 'unknown field');
    const urlProblem = webhookUrlProblem(w.url);
    if (urlProblem) throw invalid('webhook.url', urlProblem);
    webhookUrl = w.url as string;
  }
  return { query, channels, lang: lang as string | null, email, webhookUrl };
}
