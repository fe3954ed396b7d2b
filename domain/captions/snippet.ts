// A snippet: the words of a caption around what a query matched, as safe HTML with the matches in
// <mark>. Postgres' ts_headline finds the words; it marks them with two control characters that
// captions cannot hold (they are removed from the text first), and this turns them into HTML.

/** What ts_headline is asked to put around a match. */
export const MARKS = { start: '\u0001', stop: '\u0002' } as const;

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);

/** ts_headline output (marks around matches) -> safe HTML with <mark>. */
export function snippetHtml(headline: string): string {
  // ts_headline leaves tag-like words out (<b>, <img ...>), and line breaks mean nothing in a
  // snippet: runs of white space become one space.
  headline = headline.replace(/\s+/g, ' ').trim();
  let out = '';
  let open = false;
  for (const part of headline.split(/([\u0001\u0002])/)) {
    if (part === MARKS.start) {
      if (!open) out += '<mark>';
      open = true;
    } else if (part === MARKS.stop) {
      if (open) out += '</mark>';
      open = false;
    } else out += escapeHtml(part);
  }
  return open ? `${out}</mark>` : out;
}
