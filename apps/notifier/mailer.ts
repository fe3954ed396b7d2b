// Sends e-mail through SMTP (nodemailer, SMTP_URL), each with the one-click unsubscribe headers of
// RFC 8058, and tells a failure worth trying again (no connection, a 4xx reply) from one that is
// not (a 5xx reply: the address or message is refused).
import nodemailer, { type Transporter } from 'nodemailer';
import type { EmailMessage } from './email-message.ts';

export interface MailResult {
  /** The SMTP reply code of a refusal, or 250 when accepted. */
  status: number | null;
  error: string | null;
  permanent: boolean;
}

export class Mailer {
  private readonly transport: Transporter;

  constructor(
    smtpUrl: string,
    private readonly from: string,
    timeoutMs = 10_000,
  ) {
    this.transport = nodemailer.createTransport({
      url: smtpUrl,
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      // Also bounds waiting for the server's answer to the message itself.
      socketTimeout: 3 * timeoutMs,
    } as Parameters<typeof nodemailer.createTransport>[0]);
  }

  async send(to: string, message: EmailMessage, unsubscribeUrl: string, headers: Record<string, string> = {}): Promise<MailResult> {
    try {
      await this.transport.sendMail({
        from: this.from,
        to,
        subject: message.subject,
        text: message.text,
        html: message.html,
        list: { unsubscribe: unsubscribeUrl },
        headers: { 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click', ...headers },
      });
      return { status: 250, error: null, permanent: false };
    } catch (err) {
      const e = err as { responseCode?: number; code?: string; message?: string };
      const status = typeof e.responseCode === 'number' ? e.responseCode : null;
      const why = (e.message ?? String(err)).slice(0, 500);
      return { status, error: `SMTP: ${why}`, permanent: status !== null && status >= 500 && status < 600 };
    }
  }

  close(): void {
    this.transport.close();
  }
}
