/** The worker's answers: JSON bodies, and every error as {"error":{code,message,retriable}}. */
import { TributaryError } from '../protocol/errors.ts';
import { DEFAULTS } from './config.ts';

export function jsonResponse(status: number, body: unknown, headers?: Record<string, string>): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
}

export function errorBody(code: string, message: string, retriable: boolean): { error: { code: string; message: string; retriable: boolean } } {
  return { error: { code, message, retriable } };
}

export function errorResponse(err: TributaryError, headers?: Record<string, string>): Response {
  const extra = err.retriable && err.status >= 500 ? { 'retry-after': String(DEFAULTS.RETRY_AFTER_S), ...headers } : headers;
  return jsonResponse(err.status, errorBody(err.code, err.message, err.retriable), extra);
}
