/** The environment variable of a coordinator option: `heartbeatTimeoutMs` → `CKPT_HEARTBEAT_TIMEOUT_MS`. */
export function envName(option: string): string {
  return 'CKPT_' + option.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}
