/**
 * The two ways the envelope layer refuses, with messages an operator can act on and that
 * never carry content: only check names, KMS error names and counts.
 */

/** Which check refused a sealed entry. */
export type DecryptCheck = 'malformed' | 'tampered' | 'wrong record' | 'wrong purpose' | 'wrong key' | 'KMS refused';

const EXPLAIN: Record<DecryptCheck, string> = {
  malformed: 'not a sealed entry of a known format',
  tampered: 'authentication failed: the ciphertext or its header was altered',
  'wrong record': 'sealed for another record',
  'wrong purpose': 'sealed for another purpose',
  'wrong key': 'KMS could not unwrap the data key with the configured key (another key, or an altered wrapped key)',
  'KMS refused': 'KMS refused to unwrap the data key',
};

export class DecryptError extends Error {
  override readonly name = 'DecryptError';
  constructor(readonly check: DecryptCheck, readonly kmsError?: string) {
    super(`cannot decrypt (${check}): ${EXPLAIN[check]}${kmsError ? ` (${kmsError})` : ''}`);
  }
}

/** KMS could not provide a data key: no write happens, there is no plaintext fallback. */
export class KeyUnavailableError extends Error {
  override readonly name = 'KeyUnavailableError';
  constructor(readonly reason: string, readonly tries: number) {
    super(`KMS key unavailable (${reason}) after ${tries} ${tries === 1 ? 'try' : 'tries'}`);
  }
}

/** How a KMS failure should be handled: retried, or final. */
export type KmsFailure =
  | { kind: 'transient'; name: string }
  | { kind: 'wrong key'; name: string }
  | { kind: 'refused'; name: string };

const WRONG_KEY = new Set(['InvalidCiphertextException', 'IncorrectKeyException', 'NotFoundException']);
const REFUSED = new Set([
  'AccessDeniedException', 'DisabledException', 'KMSInvalidStateException', 'InvalidKeyUsageException',
  'InvalidGrantTokenException', 'ValidationException', 'UnrecognizedClientException',
  'InvalidSignatureException', 'ExpiredTokenException', 'CredentialsProviderError',
]);

/**
 * Sorts a KMS (or network) error by its `name`, which the SDK sets from the wire `__type`.
 * Anything not known to be final (throttling, 5xx, resets, timeouts) counts as transient.
 */
export function classifyKmsError(err: unknown): KmsFailure {
  const raw = err instanceof Error ? err.name : 'UnknownError';
  const name = raw.replace(/^.*#/, '') || 'UnknownError';
  if (WRONG_KEY.has(name)) return { kind: 'wrong key', name };
  if (REFUSED.has(name)) return { kind: 'refused', name };
  const code = (err as { code?: unknown } | null)?.code;
  return { kind: 'transient', name: name === 'Error' && typeof code === 'string' ? code : name };
}
