/**
 * A real SMTP server in the test process (smtp-server), on 127.0.0.1, keeping every
 * message it accepted, parsed with mailparser. Told to, it refuses the next few RCPT
 * TO or DATA commands with a 4xx or 5xx, then accepts again, as a busy or fussy mail
 * server would.
 */
import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  /** RCPT TO addresses. */
  to: string[];
  /** The message as received (headers unfolded by the reader, not here). */
  raw: string;
  parsed: ParsedMail;
}

export type SmtpStage = 'rcpt' | 'data';

export interface TestSmtpServer {
  /** `smtp://127.0.0.1:<port>`, for SMTP_URL. */
  url: string;
  received: ReceivedMail[];
  /** Refusals answered so far. */
  refused: Array<{ stage: SmtpStage; to: string[]; code: number }>;
  /** Refuse the next `times` commands of `stage` with `code`. */
  refuseNext: (stage: SmtpStage, code: number, times: number) => void;
  /** What `address` received. */
  to: (address: string) => ReceivedMail[];
  close: () => Promise<void>;
}

const smtpError = (code: number, message: string) => Object.assign(new Error(message), { responseCode: code });

export async function startSmtpServer(): Promise<TestSmtpServer> {
  const received: ReceivedMail[] = [];
  const refused: TestSmtpServer['refused'] = [];
  const planned: Record<SmtpStage, { code: number; times: number }> = { rcpt: { code: 0, times: 0 }, data: { code: 0, times: 0 } };
  /** The refusal to answer now at this stage, if one is planned. */
  const refusal = (stage: SmtpStage, to: string[]) => {
    const plan = planned[stage];
    if (plan.times <= 0) return null;
    plan.times--;
    refused.push({ stage, to, code: plan.code });
    return smtpError(plan.code, stage === 'rcpt' ? 'Mailbox busy, try again' : 'Not now, try again later');
  };

  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onRcptTo(address, _session, callback) {
      callback(refusal('rcpt', [address.address.toLowerCase()]) ?? undefined);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', async () => {
        const to = session.envelope.rcptTo.map((rcpt) => rcpt.address.toLowerCase());
        const refused = refusal('data', to);
        if (refused) return callback(refused);
        const raw = Buffer.concat(chunks).toString('utf8');
        received.push({ to, raw, parsed: await simpleParser(raw) });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    received,
    refused,
    refuseNext: (stage, code, times) => {
      planned[stage] = { code, times };
    },
    to: (address) => received.filter((mail) => mail.to.includes(address.toLowerCase())),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A header's value from the raw message, unfolded (mailparser reshapes List-* headers). */
export function rawHeader(mail: ReceivedMail, name: string): string | undefined {
  const headers = mail.raw.split(/\r?\n\r?\n/, 1)[0] ?? '';
  const unfolded = headers.replace(/\r?\n[ \t]+/g, ' ');
  const line = unfolded.split(/\r?\n/).find((header) => header.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(name.length + 1).trim();
}
