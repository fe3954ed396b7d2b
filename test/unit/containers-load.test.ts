// Machines with a Docker engine start the stack from containers (infra/stack/containers.ts). This
// machine has none, so the path up to starting a container is checked here: the library must load
// on the Node this project supports (testcontainers 12 pulls undici 8, which needs Node 22 and
// failed to import on Node 20 with "Cannot read properties of undefined (reading 'bind')").
import { describe, expect, it } from 'vitest';

describe('the container stack', () => {
  it('loads its library and builds both containers as containers.ts does, without a Docker engine', async () => {
    const { GenericContainer, Wait } = await import('testcontainers');
    const postgres = new GenericContainer('postgres:16')
      .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/ready to accept connections/, 2));
    const kafka = new GenericContainer('apache/kafka:3.9.1')
      .withExposedPorts({ container: 9092, host: 19192 })
      .withWaitStrategy(Wait.forListeningPorts());
    expect(typeof postgres.start).toBe('function');
    expect(typeof kafka.start).toBe('function');
  });
});
