// Encodes: POST /v1/encodes asks for one (202, or 200 with your existing job when you already asked
// for the same file with the same options), optionally with a webhook its EncodeCompleted /
// EncodeFailed are POSTed to (the notifier sends them), POST /v1/encodes/check asks before uploading, GET
// answers from the read model, and /output downloads the result with HTTP Range. Workers do the
// encoding. Every job is its owner's alone: what other users asked for is never an answer here,
// except that an output already stored for the same file and options (bytes are content-addressed)
// completes a new job at once instead of being encoded again.
import type { FastifyPluginAsync } from 'fastify';
import type { Selectable } from 'kysely';
import { webhookUrlProblem } from '../../domain/alerts/input.ts';
import { isUuid } from '../../domain/ids.ts';
import { encodeJob, jobStream, planOf, type EncodeCommand, type JobState, type StoredOutput } from '../../domain/encodes/job.ts';
import { jobIdOf, normalizeOptions, rawFrameBytes } from '../../domain/encodes/options.ts';
import { upload, uploadStream } from '../../domain/uploads/upload.ts';
import type { BlobStore } from '../../infra/blobs/blob-store.ts';
import type { Config } from '../../infra/config.ts';
import { webhookSecret } from '../../infra/signing.ts';
import { webhookTargetProblem } from '../../infra/webhook-target.ts';
import type { Db } from '../../projections/database.ts';
import { CommandHandler } from '../../infra/eventstore/command-handler.ts';
import type { EventStore } from '../../infra/eventstore/port.ts';
import type { EncodeJobsTable } from '../../projections/database.ts';
import { outputsOf } from '../../projections/encodes/outputs.ts';
import { ownJobRow } from '../../projections/encodes/queries.ts';
import type { EncodeOptions } from '../../schemas/types.generated.ts';
import { requireUser } from './access.ts';
import { badRequest, HttpError } from './errors.ts';
import { json, media, nullableString, obj, params, ref, uuid } from './api-schemas.ts';

const job = obj(
  {
    jobId: uuid,
    status: { type: 'string' },
    step: nullableString,
    percent: { type: ['number', 'null'] },
    stepsDone: { type: 'array', items: { type: 'string' } },
    attempt: { type: 'integer' },
    options: ref('EncodeOptions'),
    filename: { type: 'string' },
    raw: { type: 'boolean' },
    uploadId: uuid,
    error: nullableString,
    stderrTail: nullableString,
    output: { oneOf: [{ type: 'null' }, obj({ size: { type: 'integer' }, url: { type: 'string' } })] },
    updatedAt: { type: 'integer' },
  },
  ['jobId', 'status', 'attempt', 'options', 'filename', 'raw', 'uploadId', 'output', 'updatedAt'],
);

const SHA256 = /^[0-9a-f]{64}$/;
const SOURCE = '/api/encodes';
const MEDIA_TYPES: Record<string, string> = { mp4: 'video/mp4', mkv: 'video/x-matroska', hevc: 'video/hevc' };

const body = (req: { body: unknown }): Record<string, unknown> => {
  if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body))
    throw new HttpError(400, 'body: must be a JSON object', 'body');
  return req.body as Record<string, unknown>;
};

/** Parses a single `bytes=` range against a size; undefined when the header asks for none. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'unsatisfiable';
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}

export function encodeRoutes(deps: { store: EventStore; db: Db; blobs: BlobStore; config: Config }): FastifyPluginAsync {
  const { store, db, blobs, config } = deps;
  const handler = new CommandHandler(store);

  /** The webhook a request asks for (`{"url": …}`), checked as the notifier will check it before each send. */
  async function webhookOf(webhook: unknown): Promise<string | null> {
    if (webhook === undefined || webhook === null) return null;
    if (typeof webhook !== 'object' || Array.isArray(webhook)) throw badRequest('webhook', 'must be an object {"url": "https://…"}');
    for (const key of Object.keys(webhook)) if (key !== 'url') throw badRequest(`webhook.${key}`, 'unknown field');
    const url = (webhook as { url?: unknown }).url;
    const problem = webhookUrlProblem(url) ?? (await webhookTargetProblem(url as string, config.webhookAllowedHosts));
    if (problem) throw badRequest('webhook.url', problem);
    if (!config.signingSecret) throw new HttpError(503, 'webhook: webhooks are not enabled here (SIGNING_SECRET)', 'webhook');
    return url as string;
  }

  /** Whether the output the blob store should hold is there, whole (by size, as the worker checks). */
  const stored = async (output: StoredOutput) => (await blobs.size(output.sha256)) === output.size;

  /** The completed attempt of a job whose output has gone from the blob store, or null. */
  const lostAttempt = async (job: JobState) =>
    job.status === 'completed' && job.output && !(await stored(job.output)) ? job.attempt : null;

  /** An output of this file and options still in the blob store, made by anyone's job; null when none is. */
  async function reusableOutput(sha256: string, options: EncodeOptions): Promise<StoredOutput | null> {
    for (const candidate of await outputsOf(db, sha256, options)) if (await stored(candidate)) return candidate;
    return null;
  }

  return async (app) => {
    const webhookIn = { type: ['object', 'null'], required: ['url'], additionalProperties: false, properties: { url: { type: 'string' } } };
    const request = {
      type: 'object',
      required: ['uploadId'],
      additionalProperties: false,
      properties: { uploadId: uuid, options: ref('EncodeOptions'), webhook: webhookIn },
    };
    const accepted = obj(
      {
        jobId: uuid,
        status: { type: 'string' },
        attempt: { type: 'integer' },
        webhook: obj({ url: { type: 'string' }, secret: { type: 'string', description: 'Signs the webhook calls' } }),
      },
      ['jobId', 'status', 'attempt'],
    );
    const again = obj(
      { jobId: uuid, status: { type: 'string' }, deduplicated: { const: true }, again: { const: true }, message: { type: 'string' } },
      ['jobId', 'status', 'deduplicated'],
    );
    const requestDoc = {
      summary: 'Encode a completed upload to HEVC (one job per user, file and options: asking again answers the same job)',
      response: { 202: json('Requested', accepted), 200: json('Already asked for: the same job', again) },
    };
    // The bodies are documented only: the handlers check them and word their errors.
    app.post('/', { schema: requestDoc, config: { openapi: { body: request } } }, async (req, reply) => {
      const userId = requireUser(req);
      const b = body(req);
      const uploadId = b.uploadId;
      if (uploadId === undefined) throw new HttpError(400, 'uploadId: required', 'uploadId');
      if (typeof uploadId !== 'string' || !isUuid(uploadId)) throw new HttpError(400, 'uploadId: must be a UUID', 'uploadId');
      for (const key of Object.keys(b))
        if (key !== 'uploadId' && key !== 'options' && key !== 'webhook') throw new HttpError(400, `${key}: unknown parameter`, key);
      const webhookUrl = await webhookOf(b.webhook);
      const { state: file } = await store.load(uploadStream(uploadId.toLowerCase()), upload.initialState, upload.evolve);
      if (file.status === 'none' || file.userId !== userId) throw new HttpError(404, `uploadId: no upload ${uploadId}`, 'uploadId');
      if (file.status !== 'completed' || !file.sha256) {
        const status = file.status === 'uploading' ? 'not complete yet' : file.status;
        const reason = file.reason ? ` (${file.reason})` : '';
        throw new HttpError(409, `uploadId: the upload is ${status}${reason}`, 'uploadId');
      }
      const options = await normalizeOptions(b.options, file.raw);
      if (file.raw && file.length % rawFrameBytes(options.width!, options.height!) !== 0) {
        throw new HttpError(
          400,
          `options.width: ${file.length} bytes is not a whole number of ${options.width}x${options.height} yuv420p frames`,
          'options.width',
        );
      }
      const jobId = jobIdOf(userId, file.sha256, options);
      const sha256 = file.sha256;
      // The facts the decision needs from outside the job's stream: is this job's output still stored,
      // and is an output of the same encode stored (only looked for when this job would run anew).
      const { state: before } = await store.load(jobStream(jobId), encodeJob.initialState, encodeJob.evolve);
      const lostOutputOfAttempt = await lostAttempt(before);
      const anew = before.status === 'none' || before.status === 'failed' || lostOutputOfAttempt !== null;
      const reuse = anew ? await reusableOutput(sha256, options) : null;
      const { events, state } = await handler.handle(
        encodeJob,
        jobStream(jobId),
        (): EncodeCommand => ({
          type: 'Request',
          jobId,
          userId,
          uploadId: uploadId.toLowerCase(),
          sha256,
          filename: file.filename,
          raw: file.raw,
          options,
          webhookUrl,
          now: Date.now(),
          reuse,
          lostOutputOfAttempt,
        }),
        { key: jobId, source: SOURCE },
      );
      if (events[0]!.type === 'EncodeRequested') {
        // With a webhook: the secret its receiver checks signatures with (infra/signing.ts), derived again on every send.
        const webhook =
          webhookUrl && config.signingSecret
            ? { webhook: { url: webhookUrl, secret: webhookSecret(config.signingSecret, `encode:${jobId}`) } }
            : {};
        return reply.status(202).send({ jobId, status: state.status, attempt: state.attempt, ...webhook });
      }
      return reply
        .status(200)
        .send({ jobId, status: state.status, deduplicated: true, again: true, message: 'you already asked for this encode; here it is' });
    });

    // About the caller's own jobs only: whether anyone else holds the file is not theirs to know.
    const check = {
      type: 'object',
      required: ['sha256'],
      additionalProperties: false,
      properties: { sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' }, options: ref('EncodeOptions') },
    };
    const checkDoc = {
      summary: 'Whether an encode of a file (by sha256) with these options exists already',
      response: {
        200: json('The answer', obj({ exists: { type: 'boolean' }, jobId: { type: ['string', 'null'] }, status: nullableString })),
      },
    };
    app.post('/check', { schema: checkDoc, config: { openapi: { body: check } } }, async (req) => {
      const userId = requireUser(req);
      const b = body(req);
      for (const key of Object.keys(b))
        if (key !== 'sha256' && key !== 'options') throw new HttpError(400, `${key}: unknown parameter`, key);
      if (typeof b.sha256 !== 'string' || !SHA256.test(b.sha256))
        throw new HttpError(400, 'sha256: must be 64 lowercase hex digits', 'sha256');
      const given = (b.options ?? {}) as Record<string, unknown>;
      // Before uploading, the file's kind is told by the options: raw video is the one with a size and rate.
      const raw = typeof given === 'object' && given !== null && ['width', 'height', 'fps'].some((k) => k in given);
      const options = await normalizeOptions(b.options, raw);
      const jobId = jobIdOf(userId, b.sha256, options);
      const { state } = await store.load(jobStream(jobId), encodeJob.initialState, encodeJob.evolve);
      // A failed job, or one whose output is gone, would be encoded again: not an existing result.
      const exists = state.status !== 'none' && state.status !== 'failed' && (await lostAttempt(state)) === null;
      return { exists, jobId: exists ? jobId : null, status: exists ? state.status : null };
    });

    /**
     * The caller's own job, from the read model; from the job's own stream when the read model has
     * no row yet or one `upToDate` refuses (just asked for, or just completed: a client may act on
     * the answer to its request at once). Anyone else's job is answered exactly as one that does not exist.
     */
    async function ownJob(jobId: string, userId: string, upToDate: (job: Selectable<EncodeJobsTable>) => boolean = () => true) {
      const notFound = new HttpError(404, `jobId: no job ${jobId}`, 'jobId');
      if (!isUuid(jobId)) throw notFound;
      const id = jobId.toLowerCase();
      const row = await ownJobRow(db, id, userId);
      if (row && upToDate(row)) return row;
      const { state } = await store.load(jobStream(id), encodeJob.initialState, encodeJob.evolve);
      if (state.userId !== userId) throw notFound;
      return {
        job_id: id,
        user_id: state.userId,
        upload_id: state.uploadId,
        sha256: state.sha256,
        filename: state.filename,
        raw: state.raw,
        options: state.options as unknown,
        status: state.status,
        step: state.step,
        percent: state.percent,
        steps_done: planOf(state).filter((s) => state.completed[s] !== undefined),
        worker: state.worker,
        attempt: state.attempt,
        error: state.error,
        stderr_tail: null,
        output_sha256: state.output?.sha256 ?? null,
        output_size: state.output?.size ?? null,
        requested_at_ms: row?.requested_at_ms ?? state.lastEventAt,
        updated_at_ms: state.lastEventAt,
      } satisfies Selectable<EncodeJobsTable>;
    }

    const jobId = params({ jobId: uuid });
    const jobDoc = { summary: 'One of my encode jobs: status, step, percent', params: jobId, response: { 200: json('The job', job) } };
    app.get<{ Params: { jobId: string } }>('/:jobId', { schema: jobDoc }, async (req) => {
      const job = await ownJob(req.params.jobId, requireUser(req));
      return {
        jobId: job.job_id,
        status: job.status,
        step: job.step,
        percent: job.percent,
        stepsDone: job.steps_done,
        attempt: job.attempt,
        options: job.options,
        filename: job.filename,
        raw: job.raw,
        uploadId: job.upload_id,
        error: job.error,
        stderrTail: job.stderr_tail,
        output: job.status === 'completed' ? { size: job.output_size, url: `/v1/encodes/${job.job_id}/output` } : null,
        updatedAt: job.updated_at_ms,
      };
    });

    const video = Object.values(MEDIA_TYPES);
    const outputDoc = {
      summary: 'The output of a completed encode (Range requests: one bytes= range)',
      params: jobId,
      response: {
        200: media('The video', video),
        206: media('The range asked for (Content-Range)', video),
        416: json(
          'The range cannot be served (Content-Range: bytes */<size>)',
          obj({ error: { type: 'string' }, field: { const: 'range' } }),
        ),
      },
    };
    const rangeHeader = [{ name: 'range', in: 'header', required: false, schema: { type: 'string', pattern: '^bytes=' } }];
    app.get<{ Params: { jobId: string } }>(
      '/:jobId/output',
      { schema: outputDoc, config: { openapi: { parameters: rangeHeader } } },
      async (req, reply) => {
        const userId = requireUser(req);
        const job = await ownJob(req.params.jobId, userId, (row) => row.status === 'completed');
        if (job.status !== 'completed' || !job.output_sha256)
          throw new HttpError(409, `jobId: the encode is ${job.status}, not completed`, 'jobId');
        const size = await blobs.size(job.output_sha256);
        if (size === undefined)
          throw new HttpError(410, 'jobId: the output is no longer stored; ask for this encode again to make it anew', 'jobId');
        const container = (job.options as { container: string }).container;
        const name = `${job.filename.replace(/\.[^.]*$/, '').replace(/[^\w.-]+/g, '_') || 'output'}.${container}`;
        reply
          .header('accept-ranges', 'bytes')
          .header('content-type', MEDIA_TYPES[container] ?? 'application/octet-stream')
          .header('content-disposition', `attachment; filename="${name}"`)
          .header('etag', `"${job.output_sha256}"`);
        const range = parseRange(req.headers.range, size);
        if (range === 'unsatisfiable') {
          reply.removeHeader('content-disposition');
          return reply
            .status(416)
            .header('content-range', `bytes */${size}`)
            .type('application/json; charset=utf-8')
            .send(JSON.stringify({ error: `range: not satisfiable for ${size} bytes`, field: 'range' }));
        }
        if (range) {
          reply
            .status(206)
            .header('content-range', `bytes ${range.start}-${range.end}/${size}`)
            .header('content-length', range.end - range.start + 1);
          return reply.send(blobs.read(job.output_sha256, range));
        }
        reply.header('content-length', size);
        return reply.send(blobs.read(job.output_sha256));
      },
    );
  };
}
