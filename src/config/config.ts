import { Value } from '@sinclair/typebox/value'
import { hostname } from 'node:os'
import { EnvSchema, type Env } from './schema'

/**
 * Reads and validates the environment once. The composition root calls
 * loadConfig(); tests pass their own record. Nothing else reads process.env.
 */

export const DEV_JWT_SECRET = 'atelier-development-secret-do-not-use-in-production'

export type Config = Readonly<
  Env & {
    mode: 'embedded' | 'server'
    instanceId: string
    region: string | undefined
    /**
     * False outside PRIMARY_REGION: the instance takes no writes (they are
     * replayed to the primary) and runs no work that writes (renderer claims,
     * sweeps, actors, relays). True when PRIMARY_REGION is unset.
     */
    isPrimaryRegion: boolean
    adminEmails: ReadonlySet<string>
    allowedOrigins: readonly string[]
    jwtSecret: string | undefined
    usingDevSecret: boolean
    /**
     * MEDIA_URL_SECRET; outside production, when unset, JWT_SECRET or the
     * development secret (signed-urls.ts derives its own key from it). Never a
     * public value such as JWKS_URL.
     */
    mediaUrlSecret: string | undefined
    /** RENDER_CONCURRENCY, or the number of CPU cores. */
    renderConcurrency: number
    signupCredits: number
  }
>

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`)
    this.name = 'ConfigError'
  }
}

export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = source[key]
    if (value !== undefined && value.trim() !== '') raw[key] = value.trim()
  }
  const withDefaults = Value.Default(EnvSchema, Value.Convert(EnvSchema, raw))
  const problems = [...Value.Errors(EnvSchema, withDefaults)].map((e) => {
    const name = e.path.replace(/^\//, '')
    const fix = (EnvSchema.properties as Record<string, { description?: string }>)[name]
      ?.description
    return `${name}: ${e.message}${fix ? ` (set ${name} to ${fix})` : ''}`
  })
  if (problems.length > 0) throw new ConfigError(problems)
  const env = withDefaults as Env
  const config = derive(env)
  const refusals = [...inconsistencies(config), ...productionRefusals(config)]
  if (refusals.length > 0) throw new ConfigError(refusals)
  return Object.freeze(config)
}

function derive(env: Env): Config {
  const list = (s: string) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean)
  const mode = env.DATABASE_URL ? 'server' : 'embedded'
  const usingDevSecret = !env.JWT_SECRET && !env.JWKS_URL
  // embedded: the page at / works out of the box whether opened as localhost or 127.0.0.1
  const defaultOrigins =
    mode === 'embedded' ? [`http://localhost:${env.PORT}`, `http://127.0.0.1:${env.PORT}`] : []
  const origins = list(env.ALLOWED_ORIGINS)
  return {
    ...env,
    mode,
    instanceId:
      env.INSTANCE_ID ?? env.FLY_MACHINE_ID ?? `${hostname()}-${crypto.randomUUID().slice(0, 8)}`,
    region: env.FLY_REGION,
    isPrimaryRegion: !env.PRIMARY_REGION || env.FLY_REGION === env.PRIMARY_REGION,
    adminEmails: new Set(list(env.ADMIN_EMAILS).map((e) => e.toLowerCase())),
    allowedOrigins: origins.length > 0 ? origins : defaultOrigins,
    jwtSecret: env.JWT_SECRET ?? (usingDevSecret ? DEV_JWT_SECRET : undefined),
    usingDevSecret,
    mediaUrlSecret:
      env.MEDIA_URL_SECRET ??
      (env.NODE_ENV === 'production' ? undefined : (env.JWT_SECRET ?? DEV_JWT_SECRET)),
    renderConcurrency: env.RENDER_CONCURRENCY ?? navigator.hardwareConcurrency,
    // embedded mode is for trying Atelier: a newcomer can generate at once
    signupCredits: env.SIGNUP_CREDITS ?? (mode === 'embedded' ? 1000 : 0),
  }
}

/** Combinations that are wrong in any environment. */
function inconsistencies(c: Config): string[] {
  const out: string[] = []
  if (c.RENDERER === 'http' && !c.RENDER_HTTP_URL)
    out.push(
      'RENDER_HTTP_URL: RENDERER=http needs the inference endpoint (set RENDER_HTTP_URL to https://…)',
    )
  if (c.MEDIA_STORAGE === 's3')
    for (const name of ['S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'] as const)
      if (!c[name]) out.push(`${name}: MEDIA_STORAGE=s3 needs it (set ${name})`)
  return [...out, ...regionInconsistencies(c)]
}

/** Fly.io multi-region: an instance that cannot tell whether it may write refuses to start. */
function regionInconsistencies(c: Config): string[] {
  const out: string[] = []
  if (c.DATABASE_READ_URL && !c.DATABASE_URL)
    out.push(
      'DATABASE_READ_URL: a read replica needs the primary database too (set DATABASE_URL to postgres://…)',
    )
  if (!c.PRIMARY_REGION) return out
  if (!c.FLY_REGION)
    out.push(
      `FLY_REGION: PRIMARY_REGION=${c.PRIMARY_REGION} needs this instance's region to know whether it may write (Fly.io sets it; elsewhere set FLY_REGION, e.g. to ${c.PRIMARY_REGION} for the primary)`,
    )
  else if (!c.isPrimaryRegion) {
    if (c.mode === 'embedded')
      out.push(
        `DATABASE_URL: an instance outside PRIMARY_REGION (FLY_REGION=${c.FLY_REGION}) serves the shared database, not an embedded one (set DATABASE_URL to postgres://…)`,
      )
    if (!c.REDIS_URL)
      out.push(
        `REDIS_URL: an instance outside PRIMARY_REGION (FLY_REGION=${c.FLY_REGION}) gets its WebSocket events from Redis (set REDIS_URL to redis://…)`,
      )
  }
  return out
}

function productionRefusals(c: Config): string[] {
  if (c.NODE_ENV !== 'production') return []
  const out: string[] = []
  if (!c.DATABASE_URL)
    out.push('DATABASE_URL: embedded mode is not for production (set DATABASE_URL to postgres://…)')
  if (!c.JWKS_URL && (!c.JWT_SECRET || new TextEncoder().encode(c.JWT_SECRET).length < 32))
    out.push(
      'JWT_SECRET: production needs at least 32 bytes (set JWT_SECRET to the output of `openssl rand -hex 32`, or set JWKS_URL)',
    )
  if (!c.MEDIA_URL_SECRET || new TextEncoder().encode(c.MEDIA_URL_SECRET).length < 32)
    out.push(
      'MEDIA_URL_SECRET: production needs at least 32 bytes to sign media URLs (set MEDIA_URL_SECRET to the output of `openssl rand -hex 32`)',
    )
  if (!c.REDIS_URL) out.push('REDIS_URL: production needs Redis (set REDIS_URL to redis://…)')
  if (c.allowedOrigins.some((o) => o.includes('*')))
    out.push('ALLOWED_ORIGINS: wildcards are refused in production (list each origin exactly)')
  return out
}
