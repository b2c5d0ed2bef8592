import type { Exchange } from '../actors/actor-system'
import { makeCluster } from '../actors/cluster'
import { dispatchByType } from '../actors/dispatch'
import { taggedWire } from '../actors/wire'
import type { Config } from '../config/config'
import { Unavailable } from '../errors'
import type { Outbox } from '../events/outbox'
import {
  generationHandler,
  type GenerationCommand,
  type GenerationMessage,
  type GenerationResult,
} from '../generation/commands'
import type { LedgerResult } from '../ledger/commands'
import { ledgerHandler, makeCredits, type LedgerMessage } from '../ledger/credits'
import { ledgerWire } from '../ledger/wire'
import { makeCreateWriter } from '../generation/create-writer'
import { generationWire } from '../generation/wire'
import type { Idempotency } from '../idempotency/idempotency'
import { fenceAccount, lockAccount } from '../ledger/repository'
import { applyLedgerBatch } from '../ledger/service'
import { makeLedgerWriter } from '../ledger/writer'
import type { MediaUrls } from '../media/signed-urls'
import type { Logger } from '../obs/logger'
import type { Foundation } from './foundation'

/** The user actor's commands, each with the result it answers. */
export type UserExchange =
  Exchange<LedgerMessage, LedgerResult> | Exchange<GenerationMessage, GenerationResult>
export type UserMessage = UserExchange['command']
export type UserResult = UserExchange['result']

/**
 * The user actor: serializes every credit and generation command of one
 * user, each room handling its own commands (dispatch by type), on the one
 * instance of the cluster that owns the user (actors/cluster.ts; commands
 * cross between instances in the rooms' wire codecs). What the rest of the
 * instance gets is the ask, typed per room: `credits` for the ledger,
 * `askGeneration` for generation commands.
 */
export async function composeUserActors(
  f: Foundation,
  config: Config,
  log: Logger,
  deps: { outbox: Outbox; urls: MediaUrls; idempotency: Pick<Idempotency, 'record'> },
) {
  // the cluster's blocking inbox read has its own connection: main, the event log's and the
  // library's subscribers, and this one make 4 per instance, whatever the number of users
  const redis = f.redis
  const reader = redis?.duplicate()
  if (reader) {
    reader.on('error', (err) => log.warn({ err }, 'redis error (actor inbox reader)'))
    await reader.connect()
    f.lifecycle.onClose('actor inbox reader', () => reader.quit().catch(() => {}))
  }
  const userActors = await makeCluster<UserExchange>({
    name: 'user_actor',
    db: f.database.db,
    instanceId: config.instanceId,
    canOwn: config.isPrimaryRegion,
    redis: redis && reader ? { main: redis, reader, keys: f.keys } : undefined,
    wire: taggedWire<UserMessage, UserResult>({ ledger: ledgerWire, generation: generationWire }),
    leaseMs: config.ACTOR_LEASE_MS,
    forwardTimeoutMs: config.ACTOR_FORWARD_TIMEOUT_MS,
    redisTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
    handle: dispatchByType<UserMessage, UserResult>({
      ledger: ledgerHandler(makeLedgerWriter(f.database.db), deps.outbox.committed),
      generation: generationHandler({
        db: f.database.db,
        ledger: { lock: lockAccount, fence: fenceAccount, apply: applyLedgerBatch },
        outbox: deps.outbox,
        urls: deps.urls,
        creates: makeCreateWriter({
          db: f.database.db,
          limits: {
            imagesPerHour: config.MAX_IMAGES_PER_HOUR,
            activeGenerations: config.MAX_ACTIVE_GENERATIONS,
          },
          urls: deps.urls,
          record: deps.idempotency.record,
          committed: deps.outbox.committed,
        }),
      }),
    }),
    log: log.child({ room: 'actors' }),
    metrics: f.metrics,
    mailboxCapacity: config.ACTOR_MAILBOX_CAPACITY,
    batchMax: config.ACTOR_BATCH_MAX,
    idleMs: config.ACTOR_IDLE_MS,
    batchTimeoutMs: config.ACTOR_BATCH_TIMEOUT_MS,
  })
  f.lifecycle.onDrain('actor hand-off', userActors.handOff)
  f.lifecycle.onDrain('actors', userActors.drain)
  f.lifecycle.onClose('actors', userActors.close)
  // Fly.io: outside the primary region writes are replayed at the edge, so no command
  // reaches an actor here; if one did (a bug), it is refused rather than written
  const ask: typeof userActors.ask = config.isPrimaryRegion
    ? userActors.ask
    : () => Promise.reject(new Unavailable('This region does not take writes, retry shortly'))
  const askGeneration = (userId: string, command: GenerationCommand) =>
    ask(userId, { type: 'generation', command })
  const credits = makeCredits(ask)
  return { userActors, askGeneration, credits }
}
