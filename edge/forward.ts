/**
 * Forwarding one device's readings to the hub as one produce request, and
 * mapping the hub's answer to the device's.
 *
 * With `x-sequence: N` the request is idempotent: producer id `device:<sub>`,
 * reading i has sequence N+i, and the hub answers a retry of an appended
 * request with the original offsets (`duplicate: true`). Without it the hub
 * appends every time it is asked: at-least-once.
 */
import { TributaryError, isErrorCode } from '../protocol/errors.ts';
import { LIMITS } from '../protocol/limits.ts';
import { utf8 } from '../protocol/record.ts';
import type { JsonProduceBody, JsonRecordIn } from '../protocol/values.ts';
import type { EdgeConfig } from './config.ts';
import type { Device } from './device-auth.ts';
import type { Reading } from './readings.ts';
import { jsonResponse } from './respond.ts';

const SEQUENCE_HEADER = 'x-sequence';
const DEVICE_ID_HEADER = 'device-id';
const RECEIVED_AT_HEADER = 'received-at';

export interface ForwardRequest {
  topic: string;
  device: Device;
  readings: Reading[];
  /** The first reading's sequence number, or undefined for at-least-once. */
  sequence: number | undefined;
  /** When the worker received the request (ms since the epoch). */
  receivedAtMs: number;
}

/** Reads `x-sequence`: absent → undefined; otherwise a non-negative integer such that every reading's number stays exact. */
export function parseSequence(request: Request, readingCount: number): number | undefined {
  const raw = request.headers.get(SEQUENCE_HEADER);
  if (raw === null) return undefined;
  const text = raw.trim();
  if (!/^\d{1,16}$/.test(text)) throw new TributaryError('BAD_SEQUENCE', `${SEQUENCE_HEADER} must be a non-negative integer, got ${JSON.stringify(raw.slice(0, 40))}`);
  const first = Number(text);
  if (!Number.isSafeInteger(first + readingCount - 1)) throw new TributaryError('BAD_SEQUENCE', `${SEQUENCE_HEADER} + readings - 1 exceeds 2^53 - 1`);
  return first;
}

/**
 * The hub's JSON produce body (the type http-records.ts reads). The key is
 * the device id, so a device's readings land on one partition in order.
 */
function hubRequestBody(req: ForwardRequest): Uint8Array {
  const headers = [
    [DEVICE_ID_HEADER, req.device.id],
    [RECEIVED_AT_HEADER, new Date(req.receivedAtMs).toISOString()],
  ];
  const records = req.readings.map((r): JsonRecordIn => ({ key: req.device.id, headers, timestamp: req.receivedAtMs, value: r }));
  const doc: JsonProduceBody = req.sequence === undefined ? { records } : { records, producerId: req.device.producerId, sequence: req.sequence };
  const body = utf8(JSON.stringify(doc));
  if (body.byteLength > LIMITS.maxFrameBytes) throw new TributaryError('BODY_TOO_LARGE', `readings take ${body.byteLength} bytes once stamped; the hub takes at most ${LIMITS.maxFrameBytes}`);
  return body;
}

function retryAfterHeader(hub: Response | undefined, config: EdgeConfig): Record<string, string> {
  const given = hub?.headers.get('retry-after');
  return { 'retry-after': given && /^\d{1,6}$/.test(given.trim()) ? given.trim() : String(config.retryAfterS) };
}

/**
 * The hub's error as a typed error (an unknown code becomes INTERNAL), or
 * undefined when its body says nothing. Only code and message reach the
 * device: the hub's details describe the worker's requests, not the device's.
 */
async function hubError(res: Response): Promise<TributaryError | undefined> {
  try {
    const body = (await res.json()) as { error?: { code?: unknown; message?: unknown } & Record<string, unknown> } | null;
    const e = body?.error;
    if (e && typeof e.code === 'string' && typeof e.message === 'string') return new TributaryError(isErrorCode(e.code) ? e.code : 'INTERNAL', e.message);
  } catch {
    // not JSON: described by status below
  }
  return undefined;
}

/** 502/503 for a hub that failed or did not answer: always retriable, always with Retry-After. */
function upstreamFailure(status: 502 | 503, err: TributaryError, hub: Response | undefined, config: EdgeConfig): Response {
  const body = err.toJSON();
  return jsonResponse(status, { error: { ...body.error, retriable: true } }, retryAfterHeader(hub, config));
}

async function answerFromHub(res: Response, readingCount: number, config: EdgeConfig): Promise<Response> {
  if (res.ok) {
    let body: { offsets?: unknown; duplicate?: unknown };
    try {
      body = (await res.json()) as typeof body;
    } catch {
      return upstreamFailure(502, new TributaryError('INTERNAL', 'hub accepted the readings but its answer was not JSON'), res, config);
    }
    // One offset per reading, in order, is what the device is promised; anything else is a hub bug.
    if (!Array.isArray(body?.offsets) || body.offsets.length !== readingCount) {
      return upstreamFailure(502, new TributaryError('INTERNAL', `hub answer does not carry one offset per reading (${readingCount})`), res, config);
    }
    return jsonResponse(200, body.duplicate === true ? { offsets: body.offsets, duplicate: true } : { offsets: body.offsets });
  }
  const err = await hubError(res);
  if (res.status >= 500) {
    const status = res.status === 503 ? 503 : 502;
    return upstreamFailure(status, new TributaryError(err?.code ?? 'INTERNAL', `hub failed: ${err?.message ?? `HTTP ${res.status}`}`), res, config);
  }
  if (res.status === 401 || res.status === 403) {
    // The hub judges the worker's HUB_TOKEN, not the device: passing a 401 on
    // would make a device think its own token is bad and drop its readings.
    return upstreamFailure(502, new TributaryError(err?.code ?? 'FORBIDDEN', `hub refused the edge worker's credentials: ${err?.message ?? `HTTP ${res.status}`}`), res, config);
  }
  const refused = err ?? new TributaryError('BAD_REQUEST', `hub refused the readings (HTTP ${res.status})`);
  return jsonResponse(res.status, refused.toJSON(), res.status === 429 ? retryAfterHeader(res, config) : undefined);
}

/** Sends one device's readings to the hub and answers the device. Never throws for hub failures. */
export async function forwardToHub(req: ForwardRequest, config: EdgeConfig): Promise<Response> {
  const body = hubRequestBody(req);
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (config.hubToken) headers.authorization = `Bearer ${config.hubToken}`;
  let res: Response;
  try {
    res = await fetch(`${config.hubUrl}/v1/topics/${encodeURIComponent(req.topic)}/records`, {
      method: 'POST',
      headers,
      // utf8() returns a Uint8Array over a plain ArrayBuffer, which fetch takes.
      body: body as Uint8Array<ArrayBuffer>,
      signal: AbortSignal.timeout(config.hubTimeoutMs),
    });
  } catch (err) {
    // No answer: the hub may or may not have appended. With x-sequence the
    // device's retry is safe; without it, a retry may duplicate.
    const why = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError') ? `no answer within ${config.hubTimeoutMs} ms` : 'unreachable';
    return upstreamFailure(503, new TributaryError('NOT_READY', `hub ${why}`), undefined, config);
  }
  return answerFromHub(res, req.readings.length, config);
}
