// Entry of the hash thread: a worker thread does not inherit the parent's TypeScript loader, so it
// registers one (tsx) and runs the typed module.
import { register } from 'tsx/esm/api';

register();
await import('./hash-worker.ts');
