/**
 * One instance of bench:cluster, built by buildInstance (the production
 * wiring): imported by bench/cluster.ts for the in-process mode, or run as
 * its own process (BENCH_CLUSTER_PROCESSES=1) and driven over IPC, where each
 * measured loop runs inside the instance's process, so no IPC is in a latency.
 *
 * Commands, one at a time: claim (a first charge to each user, which claims
 * it here) ──▶ loop (closed-loop charges, latencies back) ──▶ … ──▶ exit.
 */
import { loadConfig } from '../src/config/config'
import { makeLogger } from '../src/obs/logger'
import { buildInstance, type Instance } from '../src/server'
import { serveCommands } from './ipc'
import { closedLoop, type Sample } from './support'

export type InstanceSettings = {
  id: string
  databaseUrl: string
  redisUrl: string
  prefix: string
  dataDir: string
}

export type InstanceCommand =
  | { cmd: 'claim'; users: string[] }
  | { cmd: 'loop'; users: string[]; clients: number; ops: number }
  | { cmd: 'owned' }
  | { cmd: 'exit' }

export function startInstance(s: InstanceSettings) {
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: s.databaseUrl,
    REDIS_URL: s.redisUrl,
    REDIS_PREFIX: s.prefix,
    JWT_SECRET: 'bench-secret-that-is-long-enough-0123456789',
    DATA_DIR: s.dataDir,
    DB_POOL_MAX: '8',
    MIGRATE_ON_START: 'false',
    RENDER_CONCURRENCY: '0',
    INSTANCE_ID: s.id,
  })
  return buildInstance(config, makeLogger({ level: 'silent', pretty: false }))
}

export const charge = (inst: Instance, userId: string) =>
  inst.credits.apply(userId, {
    kind: 'charge',
    amount: 1,
    reason: 'bench',
    key: crypto.randomUUID(),
  })

/** Closed-loop charges to `users` (one: that user; more: a random one each time). */
export function chargeLoop(inst: Instance, users: string[], clients: number, ops: number) {
  const pick = () => users[Math.floor(Math.random() * users.length)]!
  return closedLoop(clients, ops, () => charge(inst, users.length === 1 ? users[0]! : pick()))
}

async function serve() {
  const inst = await startInstance(JSON.parse(process.env.BENCH_CLUSTER_INSTANCE!))
  serveCommands(async (command: InstanceCommand): Promise<Sample | number | null> => {
    switch (command.cmd) {
      case 'claim':
        await Promise.all(command.users.map((u) => charge(inst, u)))
        return null
      case 'loop':
        return chargeLoop(inst, command.users, command.clients, command.ops)
      case 'owned':
        return inst.userActors.stats().ownedActors
      case 'exit':
        await inst.close()
        return process.exit(0)
      default:
        throw new Error(`unknown command ${JSON.stringify(command)}`)
    }
  })
}

if (import.meta.main) await serve()
