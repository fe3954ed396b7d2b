// Caption history from the Postgres read model: the channel list and a channel's fragments.
import type { FastifyPluginAsync } from 'fastify';
import { CHANNEL_ID_RULE, isChannelId } from '../../domain/captions/channel.ts';
import { formatPosition, parsePosition } from '../../domain/position.ts';
import { parseTime } from '../../domain/time.ts';
import { channelFragments, channelList, fragmentOf } from '../../projections/captions/queries.ts';
import { TOPICS } from '../../schemas/catalog.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import { badRequest } from './errors.ts';
import type { Reads } from './reads.ts';
import { channelParam, json, ms, nullableString, obj, params, position, ref } from './api-schemas.ts';

export function historyRoutes(reads: Reads): FastifyPluginAsync {
  return async (app) => {
    const channels = obj({
      channels: {
        type: 'array',
        items: obj({
          id: { type: 'string' },
          lastFragmentAt: ms('Last fragment'),
          fragmentCount: { type: 'integer' },
          lastPosition: position,
        }),
      },
    });
    app.get('/', { schema: { summary: 'Every channel with captions', response: { 200: json('The channels', channels) } } }, async () => {
      const rows = await reads.run((db) => channelList(db));
      return {
        channels: rows.map((r) => ({
          id: r.id,
          lastFragmentAt: r.last_fragment_ms,
          fragmentCount: r.fragment_count,
          lastPosition: r.last_position,
        })),
      };
    });

    app.get<{ Params: { channel: string }; Querystring: { from?: string; to?: string; after?: string; limit?: number } }>(
      '/:channel/captions',
      {
        schema: {
          summary: "A channel's caption fragments in log order, a page at a time",
          params: params(channelParam),
          response: {
            200: json('A page; next is the after of the next page, null at the end', {
              ...obj({ channel: { type: 'string' }, items: { type: 'array', items: ref('CaptionItem') }, next: nullableString }),
            }),
          },
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: {
              from: { type: 'string' },
              to: { type: 'string' },
              after: { type: 'string' },
              limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
            },
          },
        },
      },
      async (req) => {
        const { channel } = req.params;
        if (!isChannelId(channel)) throw badRequest('channel', CHANNEL_ID_RULE);
        const from = parseTime('from', req.query.from);
        const to = parseTime('to', req.query.to);
        const limit = req.query.limit ?? 100;
        const after = req.query.after === undefined ? undefined : parsePosition(req.query.after);
        if (req.query.after !== undefined) {
          if (!after) throw badRequest('after', 'must be a position "partition:offset" as returned by the API');
          if (after.partition !== partitionFor(channel, TOPICS.captions.partitions))
            throw badRequest('after', 'is a position of another channel');
        }
        const rows = await reads.run((db) => channelFragments(db, channel, { afterOffset: after?.offset, from, to }, limit + 1));
        const page = rows.slice(0, limit);
        const items = page.map((r) => {
          const { channel: _channel, ...fragment } = fragmentOf(r);
          return { position: formatPosition(r), ...fragment };
        });
        return { channel, items, next: rows.length > limit ? items.at(-1)!.position : null };
      },
    );
  };
}
