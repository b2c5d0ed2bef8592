import type { Logger } from 'pino'
import type { Config } from '../config/config'

/** What an operator must know before the instance starts: a development secret, embedded mode. */
export function logStartupWarnings(log: Logger, config: Config) {
  if (config.usingDevSecret)
    log.warn('JWT_SECRET is not set: using the development secret; never do this in production')
  if (config.mode === 'embedded')
    log.warn({ dataDir: config.DATA_DIR }, 'embedded mode: PGlite, in-memory events, one instance')
}

/** 'listening' (tests wait for it), and in embedded mode the one line a newcomer reads. */
export function logListening(
  log: Logger,
  config: Config,
  server: { hostname?: string; port?: number },
) {
  log.info({ url: `http://${server.hostname}:${server.port}`, mode: config.mode }, 'listening')
  if (config.mode !== 'embedded') return
  const host = ['0.0.0.0', '::'].includes(server.hostname!) ? 'localhost' : server.hostname
  const url = `http://${host}:${server.port}`
  // the URL and the credits are in the message itself
  log.info(
    { url, signupCredits: config.signupCredits },
    `open ${url} to try Atelier: every new account starts with ${config.signupCredits} credits (SIGNUP_CREDITS)`,
  )
}
