/**
 * The sandbox org's OAuth 2.0 token endpoint (`POST /services/oauth2/token`) and its
 * sessions. Three grants, as a connected app offers them: username-password,
 * client credentials (run as the integration user) and the JWT bearer flow (RS256,
 * verified with the public half of `credentials.privateKeyPem`).
 *
 * Sessions time out after `sessionTtlMs` of inactivity on the sandbox clock; like
 * Salesforce, use extends a session only once half of its timeout has passed.
 */
import { createHmac, randomBytes, type KeyObject } from 'node:crypto';
import { errors as joseErrors, jwtVerify } from 'jose';
import type { SandboxClock } from '../clock.js';
import type { SessionValidator } from './events.js';

export const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

export interface OAuthConfig {
  /** The sandbox's own URL: login host and instance host at once. */
  url: string;
  orgId: string;
  clientId: string;
  clientSecret: string;
  /** Public key of the connected app's certificate (JWT bearer). */
  publicKey: KeyObject;
  users: Array<{ id: string; username: string; password: string }>;
  /** The connected app's Run-As user for client credentials. */
  runAsUserId: string;
}

export interface TokenReply {
  status: number;
  body: Record<string, string>;
}

interface Session {
  userId: string;
  expiresAt: number;
}

export class SessionStore implements SessionValidator {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly clock: SandboxClock, private readonly ttlMs: number, private readonly orgId: string) {}

  issue(userId: string): string {
    const token = `${this.orgId.slice(0, 15)}!${randomBytes(48).toString('base64url')}`;
    this.sessions.set(token, { userId, expiresAt: this.clock.now() + this.ttlMs });
    return token;
  }

  validate(accessToken: string): string | undefined {
    const s = this.sessions.get(accessToken);
    const now = this.clock.now();
    if (!s) return undefined;
    if (now >= s.expiresAt) {
      this.sessions.delete(accessToken);
      return undefined;
    }
    if (s.expiresAt - now < this.ttlMs / 2) s.expiresAt = now + this.ttlMs;
    return s.userId;
  }

  expireAll(): void {
    this.sessions.clear();
  }
}

const fail = (error: string, description: string, status = 400): TokenReply => ({
  status,
  body: { error, error_description: description },
});

/** Answers one token request (form parameters already parsed). */
export async function tokenRequest(params: URLSearchParams, cfg: OAuthConfig, sessions: SessionStore, now: number): Promise<TokenReply> {
  const grant = params.get('grant_type');
  let userId: string | TokenReply;
  if (grant === 'password') userId = passwordGrant(params, cfg);
  else if (grant === 'client_credentials') userId = clientCheck(params, cfg, true) ?? cfg.runAsUserId;
  else if (grant === JWT_BEARER) userId = await jwtGrant(params.get('assertion') ?? '', cfg, now);
  else return fail('unsupported_grant_type', 'grant type not supported');
  if (typeof userId !== 'string') return userId;

  const token = sessions.issue(userId);
  const id = `${cfg.url}/id/${cfg.orgId}/${userId}`;
  const issuedAt = String(now);
  return {
    status: 200,
    body: {
      access_token: token,
      instance_url: cfg.url,
      id,
      token_type: 'Bearer',
      issued_at: issuedAt,
      // Salesforce signs id + issued_at with the consumer secret so a client can verify the reply.
      signature: createHmac('sha256', cfg.clientSecret).update(id + issuedAt).digest('base64'),
      scope: 'api',
    },
  };
}

/** undefined when the client is known (and, if required, its secret right). */
function clientCheck(params: URLSearchParams, cfg: OAuthConfig, secretRequired: boolean): TokenReply | undefined {
  if (params.get('client_id') !== cfg.clientId) return fail('invalid_client_id', 'client identifier invalid');
  const secret = params.get('client_secret');
  if ((secretRequired || secret !== null) && secret !== cfg.clientSecret) return fail('invalid_client', 'invalid client credentials');
  return undefined;
}

function passwordGrant(params: URLSearchParams, cfg: OAuthConfig): string | TokenReply {
  const bad = clientCheck(params, cfg, true);
  if (bad) return bad;
  const user = cfg.users.find((u) => u.username === params.get('username'));
  if (!user || user.password !== params.get('password')) return fail('invalid_grant', 'authentication failure');
  return user.id;
}

const AUDIENCES = ['https://login.salesforce.com', 'https://test.salesforce.com'];

async function jwtGrant(assertion: string, cfg: OAuthConfig, now: number): Promise<string | TokenReply> {
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(assertion, cfg.publicKey, {
      algorithms: ['RS256'],
      audience: [cfg.url, cfg.url + '/', ...AUDIENCES, ...AUDIENCES.map((a) => a + '/')],
      currentDate: new Date(now),
      requiredClaims: ['iss', 'sub', 'aud', 'exp'],
    }));
  } catch (err) {
    if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'aud') return fail('invalid_grant', 'audience is invalid');
    if (err instanceof joseErrors.JWTExpired) return fail('invalid_grant', 'expired authorization code');
    return fail('invalid_grant', 'invalid assertion');
  }
  if (claims.iss !== cfg.clientId) return fail('invalid_client_id', 'client identifier invalid');
  const user = cfg.users.find((u) => u.username === claims.sub);
  if (!user) return fail('invalid_grant', 'user hasn\'t approved this consumer');
  return user.id;
}
