/**
 * Device authentication and authorization: a device presents a JWT as
 * `Authorization: Bearer <token>`, signed with the HMAC secret
 * (DEVICE_JWT_SECRET, HS256/384/512) or a key of the JWKS (DEVICE_JWKS,
 * asymmetric algorithms only).
 *
 * Claims: `sub` (the device id), `kind: "device"` (so that a hub user token
 * signed by a shared key can never pass as a device token, and the other way
 * round as long as the hub requires its own kind), `topics` (names and
 * `prefix.*` patterns), `exp` if the operator wants expiry (checked when
 * present), `iss`/`aud` when DEVICE_JWT_ISSUER / DEVICE_JWT_AUDIENCE are set.
 */
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { ASYMMETRIC_ALGORITHMS, HMAC_ALGORITHMS, bearerFromAuthorization } from '../protocol/bearer.ts';
import { TributaryError } from '../protocol/errors.ts';
import { LIMITS } from '../protocol/limits.ts';
import { utf8Length } from '../protocol/record.ts';
import type { EdgeConfig } from './config.ts';
import { matchesAny, parseTopicPattern, type TopicPattern } from '../protocol/topic-patterns.ts';

const DEVICE_TOKEN_KIND = 'device';
/** `device:<sub>` must fit the hub's producer id. */
const PRODUCER_ID_PREFIX = 'device:';
const MAX_DEVICE_ID_BYTES = LIMITS.maxProducerIdBytes - PRODUCER_ID_PREFIX.length;
const MAX_TOPIC_PATTERNS = 256;

export interface Device {
  /** The token's `sub`. */
  id: string;
  /** `device:<id>`: the idempotent producer id the hub sees. */
  producerId: string;
  topics: TopicPattern[];
}

function bearerToken(request: Request): string {
  const token = bearerFromAuthorization(request.headers.get('authorization'));
  if (token === null) throw new TributaryError('UNAUTHENTICATED', 'a device token is required: Authorization: Bearer <token>');
  return token;
}

async function verify(token: string, config: EdgeConfig): Promise<JWTPayload> {
  let alg: string | undefined;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch {
    throw new TributaryError('TOKEN_INVALID', 'token is not a JWT');
  }
  const options: JWTVerifyOptions = { clockTolerance: config.deviceClockToleranceS };
  if (config.deviceIssuer) options.issuer = config.deviceIssuer;
  if (config.deviceAudience) options.audience = config.deviceAudience;
  try {
    // The key family follows the token's alg, but each key only accepts its own
    // family: an HS token can never be checked against a JWKS public key
    // (the classic alg-confusion hole), nor an RS/ES token against the secret.
    if (alg !== undefined && (HMAC_ALGORITHMS as readonly string[]).includes(alg)) {
      if (!config.deviceSecret) throw new TributaryError('TOKEN_INVALID', `this worker does not accept ${alg} device tokens`);
      return (await jwtVerify(token, config.deviceSecret, { ...options, algorithms: [...HMAC_ALGORITHMS] })).payload;
    }
    if (!config.deviceJwks) throw new TributaryError('TOKEN_INVALID', `this worker does not accept ${String(alg)} device tokens`);
    return (await jwtVerify(token, config.deviceJwks, { ...options, algorithms: [...ASYMMETRIC_ALGORITHMS] })).payload;
  } catch (err) {
    if (err instanceof TributaryError) throw err;
    if (err instanceof joseErrors.JWTExpired) throw new TributaryError('TOKEN_EXPIRED', 'device token has expired');
    if (err instanceof joseErrors.JOSEError) throw new TributaryError('TOKEN_INVALID', `device token rejected: ${err.code}`);
    throw err;
  }
}

function deviceFromClaims(payload: JWTPayload): Device {
  if (payload.kind !== DEVICE_TOKEN_KIND) throw new TributaryError('TOKEN_INVALID', `not a device token: the "kind" claim must be "${DEVICE_TOKEN_KIND}"`);
  const deviceId = payload.sub;
  if (typeof deviceId !== 'string' || deviceId.length === 0) throw new TributaryError('TOKEN_INVALID', 'device token has no "sub" (device id)');
  if (utf8Length(deviceId) > MAX_DEVICE_ID_BYTES) throw new TributaryError('TOKEN_INVALID', `device id longer than ${MAX_DEVICE_ID_BYTES} bytes`);
  // The id travels in a header and a record key; control characters have no business there.
  if (/[\u0000-\u001f\u007f]/.test(deviceId)) throw new TributaryError('TOKEN_INVALID', 'device id contains control characters');
  const claim = payload.topics;
  if (claim === undefined) return { id: deviceId, producerId: PRODUCER_ID_PREFIX + deviceId, topics: [] };
  if (!Array.isArray(claim) || claim.length > MAX_TOPIC_PATTERNS) {
    throw new TributaryError('TOKEN_INVALID', `the "topics" claim must be an array of at most ${MAX_TOPIC_PATTERNS} topic names or "prefix.*" patterns`);
  }
  const topics = claim.map((p: unknown) => {
    const pattern = typeof p === 'string' ? parseTopicPattern(p) : undefined;
    if (!pattern) throw new TributaryError('TOKEN_INVALID', `the "topics" claim has an invalid pattern ${JSON.stringify(p)}`);
    return pattern;
  });
  return { id: deviceId, producerId: PRODUCER_ID_PREFIX + deviceId, topics };
}

/** Verifies the request's device token; throws UNAUTHENTICATED / TOKEN_INVALID / TOKEN_EXPIRED. */
export async function authenticateDevice(request: Request, config: EdgeConfig): Promise<Device> {
  return deviceFromClaims(await verify(bearerToken(request), config));
}

/** A device may publish to a topic its token names and the worker allows; throws FORBIDDEN otherwise. */
export function authorizeTopic(device: Device, topic: string, config: EdgeConfig): void {
  if (!matchesAny(device.topics, topic)) throw new TributaryError('FORBIDDEN', `device ${JSON.stringify(device.id)} may not publish to topic ${JSON.stringify(topic)}`);
  if (!matchesAny(config.allowedTopics, topic)) throw new TributaryError('FORBIDDEN', `this edge worker does not accept topic ${JSON.stringify(topic)}`);
}
