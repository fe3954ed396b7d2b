// Webhook destinations (infra/webhook-target.ts): public addresses pass, every private, loopback or
// link-local one is refused unless its host is allowed, and a name is judged by all it resolves to.
import { describe, expect, it } from 'vitest';
import { isNonPublicAddress, resolveWebhookTarget, webhookTargetProblem, type HostResolver } from '../../infra/webhook-target.ts';

const resolver =
  (table: Record<string, string[]>): HostResolver =>
  async (host) => {
    const addresses = table[host];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

describe('isNonPublicAddress', () => {
  it.each([
    '0.0.0.0',
    '0.1.2.3',
    '10.0.0.1',
    '100.64.0.1',
    '100.127.255.254',
    '127.0.0.1',
    '127.255.255.255',
    '169.254.169.254',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '224.0.0.1',
    '239.255.255.250',
    '255.255.255.255',
    '::',
    '::1',
    'fc00::1',
    'fd12:3456::1',
    'fe80::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:a9fe:a9fe',
    '64:ff9b::10.0.0.1',
    '2002:c0a8:0101::1',
    'not-an-address',
  ])('refuses %s', (address) => expect(isNonPublicAddress(address)).toBe(true));

  it.each(['8.8.8.8', '1.1.1.1', '100.63.255.255', '100.128.0.0', '172.32.0.1', '93.184.216.34', '2606:4700::1111', '::ffff:8.8.8.8'])(
    'accepts %s',
    (address) => expect(isNonPublicAddress(address)).toBe(false),
  );
});

describe('webhookTargetProblem', () => {
  const dns = resolver({
    'hooks.example': ['93.184.216.34', '2606:4700::1111'],
    'rebind.example': ['93.184.216.34', '10.0.0.7'],
    'metadata.example': ['169.254.169.254'],
    'v6only.example': ['fd00::5'],
  });

  it('accepts a public destination and connects to the address it checked', async () => {
    expect(await webhookTargetProblem('https://hooks.example/in', [], dns)).toBeUndefined();
    const target = await resolveWebhookTarget('https://hooks.example/in', [], dns);
    expect(target).toMatchObject({ address: { address: '93.184.216.34', family: 4 } });
  });

  it('refuses a name when any of its addresses is private, and says which', async () => {
    expect(await webhookTargetProblem('https://rebind.example/', [], dns)).toMatch(/10\.0\.0\.7.*not allowed/);
    expect(await webhookTargetProblem('http://metadata.example/latest', [], dns)).toMatch(/169\.254\.169\.254/);
    expect(await webhookTargetProblem('http://v6only.example/', [], dns)).toMatch(/fd00::5/);
  });

  it('refuses loopback and private literals in every spelling the URL parser accepts', async () => {
    for (const url of [
      'http://127.0.0.1:8080/',
      'http://localhost/',
      'http://2130706433/',
      'http://0x7f.1/',
      'http://[::1]/',
      'http://[::ffff:127.0.0.1]/',
      'http://0/',
    ]) {
      const problem = await webhookTargetProblem(url, [], resolver({ localhost: ['127.0.0.1', '::1'] }));
      expect(problem, url).toMatch(/not allowed/);
    }
  });

  it('lets a listed host through, by the name or address the URL carries', async () => {
    expect(await webhookTargetProblem('http://127.0.0.1:9999/hook', ['127.0.0.1'], dns)).toBeUndefined();
    expect(await webhookTargetProblem('http://[::1]:9999/hook', ['::1'], dns)).toBeUndefined();
    expect(await webhookTargetProblem('http://metadata.example/', ['metadata.example'], dns)).toBeUndefined();
    // Allowing one host allows no other name that resolves to the same address.
    expect(await webhookTargetProblem('http://localhost:9999/', ['127.0.0.1'], resolver({ localhost: ['127.0.0.1'] }))).toMatch(
      /not allowed/,
    );
  });

  it('refuses what is not an http(s) URL, and a host that does not resolve', async () => {
    expect(await webhookTargetProblem('ftp://hooks.example/', [], dns)).toBe('must be an http or https URL');
    expect(await webhookTargetProblem('https://user:pw@hooks.example/', [], dns)).toBe('must not carry credentials');
    expect(await webhookTargetProblem('https://nowhere.example/', [], dns)).toMatch(/does not resolve \(ENOTFOUND\)/);
    expect(await resolveWebhookTarget('https://nowhere.example/', [], dns)).toMatchObject({ kind: 'unresolved' });
    expect(await resolveWebhookTarget('https://rebind.example/', [], dns)).toMatchObject({ kind: 'refused' });
  });
});
