// How node runs a castlog app, in one place: the supervisor, the container image (its ENTRYPOINT,
// checked against this by deploy-manifests.test.ts), the tests and the benches all start apps so.
//
// A young generation of 64 MB a half-space instead of V8's 16: an app's live set is mostly what is
// in flight (an ingest batch awaiting Kafka's acknowledgement, a fetched batch being applied), and
// with 16 MB every scavenge copied it again — a quarter of an appending process's CPU went to the
// garbage collector. The space grows only while allocation is heavy, so an idle app stays small.
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];

/** node's arguments to run apps/<name>/main.ts, with any extra node flags (a profiler's) before it. */
export function appArgs(name: string, extra: readonly string[] = []): string[] {
  return [...NODE_FLAGS, ...extra, '--import', 'tsx', `apps/${name}/main.ts`];
}
