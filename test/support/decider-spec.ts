// Given events / when a command / then the events it causes or the rule it breaks, for any decider
// (the shape of Emmett's DeciderSpecification):
//   spec(viewer).given([issued()]).when(activate('a')).then([activated('a')])
//   spec(viewer).given([]).when(beat('a')).thenThrows('not_found')
// The state is deep-frozen before the decision: a decision reads state, it never changes it.
import { expect } from 'vitest';
import { DomainError, type Decider, type DomainErrorKind } from '../../domain/decider.ts';

/** A DomainError of this kind, or any error this predicate accepts. */
export type ErrorMatcher = DomainErrorKind | ((error: unknown) => boolean);
export type ErrorClass = abstract new (...args: never[]) => Error;

export interface DeciderSpec<Command, Event, State> {
  given(events: Event[]): {
    when(command: Command): {
      then(expected: Event[]): void;
      /** With a kind, the error is a DomainError of that kind, and an instance of `type` too. */
      thenThrows(expected: ErrorMatcher, type?: ErrorClass): void;
    };
  };
  /** The state the events leave, as the decision sees it. */
  stateAfter(events: Event[]): State;
}

export function spec<Command, Event, State>(decider: Decider<Command, Event, State>): DeciderSpec<Command, Event, State> {
  const stateAfter = (events: Event[]) => events.reduce(decider.evolve, decider.initialState());
  return {
    stateAfter,
    given: (events) => ({
      when: (command) => {
        const decide = () => decider.decide(command, deepFreeze(stateAfter(events)));
        return {
          then: (expected) => expect(decide()).toEqual(expected),
          thenThrows: (expected, type = DomainError) => {
            const thrown = errorOf(decide);
            if (typeof expected === 'function') {
              expect(expected(thrown), `the error does not match: ${String(thrown)}`).toBe(true);
              return;
            }
            expect(thrown).toBeInstanceOf(DomainError);
            expect(thrown).toBeInstanceOf(type);
            expect((thrown as DomainError).kind).toBe(expected);
          },
        };
      },
    }),
  };
}

/** What `decide` throws; fails the test, naming the events, when it throws nothing. */
function errorOf(decide: () => unknown[]): unknown {
  let events: unknown[];
  try {
    events = decide();
  } catch (error) {
    return error;
  }
  return expect.fail(`expected an error, got the events ${JSON.stringify(events)}`);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
