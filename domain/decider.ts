// An aggregate as a decider: plain functions over plain data, no I/O.
// The command handler (infra/eventstore/command-handler.ts) loads, decides, and appends with the
// expected version, deciding again when another writer got there first.
export interface Decider<Command, Event, State> {
  initialState: () => State;
  /** The events a command causes, or a thrown DomainError. */
  decide: (command: Command, state: State) => Event[];
  evolve: (state: State, event: Event) => State;
}

export type DomainErrorKind = 'not_found' | 'conflict' | 'invalid';

/** A rule the command broke; the HTTP edge maps the kind to a status code. */
export class DomainError extends Error {
  constructor(
    readonly kind: DomainErrorKind,
    message: string,
  ) {
    super(message);
  }
}
