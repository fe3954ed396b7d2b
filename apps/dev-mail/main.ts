// Development only: a local SMTP server that delivers nothing and keeps every message it receives
// (infra/dev-mailbox.ts), so the api can show them at /mail. `npm start` runs it when SMTP_URL is
// unset and points the notifier at it. It listens on 127.0.0.1 only.
import { SMTPServer } from 'smtp-server';
import { loadConfig } from '../../infra/config.ts';
import { saveMail } from '../../infra/dev-mailbox.ts';
import { createLogger } from '../../infra/logger.ts';

const MAX_MESSAGE_BYTES = 10 * 1024 * 1024;

const config = loadConfig();
const logger = createLogger('dev-mail', config.logLevel);
const dir = config.devMailDir;
if (!dir) {
  logger.error('DEV_MAIL_DIR is not set: dev mail has nowhere to keep messages');
  process.exit(1);
}

const server = new SMTPServer({
  banner: 'castlog dev mail: keeps what it receives, delivers nothing',
  authOptional: true,
  onAuth: (_auth, _session, callback) => callback(null, { user: 'dev' }),
  disabledCommands: ['STARTTLS'],
  size: MAX_MESSAGE_BYTES,
  logger: false,
  onData(stream, session, callback) {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      if ((stream as { sizeExceeded?: boolean }).sizeExceeded)
        return callback(Object.assign(new Error('message too large'), { responseCode: 552 }));
      saveMail(dir, Buffer.concat(chunks)).then(
        (id) => {
          logger.info({ id, to: session.envelope.rcptTo.map((r) => r.address) }, 'mail kept');
          callback();
        },
        (err: unknown) => {
          logger.error({ err }, 'could not keep a message');
          callback(Object.assign(new Error('could not keep the message'), { responseCode: 451 }));
        },
      );
    });
  },
});
server.on('error', (err) => {
  logger.error({ err }, 'smtp server error');
  if (!server.server.listening) process.exit(1); // could not listen (the port is taken): let the supervisor try again
});
server.listen(config.devMailPort, '127.0.0.1', () => logger.info({ port: config.devMailPort, dir }, 'dev mail running'));

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => server.close(() => process.exit(0)));
}
