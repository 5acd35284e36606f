/**
 * A minimal HTTP GET for health probes.
 */
import { get } from 'node:http';

/** How long one probe may take before it counts as failed. */
export const DEFAULT_PROBE_TIMEOUT_MS = 1_000;

/** Status and body of an HTTP answer. */
export interface HttpAnswer {
  status: number;
  body: string;
}

/**
 * GETs `url` on a fresh connection that is closed afterwards, so that probing a
 * server that is later killed leaves no pooled socket behind.
 */
export function httpGet(url: string, signal?: AbortSignal): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const request = get(url, { agent: false, signal, timeout: DEFAULT_PROBE_TIMEOUT_MS }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on('error', reject);
  });
}
