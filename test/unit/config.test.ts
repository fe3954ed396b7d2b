// Settings out of their range are refused at start with the name and the rule, never bent into
// range silently (an operator's typo of 0 or 10⁹ would otherwise run as something else).
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../infra/config.ts';

describe('integer settings', () => {
  it('take the default when unset or empty, and a value in range as given', () => {
    expect(loadConfig({}).fanoutWriteSlices).toBe(16);
    expect(loadConfig({ FANOUT_WRITE_SLICES: '' }).fanoutWriteSlices).toBe(16);
    expect(loadConfig({ FANOUT_WRITE_SLICES: '1' }).fanoutWriteSlices).toBe(1);
    expect(loadConfig({}).fanoutWritesPerTurn).toBe(500);
    expect(loadConfig({ FANOUT_WRITES_PER_TURN: '0' }).fanoutWritesPerTurn).toBe(0);
    expect(loadConfig({ FANOUT_WRITE_SLICES: '16' }).fanoutWriteSlices).toBe(16);
    expect(loadConfig({ FANOUT_WRITE_SLICES: '1024' }).fanoutWriteSlices).toBe(1024);
    expect(loadConfig({ BACKGROUND_NICE: '19' }).backgroundNice).toBe(19);
    expect(loadConfig({ READ_CONCURRENCY: '1' }).readConcurrency).toBe(1);
    // No default: unset, the cluster's size is what its brokers list.
    expect(loadConfig({}).kafkaClusterSize).toBeUndefined();
    expect(loadConfig({ KAFKA_CLUSTER_SIZE: '' }).kafkaClusterSize).toBeUndefined();
    expect(loadConfig({ KAFKA_CLUSTER_SIZE: '3' }).kafkaClusterSize).toBe(3);
  });

  it.each([
    ['FANOUT_WRITE_SLICES', '0', 'an integer from 1 to 1024'],
    ['FANOUT_WRITE_SLICES', '1025', 'an integer from 1 to 1024'],
    ['FANOUT_WRITE_SLICES', '1e9', 'an integer from 1 to 1024'],
    ['BACKGROUND_NICE', '20', 'an integer from 0 to 19'],
    ['READ_CONCURRENCY', '0', 'an integer of at least 1'],
    ['NOTIFIER_CONCURRENCY', '0', 'an integer of at least 1'],
    ['API_PORT', '-1', 'a non-negative integer'],
    ['API_PORT', '80.5', 'a non-negative integer'],
    ['FANOUT_HISTORY_PER_PARTITION', 'lots', 'a non-negative integer'],
    ['KAFKA_CLUSTER_SIZE', '0', 'an integer from 1 to 1000'],
    ['KAFKA_CLUSTER_SIZE', 'three', 'an integer from 1 to 1000'],
    ['KAFKA_CLUSTER_SIZE', '2.5', 'an integer from 1 to 1000'],
  ])('%s=%s is refused: must be %s', (name, value, rule) => {
    expect(() => loadConfig({ [name]: value })).toThrow(`${name} must be ${rule}, got ${JSON.stringify(value)}`);
  });
});
