// Raw HTTP for tests that must send a request target exactly as written (absolute-form, "..",
// percent-encoding, "//"): node:http sends the path as given, where fetch would normalise it.
import http from 'node:http';
import { checkAnswer } from './contract.ts';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

export function rawRequest(
  port: number,
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: target,
        headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) },
        agent,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          // Checked as documented (contract.ts) when the target is a path; other forms are edge cases of HTTP itself.
          if (target.startsWith('/')) {
            const contentType = res.headers['content-type'];
            const json = /^application\/([\w.+-]+\+)?json\b/i.test(contentType ?? '');
            checkAnswer({
              method,
              url: `http://127.0.0.1:${port}${target}`,
              status: res.statusCode ?? 0,
              contentType,
              body: json ? text : undefined,
            });
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The text as JSON, or undefined when it is not JSON. */
export function jsonOrUndefined(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The JSON body of a response, or undefined when it is not JSON. */
export const jsonOf = (r: RawResponse): any => jsonOrUndefined(r.body);

/**
 * What is wrong with an error answer's shape (README "Errors"): an RFC 9457 problem whose "error"
 * repeats "detail" and whose "field" names the input at fault on every 4xx; on canWatch's routes,
 * canWatch's {"status":"ko","error",…} as JSON. Empty when the answer is right.
 */
export function errorShapeProblems(status: number, contentType: string | undefined, text: string, canWatch = false): string[] {
  const body = jsonOrUndefined(text);
  const problems: string[] = [];
  if (typeof body?.error !== 'string') return [`${status} without a JSON "error": ${text.slice(0, 200)}`];
  if (status < 500 && typeof body.field !== 'string') problems.push(`${status} without a "field": ${text.slice(0, 200)}`);
  if (canWatch) {
    if (!contentType?.startsWith('application/json')) problems.push(`${status} as ${contentType}, not canWatch's JSON`);
    if (body.status !== 'ko') problems.push(`${status} without canWatch's "status":"ko"`);
    return problems;
  }
  if (!contentType?.startsWith('application/problem+json')) problems.push(`${status} as ${contentType}, not application/problem+json`);
  if (body.status !== status) problems.push(`${status} whose body says status ${JSON.stringify(body.status)}`);
  if (body.type !== 'about:blank' || typeof body.title !== 'string') problems.push(`${status} without RFC 9457 type and title`);
  if (body.detail !== body.error) problems.push(`${status} whose detail is not its error`);
  return problems;
}

/** canWatch's routes keep canWatch's own error shape. */
export const isCanWatchRoute = (url: string) => url === '/users/newId' || url.startsWith('/streams/');
