// Ids of users, streams, uploads and jobs are UUIDs, written in lower case.
import { validate } from 'uuid';

export const isUuid = (value: unknown): value is string => typeof value === 'string' && validate(value);
