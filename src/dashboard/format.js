/**
 * Human units for the dashboard: durations in ms/s/min, sizes in
 * B/KiB/MiB/GiB, times of day, ages. Every function takes a number from the
 * JSON API (ms, bytes, ms since the epoch) and returns text, "—" for none.
 */

/** Shown where a figure does not exist (no timestamp, no checkpoint). */
export const NONE = '—';

/** `123 ms`, `4.56 s`, `3 min 07 s`, `2 h 05 min`. */
export function duration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return NONE;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  const min = Math.round(s / 60);
  return `${Math.floor(min / 60)} h ${String(min % 60).padStart(2, '0')} min`;
}

const BYTE_UNITS = ['KiB', 'MiB', 'GiB', 'TiB'];

/** `512 B`, `1.5 KiB`, `12.3 MiB`. */
export function bytes(n) {
  if (!Number.isFinite(n) || n < 0) return NONE;
  if (n < 1024) return `${Math.round(n)} B`;
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${BYTE_UNITS[unit]}`;
}

/** A plain count with thousands separators. */
export function count(n) {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : NONE;
}

const pad2 = (n) => String(n).padStart(2, '0');

/** `HH:MM:SS` in local time. */
export function clock(ms) {
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** A timestamp: the time of day when today, else the date and time; "—" for 0. */
export function timestamp(ms) {
  if (!Number.isFinite(ms) || ms <= 0) return NONE;
  const d = new Date(ms);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return clock(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${clock(ms)}`;
}

/** How long ago `ms` was: `5 s ago`, `3 min ago`. */
export function age(ms, now = Date.now()) {
  if (!Number.isFinite(ms) || ms <= 0) return NONE;
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/** `FULL` → `full`, `IN_PROGRESS` → `in progress`. */
export function word(constant) {
  return typeof constant === 'string' && constant !== '' ? constant.toLowerCase().replaceAll('_', ' ') : NONE;
}
