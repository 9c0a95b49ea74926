import { type LevelWithSilent, type Logger, pino } from 'pino';

export type { Logger };
export const LOG_LEVELS: readonly LevelWithSilent[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];

/**
 * The process logger: pretty, human-readable lines on a TTY; one JSON object per line otherwise
 * (for journald, log shippers and tests). Per-connection loggers are children of this one with
 * `{conn, subflow}` bindings; per-packet logs must be guarded with `isLevelEnabled`.
 */
export function createLogger(
  level: LevelWithSilent = 'info',
  stream: NodeJS.WritableStream = process.stderr,
): Logger {
  const tty = (stream as { isTTY?: boolean }).isTTY === true;
  if (tty) {
    return pino({
      level,
      transport: {
        target: 'pino-pretty',
        options: { destination: 2, colorize: true, translateTime: 'HH:MM:ss.l' },
      },
    });
  }
  return pino({ level, base: { pid: process.pid } }, stream);
}
