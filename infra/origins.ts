// Which other sites' pages may call castlog from a browser (CORS, and the fanout's Origin check).

/** True when `origin` is listed in ALLOWED_ORIGINS (or the list allows any with "*"). */
export function originAllowed(origin: string, allowed: string[]): boolean {
  return allowed.includes('*') || allowed.includes(origin.toLowerCase().replace(/\/$/, ''));
}
