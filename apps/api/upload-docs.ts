// The tus 1.0 routes (uploads.ts) as OpenAPI operations, one per method: they share one fastify
// route per URL, so their documentation is written here and set into the document by openapi.ts.
import { PROBLEM_TYPE } from './errors.ts';

type Schema = Record<string, unknown>;

const header = (name: string, description: string, schema: Schema = { type: 'string' }, required = false): Schema => ({
  name,
  in: 'header',
  description,
  required,
  schema,
});
const tusResumable = header('Tus-Resumable', 'The tus version: 1.0.0', { type: 'string', const: '1.0.0' }, true);
const override = header('X-HTTP-Method-Override', 'Sent with POST by clients that cannot send PATCH, DELETE or HEAD (tus 1.0)', {
  type: 'string',
  enum: ['PATCH', 'DELETE', 'HEAD'],
});
const checksum = header('Upload-Checksum', 'checksum extension: "<sha1|sha256> <base64 digest>" of this request\'s body');
const offsetHeader = header('Upload-Offset', 'Bytes received so far', { type: 'integer', minimum: 0 });
const uploadId = { name: 'id', in: 'path', required: true, description: 'The upload id (a UUID)', schema: { type: 'string' } };

const out = (description: string): Schema => ({ description, schema: { type: 'string' } });
const tusHeadersOut = { 'Tus-Resumable': out('1.0.0') };
const problem = {
  description: 'An error (RFC 9457 problem)',
  content: { [PROBLEM_TYPE.split(';')[0]!]: { schema: { $ref: '#/components/schemas/Problem' } } },
};
const security = [{ proxyUser: [] }, { userToken: [] }, { adminToken: [] }];
const tags = ['uploads (tus 1.0)'];
const bytes = { 'application/offset+octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } };

/** The collection URL is not an upload: these methods answer a problem (as tus does). */
const notAnUpload = (method: string): Schema => ({
  tags,
  security,
  summary: `${method} needs an upload URL (/v1/uploads/{id}); here it is an error`,
  responses: { 404: { ...problem, description: 'Not an upload' }, default: problem },
});

export function tusPaths(): Record<string, Schema> {
  return {
    '/v1/uploads': {
      head: {
        ...notAnUpload('HEAD'),
        responses: { 404: { description: 'Not an upload (no body: a HEAD answer)' }, default: { description: 'An error (no body)' } },
      },
      patch: notAnUpload('PATCH'),
      delete: notAnUpload('DELETE'),
      post: {
        tags,
        security,
        summary: 'Create an upload (tus creation, creation-with-upload)',
        description:
          'The body may carry the first bytes (creation-with-upload). A finished upload is checked (sha256; a raw or media file) and ' +
          'rejected with 422 when it is not what it says. Metadata: filename, filetype, and for raw yuv420p: width, height, fps.',
        parameters: [
          tusResumable,
          header('Upload-Length', 'The whole size in bytes', { type: 'integer', minimum: 0 }),
          header('Upload-Defer-Length', 'creation-defer-length: 1 when the size is not known yet', { const: '1' }),
          header('Upload-Metadata', 'Comma-separated "key base64(value)" pairs: filename, filetype, width, height, fps'),
          checksum,
        ],
        requestBody: { required: false, content: bytes },
        responses: {
          201: {
            description: 'Created',
            headers: { Location: out('/v1/uploads/<id>'), 'Upload-Offset': out('Bytes stored with the creation'), ...tusHeadersOut },
          },
          default: problem,
        },
      },
      options: {
        tags,
        summary: 'tus discovery: the version, extensions, largest size and checksum algorithms',
        responses: {
          204: {
            description: 'The server tus capabilities',
            headers: {
              'Tus-Version': out('1.0.0'),
              'Tus-Extension': out('creation,creation-with-upload,termination,checksum,creation-defer-length,expiration'),
              'Tus-Max-Size': out('The largest upload in bytes'),
              'Tus-Checksum-Algorithm': out('sha1,sha256'),
              ...tusHeadersOut,
            },
          },
          default: problem,
        },
      },
    },
    '/v1/uploads/{id}': {
      head: {
        tags,
        security,
        summary: 'Where an upload is: its offset and length (to resume)',
        parameters: [uploadId, tusResumable, override],
        responses: {
          200: {
            description: 'The upload',
            headers: {
              'Upload-Offset': out('Bytes received'),
              'Upload-Length': out('The whole size, once known'),
              'Upload-Metadata': out('As given at creation'),
              'Upload-Expires': out('When an unfinished upload expires (RFC 9110 date)'),
              'Cache-Control': out('no-store'),
              ...tusHeadersOut,
            },
          },
          404: { description: 'No such upload of yours (no body: a HEAD answer)' },
          default: { description: 'An error (no body: a HEAD answer)' },
        },
      },
      patch: {
        tags,
        security,
        summary: 'Append bytes at Upload-Offset',
        description: 'Java clients send POST with X-HTTP-Method-Override: PATCH; that is honoured.',
        parameters: [
          uploadId,
          tusResumable,
          offsetHeader,
          checksum,
          header('Upload-Length', 'With a deferred length: the size, now known'),
          override,
        ],
        requestBody: { required: true, content: bytes },
        responses: {
          204: {
            description: 'Stored',
            headers: { 'Upload-Offset': out('The new offset'), 'Upload-Expires': out('When it expires unless finished'), ...tusHeadersOut },
          },
          409: { ...problem, description: 'Upload-Offset is not where the upload is' },
          422: { ...problem, description: 'The finished upload was rejected (field "file" says why)' },
          460: { ...problem, description: 'checksum mismatch (tus checksum extension)' },
          default: problem,
        },
      },
      post: {
        tags,
        security,
        summary: 'PATCH, DELETE or HEAD, for clients that cannot send those methods (tus 1.0 X-HTTP-Method-Override)',
        parameters: [uploadId, tusResumable, { ...override, required: true }, offsetHeader, checksum],
        requestBody: { required: false, content: bytes },
        responses: {
          200: { description: 'As HEAD', headers: { 'Upload-Offset': out('Bytes received'), ...tusHeadersOut } },
          201: {
            description: 'Without an override: tus creates a new upload (as POST /v1/uploads)',
            headers: { Location: out('/v1/uploads/<id>') },
          },
          204: { description: 'As PATCH or DELETE', headers: { 'Upload-Offset': out('The new offset'), ...tusHeadersOut } },
          default: problem,
        },
      },
      delete: {
        tags,
        security,
        summary: 'Terminate an unfinished upload (tus termination); a finished one stays',
        parameters: [uploadId, tusResumable, override],
        responses: { 204: { description: 'Terminated', headers: tusHeadersOut }, default: problem },
      },
      options: {
        tags,
        summary: 'CORS preflight and tus discovery for an upload URL',
        parameters: [uploadId],
        responses: { 204: { description: 'As OPTIONS /v1/uploads' }, default: problem },
      },
    },
  };
}
