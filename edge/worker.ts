/**
 * Tributary's edge worker: IoT sensors POST readings to `/ingest/:topic`; the
 * worker authenticates the device, parses and bounds the readings, stamps
 * `device-id` and `received-at`, and forwards them to the hub as one
 * idempotent produce request (docs/edge.md).
 */
import { TributaryError, toTributaryError } from '../protocol/errors.ts';
import { isValidTopicName } from '../protocol/limits.ts';
import { configFor, type Env } from './config.ts';
import { authenticateDevice, authorizeTopic } from './device-auth.ts';
import { forwardToHub, parseSequence } from './forward.ts';
import { bodyFormatOf, parseReadings, readBody } from './readings.ts';
import { errorResponse } from './respond.ts';

export type { Env } from './config.ts';

const INGEST_PREFIX = '/ingest/';

/** The topic of an `/ingest/:topic` path, or undefined for any other path. */
function ingestTopic(pathname: string): string | undefined {
  if (!pathname.startsWith(INGEST_PREFIX)) return undefined;
  const rest = pathname.slice(INGEST_PREFIX.length);
  if (rest.length === 0 || rest.includes('/')) return undefined;
  let topic: string;
  try {
    topic = decodeURIComponent(rest);
  } catch {
    throw new TributaryError('BAD_TOPIC_NAME', 'topic is not valid percent-encoding');
  }
  if (!isValidTopicName(topic)) throw new TributaryError('BAD_TOPIC_NAME', `invalid topic name ${JSON.stringify(rest.slice(0, 80))}: [a-zA-Z0-9._-]{1,249}`);
  return topic;
}

async function ingest(request: Request, env: Env, topic: string): Promise<Response> {
  const receivedAtMs = Date.now();
  const config = configFor(env);
  const device = await authenticateDevice(request, config);
  authorizeTopic(device, topic, config);
  const format = bodyFormatOf(request);
  const body = await readBody(request, config.maxBodyBytes);
  const readings = parseReadings(body, format, config);
  const sequence = parseSequence(request, readings.length);
  return forwardToHub({ topic, device, readings, sequence, receivedAtMs }, config);
}

async function handle(request: Request, env: Env): Promise<Response> {
  const topic = ingestTopic(new URL(request.url).pathname);
  if (topic === undefined) throw new TributaryError('NOT_FOUND', 'no such route: devices POST readings to /ingest/:topic');
  if (request.method !== 'POST') {
    return errorResponse(new TributaryError('METHOD_NOT_ALLOWED', `${request.method} is not allowed here: POST readings`), { allow: 'POST' });
  }
  return ingest(request, env, topic);
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    try {
      return await handle(request, env);
    } catch (err) {
      const e = toTributaryError(err);
      if (e.code === 'INTERNAL') console.error('edge worker: unexpected error', err);
      return errorResponse(e);
    }
  },
};
