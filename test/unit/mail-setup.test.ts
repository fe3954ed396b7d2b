// How npm start sets up e-mail (apps/dev-mail/setup.ts): dev mail exactly when no SMTP_URL is given.
import { describe, expect, it } from 'vitest';
import { withMailSetup } from '../../apps/dev-mail/setup.ts';

describe('npm start e-mail', () => {
  it('without SMTP_URL: a local SMTP server, the notifier pointed at it, and /mail on', () => {
    const { env, devMail } = withMailSetup({ API_PORT: '8080' }, '/repo', 2525);
    expect(devMail).toBe(true);
    expect(env).toEqual({ API_PORT: '8080', DEV_MAIL_DIR: '/repo/.castlog/mail', SMTP_URL: 'smtp://127.0.0.1:2525' });
    expect(withMailSetup({ DEV_MAIL_DIR: '/elsewhere' }, '/repo', 2600).env).toEqual({
      DEV_MAIL_DIR: '/elsewhere',
      SMTP_URL: 'smtp://127.0.0.1:2600',
    });
  });

  it('with SMTP_URL: that server, no local one, and /mail off even if DEV_MAIL_DIR was set', () => {
    const { env, devMail } = withMailSetup({ SMTP_URL: 'smtp://mail.example:587', DEV_MAIL_DIR: '/x' }, '/repo', 2525);
    expect(devMail).toBe(false);
    expect(env).toEqual({ SMTP_URL: 'smtp://mail.example:587' });
  });
});
