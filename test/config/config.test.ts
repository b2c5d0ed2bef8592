import { describe, expect, it } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError, DEV_JWT_SECRET, loadConfig } from '../../src/config/config'
import { EnvSchema } from '../../src/config/schema'

/** A production environment that passes every rule; each test breaks one. */
const PRODUCTION = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgres://atelier@db.internal:5432/atelier',
  REDIS_URL: 'redis://cache.internal:6379',
  JWT_SECRET: 'x'.repeat(32),
  MEDIA_URL_SECRET: 'm'.repeat(32),
  ALLOWED_ORIGINS: 'https://app.example.com',
}

function refusal(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env)
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return error as ConfigError
  }
  throw new Error('loadConfig accepted a configuration it should refuse')
}

describe('production refusals', () => {
  it('accepts a complete production configuration', () => {
    const config = loadConfig(PRODUCTION)
    expect(config.mode).toBe('server')
    expect(config.usingDevSecret).toBe(false)
  })

  it('refuses embedded mode (no DATABASE_URL) and says to set DATABASE_URL', () => {
    const error = refusal({ ...PRODUCTION, DATABASE_URL: undefined })
    expect(error.problems).toHaveLength(1)
    expect(error.problems[0]).toStartWith('DATABASE_URL:')
    expect(error.message).toContain('set DATABASE_URL to postgres://')
  })

  it('refuses a missing JWT_SECRET and says how to make one', () => {
    const error = refusal({ ...PRODUCTION, JWT_SECRET: undefined })
    expect(error.problems).toHaveLength(1)
    expect(error.problems[0]).toStartWith('JWT_SECRET:')
    expect(error.message).toContain('openssl rand -hex 32')
  })

  it('refuses a JWT_SECRET shorter than 32 bytes', () => {
    const error = refusal({ ...PRODUCTION, JWT_SECRET: 'x'.repeat(31) })
    expect(error.problems[0]).toStartWith('JWT_SECRET:')
    expect(error.message).toContain('32 bytes')
  })

  it('counts JWT_SECRET length in bytes, not characters', () => {
    // 16 characters of 2 bytes each: 32 bytes in UTF-8
    expect(loadConfig({ ...PRODUCTION, JWT_SECRET: 'é'.repeat(16) }).jwtSecret).toBe('é'.repeat(16))
  })

  it('accepts a missing JWT_SECRET when JWKS_URL is set', () => {
    const config = loadConfig({
      ...PRODUCTION,
      JWT_SECRET: undefined,
      JWKS_URL: 'https://id.example.com/.well-known/jwks.json',
    })
    expect(config.jwtSecret).toBeUndefined()
    expect(config.usingDevSecret).toBe(false)
  })

  it('refuses a missing REDIS_URL and says to set it', () => {
    const error = refusal({ ...PRODUCTION, REDIS_URL: undefined })
    expect(error.problems).toHaveLength(1)
    expect(error.problems[0]).toStartWith('REDIS_URL:')
    expect(error.message).toContain('set REDIS_URL to redis://')
  })

  it('refuses a wildcard in ALLOWED_ORIGINS and says to list each origin', () => {
    for (const origins of ['*', 'https://app.example.com, https://*.example.com']) {
      const error = refusal({ ...PRODUCTION, ALLOWED_ORIGINS: origins })
      expect(error.problems).toHaveLength(1)
      expect(error.problems[0]).toStartWith('ALLOWED_ORIGINS:')
      expect(error.message).toContain('list each origin')
    }
  })

  it('reports every refusal at once', () => {
    const error = refusal({ NODE_ENV: 'production', ALLOWED_ORIGINS: '*' })
    expect(error.problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'ALLOWED_ORIGINS',
      'DATABASE_URL',
      'JWT_SECRET',
      'MEDIA_URL_SECRET',
      'REDIS_URL',
    ])
  })

  it('refuses a missing or short MEDIA_URL_SECRET, also with JWKS_URL, and says how to make one', () => {
    const jwks = { JWT_SECRET: undefined, JWKS_URL: 'https://id.example.com/.well-known/jwks.json' }
    for (const env of [
      { ...PRODUCTION, MEDIA_URL_SECRET: undefined },
      { ...PRODUCTION, MEDIA_URL_SECRET: 'm'.repeat(31) },
      { ...PRODUCTION, ...jwks, MEDIA_URL_SECRET: undefined },
    ]) {
      const error = refusal(env)
      expect(error.problems).toHaveLength(1)
      expect(error.problems[0]).toStartWith('MEDIA_URL_SECRET:')
      expect(error.message).toContain('openssl rand -hex 32')
    }
    expect(loadConfig({ ...PRODUCTION, ...jwks }).mediaUrlSecret).toBe('m'.repeat(32))
  })

  it('derives the media URL secret outside production from a secret, never from JWKS_URL', () => {
    const jwksUrl = 'https://id.example.com/.well-known/jwks.json'
    expect(loadConfig({ JWKS_URL: jwksUrl }).mediaUrlSecret).toBe(DEV_JWT_SECRET)
    expect(loadConfig({ JWT_SECRET: 'j'.repeat(40) }).mediaUrlSecret).toBe('j'.repeat(40))
    expect(loadConfig({ MEDIA_URL_SECRET: 'm'.repeat(40) }).mediaUrlSecret).toBe('m'.repeat(40))
  })

  it('allows embedded mode, no Redis and the development secret outside production', () => {
    for (const NODE_ENV of ['development', 'test', undefined]) {
      const config = loadConfig({ NODE_ENV, ALLOWED_ORIGINS: '*' })
      expect(config.mode).toBe('embedded')
      expect(config.usingDevSecret).toBe(true)
      expect(config.jwtSecret).toBe(DEV_JWT_SECRET)
    }
  })
})

describe('types', () => {
  it('refuses PORT=abc, naming the variable and an example value', () => {
    const error = refusal({ PORT: 'abc' })
    expect(error.problems.length).toBeGreaterThan(0)
    expect(error.problems.every((p) => p.startsWith('PORT:'))).toBe(true)
    expect(error.message).toContain('set PORT to a TCP port such as 3000')
  })

  it('refuses out-of-range numbers, unknown enums and malformed URLs', () => {
    const names = (env: Record<string, string>) =>
      new Set(refusal(env).problems.map((p) => p.split(':')[0]))
    expect(names({ PORT: '70000' })).toEqual(new Set(['PORT']))
    expect(names({ DB_POOL_MAX: '0' })).toEqual(new Set(['DB_POOL_MAX']))
    expect(names({ NODE_ENV: 'staging' })).toEqual(new Set(['NODE_ENV']))
    expect(names({ LOG_LEVEL: 'loud' })).toEqual(new Set(['LOG_LEVEL']))
    expect(names({ MIGRATE_ON_START: 'perhaps' })).toEqual(new Set(['MIGRATE_ON_START']))
    expect(names({ DATABASE_URL: 'mysql://db/atelier' })).toEqual(new Set(['DATABASE_URL']))
    expect(names({ REDIS_URL: 'http://cache' })).toEqual(new Set(['REDIS_URL']))
  })

  it('converts numbers and booleans from their string form', () => {
    const config = loadConfig({
      PORT: '8080',
      MIGRATE_ON_START: 'false',
      TRUST_PROXY: 'true',
      MAX_BODY_BYTES: '2048',
    })
    expect(config.PORT).toBe(8080)
    expect(config.MIGRATE_ON_START).toBe(false)
    expect(config.TRUST_PROXY).toBe(true)
    expect(config.MAX_BODY_BYTES).toBe(2048)
  })

  it('treats empty and blank values as unset', () => {
    const config = loadConfig({ PORT: '', DATABASE_URL: '   ', JWT_SECRET: '' })
    expect(config.PORT).toBe(3000)
    expect(config.mode).toBe('embedded')
    expect(config.usingDevSecret).toBe(true)
  })
})

describe('defaults and shape', () => {
  it('fills documented defaults from an empty environment', () => {
    const config = loadConfig({})
    expect(config).toMatchObject({
      NODE_ENV: 'development',
      PORT: 3000,
      HOST: '0.0.0.0',
      LOG_LEVEL: 'info',
      DATA_DIR: './data',
      DB_POOL_MAX: 10,
      DB_STATEMENT_TIMEOUT_MS: 15_000,
      MIGRATE_ON_START: true,
      REDIS_PREFIX: 'atelier:',
      JWT_TTL_SECONDS: 86_400,
      TRUST_PROXY: false,
      MAX_UPLOAD_BYTES: 10 * 1024 * 1024,
      MAX_UPLOADS_PER_HOUR: 100,
      UPLOAD_QUOTA_BYTES: 1024 ** 3,
      MAX_BODY_BYTES: 1024 * 1024,
      DRAIN_TIMEOUT_MS: 10_000,
      mode: 'embedded',
    })
    expect(config.DATABASE_URL).toBeUndefined()
    expect(config.REDIS_URL).toBeUndefined()
    expect(config.allowedOrigins).toEqual(['http://localhost:3000', 'http://127.0.0.1:3000'])
    expect(config.instanceId.length).toBeGreaterThan(0)
  })

  it('grants 1,000 signup credits in embedded mode and none in server mode, unless set', () => {
    expect(loadConfig({}).signupCredits).toBe(1000)
    expect(loadConfig({ DATABASE_URL: 'postgres://db/x' }).signupCredits).toBe(0)
    expect(loadConfig({ SIGNUP_CREDITS: '0' }).signupCredits).toBe(0)
    expect(
      loadConfig({ DATABASE_URL: 'postgres://db/x', SIGNUP_CREDITS: '25' }).signupCredits,
    ).toBe(25)
  })

  it('derives instance id, region, admin emails and origins', () => {
    const config = loadConfig({
      FLY_MACHINE_ID: 'machine-1',
      FLY_REGION: 'ams',
      ADMIN_EMAILS: ' Boss@Example.com , ops@example.com,',
      ALLOWED_ORIGINS: 'https://a.example.com, https://b.example.com',
    })
    expect(config.instanceId).toBe('machine-1')
    expect(config.region).toBe('ams')
    expect([...config.adminEmails]).toEqual(['boss@example.com', 'ops@example.com'])
    expect(config.allowedOrigins).toEqual(['https://a.example.com', 'https://b.example.com'])
    expect(loadConfig({ INSTANCE_ID: 'i-1', FLY_MACHINE_ID: 'm' }).instanceId).toBe('i-1')
  })

  it('ignores variables the schema does not name', () => {
    const config = loadConfig({ SOMETHING_ELSE: 'x' }) as Record<string, unknown>
    expect(config.SOMETHING_ELSE).toBeUndefined()
  })

  it('returns a frozen object', () => {
    const config = loadConfig({})
    expect(Object.isFrozen(config)).toBe(true)
    expect(() => {
      ;(config as { PORT: number }).PORT = 1
    }).toThrow(TypeError)
    expect(config.PORT).toBe(3000)
  })
})

describe('.env.example', () => {
  const text = readFileSync(join(import.meta.dir, '..', '..', '.env.example'), 'utf8')
  const lines = text.split('\n')
  const entries = new Map(
    lines.flatMap((line, i) => {
      const m = line.match(/^([A-Z0-9_]+)=(.*)$/)
      return m ? [[m[1]!, { value: m[2]!, comment: lines[i - 1] ?? '' }] as const] : []
    }),
  )

  it('documents every variable of the schema, and only those, each with a comment', () => {
    expect([...entries.keys()].sort()).toEqual(Object.keys(EnvSchema.properties).sort())
    for (const [name, { comment }] of entries) {
      expect(comment, name).toStartWith('# ')
    }
  })

  it('shows each default the schema applies', () => {
    const defaults = loadConfig({}) as Record<string, unknown>
    for (const [name, schema] of Object.entries(EnvSchema.properties)) {
      const def = (schema as { default?: unknown }).default
      expect(entries.get(name)?.value, name).toBe(def === undefined ? '' : String(def))
      if (def !== undefined) expect(defaults[name], name).toEqual(def)
    }
  })

  it('is itself a valid development configuration', () => {
    expect(loadConfig(Object.fromEntries([...entries].map(([k, v]) => [k, v.value]))).mode).toBe(
      'embedded',
    )
  })
})

describe('Fly.io regions', () => {
  const FLY = { ...PRODUCTION, PRIMARY_REGION: 'ams' }

  it('is the primary without PRIMARY_REGION, or in it; not elsewhere', () => {
    expect(loadConfig(PRODUCTION).isPrimaryRegion).toBe(true)
    expect(loadConfig({ ...FLY, FLY_REGION: 'ams' }).isPrimaryRegion).toBe(true)
    expect(loadConfig({ ...FLY, FLY_REGION: 'fra' }).isPrimaryRegion).toBe(false)
  })

  it('refuses PRIMARY_REGION without FLY_REGION: the instance could not tell whether it may write', () => {
    const error = refusal(FLY)
    expect(error.problems).toHaveLength(1)
    expect(error.problems[0]).toStartWith('FLY_REGION:')
    expect(error.message).toContain('PRIMARY_REGION=ams')
  })

  it('refuses a read region in embedded mode or without Redis, in any environment', () => {
    const embedded = refusal({ PRIMARY_REGION: 'ams', FLY_REGION: 'fra' })
    expect(embedded.problems.map((p) => p.split(':')[0])).toEqual(['DATABASE_URL', 'REDIS_URL'])
    const noRedis = refusal({
      PRIMARY_REGION: 'ams',
      FLY_REGION: 'fra',
      DATABASE_URL: PRODUCTION.DATABASE_URL,
    })
    expect(noRedis.problems).toHaveLength(1)
    expect(noRedis.problems[0]).toStartWith('REDIS_URL:')
    // the primary region itself may run without Redis outside production
    expect(
      loadConfig({
        PRIMARY_REGION: 'ams',
        FLY_REGION: 'ams',
        DATABASE_URL: PRODUCTION.DATABASE_URL,
      }).isPrimaryRegion,
    ).toBe(true)
  })

  it('refuses DATABASE_READ_URL without DATABASE_URL', () => {
    const error = refusal({ DATABASE_READ_URL: 'postgres://replica.internal/atelier' })
    expect(error.problems).toHaveLength(1)
    expect(error.problems[0]).toStartWith('DATABASE_READ_URL:')
  })

  it('refuses a PRIMARY_REGION that is not a region code (it goes into a response header)', () => {
    const error = refusal({ ...FLY, FLY_REGION: 'ams', PRIMARY_REGION: 'ams\r\nx-evil: 1' })
    expect(error.problems[0]).toStartWith('PRIMARY_REGION:')
  })

  it('reads READ_YOUR_WRITES_MS, default 5000, 0 turns it off', () => {
    expect(loadConfig({}).READ_YOUR_WRITES_MS).toBe(5000)
    expect(loadConfig({ READ_YOUR_WRITES_MS: '0' }).READ_YOUR_WRITES_MS).toBe(0)
    expect(refusal({ READ_YOUR_WRITES_MS: '-1' }).problems[0]).toStartWith('READ_YOUR_WRITES_MS:')
  })
})
