import { pino, type Logger } from 'pino';
import type { LogConfig } from './config.js';

export type { Logger };

/** Structured JSON logs, one line per event; child loggers carry request_id, tenant, stage. */
export function createLogger(config: LogConfig, service: string): Logger {
  return pino({
    level: config.level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
