// The cluster's size that the catalog's replication is taken from: the most any of several
// answers lists, since each answer comes from a broker picked at random and one that has just
// started may not list the others yet (a CI run made its topics with two copies of three so).
import { describe, expect, it } from 'vitest';
import { clusterSize, SIZE_ANSWERS } from '../../infra/kafka/topics.ts';
import { replicationFor } from '../../schemas/catalog.ts';

/** Answers as brokers picked from `views` would, in the order given, counting the questions. */
function brokersSaying(...views: number[]) {
  const asked = { n: 0 };
  return { asked, listed: async () => views[asked.n++ % views.length]! };
}

describe('the cluster size topics are made for', () => {
  it('is the most brokers any answer lists, so one lagging broker does not cost a copy', async () => {
    const { listed } = brokersSaying(2, 2, 3, 2);
    expect(await clusterSize(listed)).toBe(3);
    expect(replicationFor(await clusterSize(brokersSaying(2, 3).listed))).toEqual({ replicationFactor: 3, minInsyncReplicas: 2 });
  });

  it('asks as many times as it says, every time', async () => {
    for (const views of [[1], [3, 3, 3], [2, 1]]) {
      const { asked, listed } = brokersSaying(...views);
      await clusterSize(listed);
      expect(asked.n).toBe(SIZE_ANSWERS);
    }
  });

  it('keeps what every answer says when they agree, a lone broker included', async () => {
    expect(await clusterSize(brokersSaying(1).listed)).toBe(1);
    expect(await clusterSize(brokersSaying(5).listed)).toBe(5);
  });

  it('passes on a broker that does not answer', async () => {
    await expect(clusterSize(async () => Promise.reject(new Error('connection refused')))).rejects.toThrow('connection refused');
  });
});
