/** The worker's answers: JSON bodies, and every error as protocol/errors.ts's errorAnswer maps it. */
import { errorAnswer, type TributaryError } from '../protocol/errors.ts';
import { DEFAULTS } from './config.ts';

export function jsonResponse(status: number, body: unknown, headers?: Record<string, string>): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
}

export function errorResponse(err: TributaryError, headers?: Record<string, string>): Response {
  const answer = errorAnswer(err, DEFAULTS.RETRY_AFTER_S);
  return jsonResponse(answer.status, answer.body, { ...answer.headers, ...headers });
}
