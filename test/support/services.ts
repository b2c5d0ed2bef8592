import { createClient } from 'redis'
import postgres from 'postgres'

/**
 * Finds the Postgres and Redis the tests run against: TEST_DATABASE_URL and
 * TEST_REDIS_URL (defaults: the local services), else containers started by
 * testcontainers when Docker answers, else one message saying what to do.
 */
export type Services = { postgresUrl: string; redisUrl: string }

const DEFAULT_PG = 'postgres://postgres@127.0.0.1:5432/postgres'
const DEFAULT_REDIS = 'redis://127.0.0.1:6379'

let services: Promise<Services> | undefined
const stops: (() => Promise<unknown>)[] = []

export function getServices(): Promise<Services> {
  services ??= resolveServices()
  return services
}

export async function stopContainers() {
  await Promise.all(stops.splice(0).map((stop) => stop()))
}

async function resolveServices(): Promise<Services> {
  const postgresUrl = process.env.TEST_DATABASE_URL ?? DEFAULT_PG
  const redisUrl = process.env.TEST_REDIS_URL ?? DEFAULT_REDIS
  const [pgOk, redisOk] = await Promise.all([postgresAnswers(postgresUrl), redisAnswers(redisUrl)])
  if (pgOk && redisOk) return { postgresUrl, redisUrl }
  if (!(await dockerAnswers()))
    throw new Error(
      `tests need Postgres 15+ and Redis 7+: ${pgOk ? '' : `no Postgres at ${postgresUrl}; `}${redisOk ? '' : `no Redis at ${redisUrl}; `}` +
        'start them locally (or set TEST_DATABASE_URL / TEST_REDIS_URL), or make Docker available for testcontainers',
    )
  const { GenericContainer, Wait } = await import('testcontainers')
  const out = { postgresUrl, redisUrl }
  if (!pgOk) {
    const pg = await new GenericContainer('postgres:16-alpine')
      .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .start()
    stops.push(() => pg.stop())
    out.postgresUrl = `postgres://postgres@${pg.getHost()}:${pg.getMappedPort(5432)}/postgres`
  }
  if (!redisOk) {
    const redis = await new GenericContainer('redis:7-alpine').withExposedPorts(6379).start()
    stops.push(() => redis.stop())
    out.redisUrl = `redis://${redis.getHost()}:${redis.getMappedPort(6379)}`
  }
  return out
}

async function postgresAnswers(url: string) {
  const sql = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} })
  try {
    await sql`select 1`
    return true
  } catch {
    return false
  } finally {
    await sql.end({ timeout: 1 })
  }
}

async function redisAnswers(url: string) {
  const client = createClient({ url, socket: { connectTimeout: 2000, reconnectStrategy: false } })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.ping()
    return true
  } catch {
    return false
  } finally {
    await client.quit().catch(() => {})
  }
}

async function dockerAnswers() {
  try {
    const proc = Bun.spawn(['docker', 'info'], { stdout: 'ignore', stderr: 'ignore' })
    return (await proc.exited) === 0
  } catch {
    return false
  }
}
