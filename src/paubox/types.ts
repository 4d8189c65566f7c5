/**
 * The Paubox Email API's wire shapes (reference/paubox.md). Only what the worker sends is
 * typed strictly; responses are parsed defensively because the sources disagree.
 */

export interface PauboxAttachment {
  fileName: string;
  contentType: string;
  /** base64 */
  content: string;
}

export interface PauboxHeaders {
  subject: string;
  from: string;
  'reply-to'?: string;
  'In-Reply-To'?: string;
  References?: string;
  /** custom headers must start with `X-` */
  [header: `X-${string}`]: string;
}

export interface PauboxMessage {
  recipients: string[];
  cc?: string[];
  bcc?: string[];
  headers: PauboxHeaders;
  content: { 'text/plain'?: string; 'text/html'?: string };
  attachments?: PauboxAttachment[];
  allowNonTLS: boolean;
  forceSecureNotification: boolean;
}

/** Paubox accepted a message: the id to poll receipts with. */
export interface PauboxAccepted {
  trackingId: string;
  customHeaders?: Record<string, unknown>;
}
