// Which other sites' pages may talk to castlog from a browser: ALLOWED_ORIGINS, one list for the
// api's CORS answers and the fanout's WebSocket upgrades. A browser sends the page's Origin and
// (for WebSockets) lets any page connect anywhere, so without this check a foreign site could open
// sockets as its visitors. Clients that are not browsers send no Origin.

/** True when a page of `origin` may call the api (CORS): listed, or "*" allows any. */
export function originAllowed(origin: string, allowed: string[]): boolean {
  if (allowed.includes('*')) return true;
  const theirs = normalOrigin(origin);
  return theirs !== undefined && allowed.includes(theirs);
}

export interface OriginRule {
  /** Origins allowed ("*": any); empty: only the API's own origin, as the upgrade's Host names it. */
  allowed: string[];
  /** The API serves the pages on this port of the same host as the fanout. */
  apiPort: number;
}

/** "scheme://host[:port]" as browsers send it (default ports left out), or undefined. */
export function normalOrigin(text: string): string | undefined {
  try {
    const u = new URL(text);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
    return u.origin;
  } catch {
    return undefined;
  }
}

/** Why an upgrade with this Origin (and Host) is refused, or undefined when it may go ahead. */
export function originRefusal(origin: string, host: string, rule: OriginRule): string | undefined {
  if (origin === '') return undefined;
  if (rule.allowed.includes('*')) return undefined;
  const theirs = normalOrigin(origin);
  if (!theirs) return `${JSON.stringify(origin)} is not an origin this server accepts`;
  let allowed = rule.allowed;
  if (allowed.length === 0) {
    let hostname: string;
    try {
      hostname = new URL(`http://${host}`).hostname;
    } catch {
      return `cannot tell this server's own origin from Host ${JSON.stringify(host)}`;
    }
    allowed = ['http', 'https'].map((scheme) => normalOrigin(`${scheme}://${hostname}:${rule.apiPort}`)!);
  }
  return allowed.includes(theirs)
    ? undefined
    : `${theirs} may not open live sockets here (allowed: ${allowed.join(', ')}; set ALLOWED_ORIGINS)`;
}
