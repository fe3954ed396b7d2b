// What every castlog page shares: building elements from text (never from HTML), one way of
// showing times (the reader's own time zone and clock, as the browser's date fields show them),
// sizes and durations, the live socket's address, and API errors put in words for people.

/** An element with attributes and children; text only, so nothing from the server is ever parsed as HTML. */
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = String(v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

// ---- times: the reader's time zone, the reader's clock (12- or 24-hour, as the browser's fields) ----

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit', second: '2-digit' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: 'short',
  day: 'numeric',
  hour: 'numeric',
  minute: '2-digit',
  second: '2-digit',
});
const longFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'long' });

/** 4:03:44 PM or 16:03:44, as the reader's locale has it. */
export const formatTime = (ms) => timeFmt.format(new Date(ms));
/** Nov 14, 2023, 4:03:44 PM (or the reader's locale's order). */
export const formatDateTime = (ms) => dateTimeFmt.format(new Date(ms));
/** The full date, time and zone, for a title. */
export const formatLong = (ms) => longFmt.format(new Date(ms));
/** The same day as `ref`: only the time is needed. */
export const sameDay = (a, b) => new Date(a).toDateString() === new Date(b).toDateString();

/** The reader's time zone as the browser names it briefly ("GMT+1", "PST", "UTC"). */
export function zoneName(at = Date.now()) {
  const part = new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' })
    .formatToParts(new Date(at))
    .find((p) => p.type === 'timeZoneName');
  return part ? part.value : 'local time';
}

const pad = (n, w = 2) => String(n).padStart(w, '0');
/** The value of a datetime-local field (the reader's time zone) for a time. */
export function toInputValue(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
/** The time a datetime-local field holds; undefined when empty, NaN when not a time. */
export function fromInputValue(value) {
  if (!value) return undefined;
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?$/.exec(value);
  if (!m) return NaN;
  const ms = new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] ?? 0)).getTime();
  return Number.isFinite(ms) ? ms : NaN;
}

/** "3 s", "4 min", "2 h", "5 days". */
export function formatSpan(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 172800) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} days`;
}
/** "1:05" or "1:02:05" for a duration in seconds. */
export function formatClock(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

// ---- numbers and sizes ----

const numberFmt = new Intl.NumberFormat();
export const formatNumber = (n) => numberFmt.format(n);
export const plural = (n, one, many = `${one}s`) => `${formatNumber(n)} ${n === 1 ? one : many}`;

/** 1.5 MB, 28.8 MB, 2.1 GB: decimal units, as file managers show them. */
export function formatBytes(n) {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  do {
    v /= 1000;
    i++;
  } while (v >= 1000 && i < units.length - 1);
  return `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

// ---- the user and the live socket ----

/** This browser's user id: it stands in for a login, kept in this browser, issued once by the API. */
export async function knownUserId() {
  let userId = localStorage.getItem('castlog.userId');
  if (!userId) {
    const res = await api('/users/newId');
    userId = res.body.userId;
    localStorage.setItem('castlog.userId', userId);
  }
  return userId;
}

/** The fanout's WebSocket URL: the configured one, else this page's host with the fanout's port and path. */
export function liveUrlOf(config) {
  if (typeof config.liveUrl === 'string') return config.liveUrl;
  if (typeof config.livePort !== 'number') throw new Error('no live URL');
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.hostname}:${config.livePort}${config.livePath}`;
}

// ---- search snippets ----

/** The server's snippet is escaped HTML whose only element is <mark>; rebuilt from text nodes and marks alone. */
export function snippetNode(html) {
  const tpl = document.createElement('template');
  tpl.innerHTML = html;
  const out = document.createDocumentFragment();
  for (const n of tpl.content.childNodes) {
    if (n.nodeName === 'MARK') out.append(el('mark', { text: n.textContent }));
    else out.append(n.textContent ?? '');
  }
  return out;
}

// ---- errors for people ----

/**
 * The API's error without its field prefix, as a sentence: "q: must be at most 256 characters"
 * becomes "Must be at most 256 characters." Pages word the errors they expect themselves and
 * fall back on this.
 */
export function sentenceOf(body, status) {
  let text = body && typeof body.error === 'string' ? body.error : '';
  const field = body && typeof body.field === 'string' ? body.field : '';
  if (field && text.startsWith(`${field}: `)) text = text.slice(field.length + 2);
  text = text.replace(/\/[\w./-]+/g, 'the file').trim();
  if (!text) return status >= 500 ? 'The server could not answer just now. Try again in a moment.' : `The request failed (${status}).`;
  if (/^service unavailable/i.test(text)) return 'The server cannot reach its database or log just now. Try again in a moment.';
  if (/^busy/i.test(text)) return 'The server is busy. Try again in a few seconds.';
  text = text[0].toUpperCase() + text.slice(1);
  return /[.!?)]$/.test(text) ? text : `${text}.`;
}

/** fetch, answering { ok, status, body } and never throwing for HTTP errors; a network failure is status 0. */
export async function api(path, init) {
  try {
    const r = await fetch(path, { ...init, headers: { accept: 'application/json', ...(init && init.headers) } });
    let body = null;
    try {
      body = await r.json();
    } catch {
      body = null;
    }
    return { ok: r.ok, status: r.status, body, headers: r.headers };
  } catch {
    return { ok: false, status: 0, body: null, headers: new Headers() };
  }
}
