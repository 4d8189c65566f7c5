/**
 * Structured logging: one JSON object per line on stdout (pino), with a stable `event`
 * name on every line so monitoring can alert on names, not on prose.
 *
 * PHI never reaches a log line by construction: callers log record ids, tracking ids,
 * statuses, counts and timings only. The redaction list below is the safety net for the
 * day someone logs a whole record or request by mistake.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

/** Fields that may hold PHI or secrets, at any depth a careless caller might use. */
const PHI_AND_SECRET_KEYS = [
  'To_Address__c', 'Cc_Address__c', 'Bcc_Address__c', 'From_Address__c', 'From_Name__c',
  'Reply_To__c', 'Subject__c', 'Html_Body__c', 'Text_Body__c', 'Delivery_Details__c',
  'recipients', 'recipient', 'cc', 'bcc', 'headers', 'content', 'attachments', 'subject',
  'fileName', 'Title', 'PathOnClient', 'VersionData', 'body', 'payload',
  'authorization', 'Authorization', 'accessToken', 'access_token', 'refreshToken',
  'apiKey', 'password', 'clientSecret', 'privateKey', 'assertion', 'Plaintext', 'secretAccessKey',
];

// Top level and one level down: log lines carry flat fields, so deeper paths would only
// cost time on every line (redaction was a visible share of a burst's CPU).
const REDACT_PATHS = PHI_AND_SECRET_KEYS.flatMap((k) => [k, `*.${k}`]);

export type Log = Logger;

export function createLogger(level: LevelWithSilent = 'info', destination?: pino.DestinationStream): Log {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      messageKey: 'msg',
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: safeError },
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/**
 * Node prints process warnings (the AWS SDK's NodeVersionSupportWarning, deprecations) on
 * stderr as prose. Monitoring reads JSON lines only, so Node's own printer is removed and
 * each warning becomes a `node.warning` line; nothing is hidden. This works from the
 * Procfile command as it stands, with no Node flags to keep in step with `npm start`.
 */
export function logProcessWarnings(log: Log): void {
  process.removeAllListeners('warning');
  process.on('warning', (w: Error & { code?: string }) => {
    log.warn({ event: 'node.warning', warning: w.name, ...(w.code ? { code: w.code } : {}), msg: scrub(w.message, 500) });
  });
}

const EMAIL_LIKE = /[^\s<>"'(),;:]+@[^\s<>"'(),;:]+/g;

/**
 * An error reduced to what is safe to log or store: its name, code and a message with
 * anything that looks like an address removed. Salesforce and Paubox echo field values
 * in some error messages, so messages are scrubbed and cut, never trusted.
 */
export function safeError(err: unknown): { name: string; code?: string; message: string } {
  if (!(err instanceof Error)) return { name: 'Error', message: scrub(String(err)) };
  const e = err as Error & { errorCode?: string; code?: string };
  const code = e.errorCode ?? e.code;
  return { name: e.name, ...(code ? { code: String(code) } : {}), message: scrub(e.message) };
}

export function scrub(text: string, max = 255): string {
  const clean = text.replace(EMAIL_LIKE, '[address]').replace(/\s+/g, ' ').trim();
  return clean.length > max ? clean.slice(0, max - 1) + '…' : clean;
}
