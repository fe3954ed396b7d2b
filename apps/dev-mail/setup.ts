// How `npm start` sets up e-mail: with SMTP_URL, alert e-mails go there and there is no dev mail
// (no local server, no /mail); without it, a local SMTP server keeps them in DEV_MAIL_DIR (by
// default .castlog/mail), the notifier sends to it, and the api shows them at /mail.
import { join } from 'node:path';

/** The environment every process gets, and whether the local SMTP server runs. */
export function withMailSetup(env: NodeJS.ProcessEnv, root: string, devMailPort: number): { env: NodeJS.ProcessEnv; devMail: boolean } {
  if (env.SMTP_URL) {
    const { DEV_MAIL_DIR: _off, ...rest } = env;
    return { env: rest, devMail: false };
  }
  return {
    env: { ...env, DEV_MAIL_DIR: env.DEV_MAIL_DIR || join(root, '.castlog', 'mail'), SMTP_URL: `smtp://127.0.0.1:${devMailPort}` },
    devMail: true,
  };
}
