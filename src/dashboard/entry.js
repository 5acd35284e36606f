/**
 * Figures of one checkpoint entry of the API, shared by the pages.
 */
import { h, routeHref } from './dom.js';
import { word } from './format.js';

/** A link to checkpoint `id` of `jobId`, shown as `#id`. */
export function checkpointLink(jobId, id) {
  return h('a', { href: routeHref('jobs', jobId, 'checkpoints', id), class: 'checkpoint-link' }, `#${id}`);
}

/** When the checkpoint ended: its last acknowledgement, or trigger + duration, or its failure. */
export function finishedAt(entry) {
  if (entry.failure_timestamp > 0) return entry.failure_timestamp;
  if (entry.latest_ack_timestamp > 0) return entry.latest_ack_timestamp;
  return entry.trigger_timestamp + entry.end_to_end_duration;
}

/** Why a checkpoint failed, in a few words: the abort reason, else the message. */
export function failureReason(entry) {
  if (entry.abort_reason) return word(entry.abort_reason);
  return entry.failure_message || 'failed';
}

/** A status badge. */
export function statusBadge(status) {
  return h('span', { class: `status status-${String(status).toLowerCase()}` }, word(status));
}
