// vitest setup: every test fails when an answer or live frame it saw is not as /openapi.json and
// /asyncapi.json document it (contract.ts). Unit tests watch no API, so nothing is checked there.
import { afterEach } from 'vitest';
import { checkedFetch, takeFailures } from './contract.ts';

globalThis.fetch = checkedFetch;

afterEach(async () => {
  const failures = await takeFailures();
  if (failures.length > 0) throw new Error(`answers not as documented:\n${failures.join('\n')}`);
});
