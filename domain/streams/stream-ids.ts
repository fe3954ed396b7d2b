// Stream ids are issued like user ids; an id nobody issued cannot be activated.
import type { EventOf } from '../../schemas/types.generated.ts';
import { DomainError, type Decider } from '../decider.ts';

export type StreamIdEvent = EventOf<'StreamIdIssued'>;
export type StreamIdCommand = { type: 'IssueStreamId'; streamId: string; now: number };
export interface StreamIdState {
  issued: boolean;
}

export const streamIds: Decider<StreamIdCommand, StreamIdEvent, StreamIdState> = {
  initialState: () => ({ issued: false }),
  evolve: (_state, _event) => ({ issued: true }),
  decide: (command, state) => {
    if (state.issued) throw new DomainError('conflict', 'stream id already issued');
    return [{ type: 'StreamIdIssued', data: { streamId: command.streamId, at: command.now } }];
  },
};

export const streamIdStream = (streamId: string) => `streamid-${streamId}`;
