// What an alert e-mail says: the alert's query, each match (one, or a digest of those gathered
// while the alert waited out its interval) with its snippet, a link to the alerts page and the
// one-click unsubscribe link (also in the RFC 8058 headers the sender adds). Text and HTML.
import { escapeHtml } from '../../domain/captions/snippet.ts';

/** One match as the matcher recorded it in an e-mail delivery's payload. */
export interface EmailMatch {
  alertId: string;
  query: string;
  channel: string;
  position: string;
  station: string;
  start: number;
  text: string;
  /** HTML: the caption's words with the matches in <mark>. */
  snippet: string;
}

export interface EmailMessage {
  subject: string;
  text: string;
  html: string;
}

const when = (ms: number) =>
  new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC');

const ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'" };

/**
 * The snippet with nothing but text and <mark>: whatever else it holds is shown as text, so a
 * payload can never put markup of its own into the e-mail.
 */
export function safeSnippet(snippet: string): string {
  return snippet
    .split(/(<\/?mark>)/)
    .map((part) => (/^<\/?mark>$/.test(part) ? part : escapeHtml(part.replace(/&(?:amp|lt|gt|quot|#39);/g, (e) => ENTITIES[e]!))))
    .join('');
}

/** The e-mail for one or more matches of one alert. */
export function alertEmail(matches: EmailMatch[], links: { alertsPage: string; unsubscribe: string }): EmailMessage {
  const first = matches[0];
  if (!first) throw new Error('an alert e-mail needs a match');
  const query = first.query;
  const many = matches.length > 1;
  const subject = many ? `Alert "${query}": ${matches.length} matches` : `Alert "${query}": ${first.channel} at ${when(first.start)}`;
  const intro = many
    ? `Your castlog alert "${query}" matched ${matches.length} captions:`
    : `Your castlog alert "${query}" matched a caption on ${first.channel}:`;
  const text = [
    intro,
    '',
    ...matches.flatMap((m) => [`${m.channel} · ${when(m.start)} · ${m.station} · position ${m.position}`, `  ${m.text}`, '']),
    `Your alerts: ${links.alertsPage}`,
    '',
    `You get this e-mail because of this alert. To stop its e-mails: ${links.unsubscribe}`,
    '',
  ].join('\n');
  const items = matches
    .map(
      (m) =>
        `<li><p style="margin:0;color:#555">${escapeHtml(m.channel)} · ${escapeHtml(when(m.start))} · ${escapeHtml(m.station)}` +
        ` · position ${escapeHtml(m.position)}</p><p style="margin:.2em 0 1em">${safeSnippet(m.snippet)}</p></li>`,
    )
    .join('\n');
  const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head>
<body style="font-family:sans-serif;line-height:1.4">
<p>${escapeHtml(intro)}</p>
<ul style="list-style:none;padding:0">
${items}
</ul>
<p><a href="${escapeHtml(links.alertsPage)}">Your alerts</a></p>
<p style="color:#555;font-size:small">You get this e-mail because of this alert.
<a href="${escapeHtml(links.unsubscribe)}">Stop its e-mails</a>.</p>
</body></html>
`;
  return { subject, text, html };
}
