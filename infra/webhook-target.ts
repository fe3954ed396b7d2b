// Where a webhook may be sent: never to this machine, a private network, or any other address the
// public cannot reach (a webhook URL is a way to make our servers send requests for someone), unless
// the host is listed in WEBHOOK_ALLOWED_HOSTS. The host is resolved and every address it resolves to
// is checked; the sender then connects to the checked address itself, so a name that resolves
// differently a moment later (DNS rebinding) cannot slip past.
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { webhookUrlProblem } from '../domain/alerts/input.ts';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to all its addresses (node's resolver by default; tests may pass their own). */
export type HostResolver = (host: string) => Promise<ResolvedAddress[]>;

/** A destination that passed the check: the URL, and the address to connect to. */
export interface WebhookTarget {
  url: URL;
  address: ResolvedAddress;
}

/** Why a URL may not be a destination: `refused` is permanent, `unresolved` may pass later (DNS). */
export type TargetProblem = { kind: 'refused' | 'unresolved'; problem: string };

const blocked = new BlockList();
// RFC 6890 special-purpose ranges that are not the public internet.
for (const [net, bits] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata services live here)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  blocked.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const) {
  blocked.addSubnet(net, bits, 'ipv6');
}

/** The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64, 6to4), so it is checked as IPv4. */
function embeddedIpv4(address: string): string | undefined {
  const lower = address.toLowerCase();
  const dotted = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted) return dotted[1];
  const hex = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  const sixToFour = /^2002:([0-9a-f]{1,4}):([0-9a-f]{1,4}):/.exec(lower);
  const [, high, low] = hex ?? sixToFour ?? [];
  if (high === undefined || low === undefined) return undefined;
  const hi = parseInt(high, 16);
  const lo = parseInt(low, 16);
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
}

/** True when the address is not on the public internet (private, loopback, link-local, …). */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family !== 6) return true; // not an address at all: never connect to it
  const v4 = embeddedIpv4(address);
  return (v4 !== undefined && blocked.check(v4, 'ipv4')) || blocked.check(address, 'ipv6');
}

const systemResolver: HostResolver = async (host) =>
  (await dnsLookup(host, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));

/** The URL's host as WEBHOOK_ALLOWED_HOSTS lists it: lower case, an IPv6 address without brackets. */
const hostOf = (url: URL) => url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');

/**
 * Checks a webhook URL and picks the address to connect to: the URL's rules (http(s), no
 * credentials), then every address the host resolves to must be public unless the host is allowed.
 */
export async function resolveWebhookTarget(
  text: string,
  allowedHosts: readonly string[],
  resolve: HostResolver = systemResolver,
): Promise<WebhookTarget | TargetProblem> {
  const urlProblem = webhookUrlProblem(text);
  if (urlProblem) return { kind: 'refused', problem: urlProblem };
  const url = new URL(text);
  const host = hostOf(url);
  let addresses: ResolvedAddress[];
  if (isIP(host)) {
    addresses = [{ address: host, family: isIP(host) === 6 ? 6 : 4 }];
  } else {
    try {
      addresses = await resolve(host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      return { kind: 'unresolved', problem: `host ${host} does not resolve (${code})` };
    }
  }
  const [first] = addresses;
  if (!first) return { kind: 'unresolved', problem: `host ${host} does not resolve` };
  if (!allowedHosts.includes(host)) {
    const inner = addresses.find((a) => isNonPublicAddress(a.address));
    if (inner) {
      const what = inner.address === host ? host : `${host} resolves to ${inner.address}, which`;
      return { kind: 'refused', problem: `${what} is a private, loopback or link-local address (not allowed)` };
    }
  }
  return { url, address: first };
}

export const isTargetProblem = (t: WebhookTarget | TargetProblem): t is TargetProblem => 'problem' in t;

/**
 * Why this URL may not be a webhook destination, or undefined when it may: what the alert and
 * encode routes answer 400 with (field webhook.url).
 */
export async function webhookTargetProblem(
  url: string,
  allowedHosts: readonly string[],
  resolve: HostResolver = systemResolver,
): Promise<string | undefined> {
  const target = await resolveWebhookTarget(url, allowedHosts, resolve);
  return isTargetProblem(target) ? target.problem : undefined;
}
