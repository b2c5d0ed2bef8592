import pino, { type Logger } from 'pino'
import pretty from 'pino-pretty'

export type { Logger }

/** Paths whose values never reach a log line, at the top level or one object deep. */
const SECRET_KEYS = [
  'authorization',
  'cookie',
  'password',
  'token',
  'secret',
  'jwtSecret',
  'JWT_SECRET',
  'METRICS_TOKEN',
  'PAYMENT_WEBHOOK_SECRET',
  'RENDER_HTTP_TOKEN',
  'DATABASE_URL',
  'REDIS_URL',
]
const REDACT = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.headers.${k}`])

export type LoggerDeps = {
  level: string
  /** Human-readable lines: only in development, on a TTY. */
  pretty: boolean
  base?: Record<string, unknown>
}

export function makeLogger(deps: LoggerDeps): Logger {
  const settings = {
    level: deps.level,
    base: deps.base ?? {},
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  }
  // pino-pretty as a synchronous stream: no worker thread, works the same under Bun.
  return deps.pretty ? pino(settings, pretty({ colorize: true, sync: true })) : pino(settings)
}
