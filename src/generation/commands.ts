import type { Kysely, Transaction } from 'kysely'
import type { BatchHandler, Outcome } from '../actors/actor-system'
import { inBatch, outsideBatch } from '../db/batch-scope'
import type { DB } from '../db/schema'
import { toCommandError } from '../db/errors'
import type { NewEvent, Outbox } from '../events/outbox'
import type { LedgerCommand, LedgerResult } from '../ledger/commands'
import type { MediaUrls } from '../media/signed-urls'
import { recordClaimed } from './claim-items'
import type { CreateWriter } from './create-writer'
import { cancelGeneration, recordOutcome } from './end-items'
import type { NewItem } from './repository'
import type { GenerationRequest } from './table'

/**
 * The user actor's generation commands. Each runs in one transaction that
 * first takes the user's account row lock (through the ledger port), so
 * limits, charge, rows and refunds are decided one at a time per user even
 * across instances. Events are written into the outbox in the same
 * transaction (a charge's or refund's credits.changed by ledger_apply itself),
 * so they exist exactly when the change does. One module per family:
 * create-writer.ts (create: batched across users), claim-items.ts (claimed),
 * end-items.ts (cancel, outcome).
 */
export type ItemResult =
  | {
      status: 'succeeded'
      imageMediaId: string
      thumbnailMediaId: string
      exports: Record<string, string>
    }
  | { status: 'failed'; code: string; message: string }

export type GenerationCommand =
  | {
      /** Charge, rows and work items of a new generation, in one transaction. */
      kind: 'create'
      generationId: string
      request: GenerationRequest
      items: NewItem[]
      pricePerItem: number
      /** From the database's now() at insert; null: no deadline. */
      deadlineSeconds: number | null
      /** Idempotency: the same key charges and creates once. */
      commandKey: string
      /** The request's Idempotency-Key record, checked and written in the create's transaction. */
      idem?: { key: string; requestHash: string }
    }
  | { kind: 'cancel'; generationId: string; reason: 'user' | 'deadline' }
  /** A renderer pool claimed these items: they are running, and their generation with them. */
  | { kind: 'claimed'; generationId: string; items: { id: string; key: string }[] }
  /** owner null: the sweeper ends an item whose lease expired with no attempts left. */
  | { kind: 'outcome'; itemId: string; owner: string | null; result: ItemResult }

export type GenerationCommandOf<K extends GenerationCommand['kind']> = Extract<
  GenerationCommand,
  { kind: K }
>

export type GenerationMessage = { type: 'generation'; command: GenerationCommand }
export type GenerationResult = {
  generationId: string
  applied: boolean
  /** A create's response (202, or the recorded first one): built from what it wrote. */
  answer?: { status: number; body: unknown; replayed: boolean }
}

/** What the generation room may do with credits: only through the ledger's own write path. */
export type LedgerPort = {
  lock(trx: Transaction<DB>, userId: string): Promise<unknown>
  /** The account lock, and the fencing check of the owner's epoch under it. */
  fence(trx: Transaction<DB>, userId: string, epoch: number): Promise<unknown>
  apply(
    trx: Transaction<DB>,
    userId: string,
    commands: LedgerCommand[],
  ): Promise<Outcome<LedgerResult>[]>
}

export type GenerationHandlerDeps = {
  db: Kysely<DB>
  ledger: LedgerPort
  outbox: Outbox
  /** Signs the item URLs events carry, as the REST item's. */
  urls: Pick<MediaUrls, 'url'>
  /** Where creates go: one group commit across users (create-writer.ts). */
  creates: CreateWriter
}

/** Events a command wrote down, waiting to be published: the outbox takes them in its transaction. */
export type PendingEvents = NewEvent[]

/** One command's transaction: whose it is, and the events it will publish. */
export type CommandScope = {
  trx: Transaction<DB>
  userId: string
  deps: GenerationHandlerDeps
  pending: PendingEvents
}

export function generationHandler(
  deps: GenerationHandlerDeps,
): BatchHandler<GenerationMessage, GenerationResult> {
  // under the batch's signal: past the deadline, a command whose transaction committed
  // answers its result, the others a 503 with nothing of them committed (src/db/batch-scope.ts)
  return (userId, batch, context) =>
    inBatch(context?.signal, async () => {
      const out: Outcome<GenerationResult>[] = []
      for (let i = 0; i < batch.length;) {
        const command = batch[i]!.command
        if (command.kind === 'create') {
          const creates = createsFrom(batch, i)
          // a run of creates joins other users' in one group commit
          out.push(
            ...(await deps.creates
              .create(userId, creates, context?.epoch, context?.signal)
              .catch((error: unknown) =>
                creates.map((): Outcome<GenerationResult> => ({
                  ok: false,
                  error: toCommandError(error),
                })),
              )),
          )
          i += creates.length
          continue
        }
        try {
          out.push({ ok: true, value: await run(deps, userId, command, context?.epoch) })
        } catch (error) {
          // each command in its own transaction: one at fault fails alone, with its own
          // 4xx; a database that did not answer is a 503 (src/db/errors.ts)
          out.push({ ok: false, error: toCommandError(error) })
        }
        i++
      }
      return out
    })
}

/** The run of consecutive creates that starts at `start`. */
function createsFrom(batch: readonly GenerationMessage[], start: number) {
  const creates: GenerationCommandOf<'create'>[] = []
  for (let i = start; i < batch.length; i++) {
    const c = batch[i]!.command
    if (c.kind !== 'create') break
    creates.push(c)
  }
  return creates
}

async function run(
  deps: GenerationHandlerDeps,
  userId: string,
  command: OtherCommand,
  epoch: number | undefined,
): Promise<GenerationResult> {
  const pending: PendingEvents = []
  const result = await deps.db.transaction().execute(async (trx) => {
    // money moves: take the account lock first, so two instances cannot
    // deadlock on one user; then a generation and its items (cancel) or an
    // item and its generation (outcome): cancel takes only queued items and
    // an outcome only its running one, so the two never wait on each other.
    // Fenced (cluster mode): every command takes that lock and checks its
    // owner's epoch under it first (AF001 when stale: nothing is written)
    if (epoch !== undefined) await deps.ledger.fence(trx, userId, epoch)
    else if (movesMoney(command)) await deps.ledger.lock(trx, userId)
    const result = await apply({ trx, userId, deps, pending }, command)
    // the events commit with the change they describe (the outbox)
    await deps.outbox.write(trx, userId, pending)
    return result
  })
  // the relay's wake-up is not part of this batch: its work must not follow the batch's signal
  outsideBatch(deps.outbox.committed)
  return result
}

/** Every command but create, which the create writer takes. */
type OtherCommand = Exclude<GenerationCommand, { kind: 'create' }>

function apply(s: CommandScope, command: OtherCommand): Promise<GenerationResult> {
  switch (command.kind) {
    case 'cancel':
      return cancelGeneration(s, command.generationId)
    case 'claimed':
      return recordClaimed(s, command)
    case 'outcome':
      return recordOutcome(s, command)
    default:
      throw new Error(`unknown generation command ${(command as { kind: string }).kind}`)
  }
}

/** Cancelling and failing an item refund; a success or a claim does not. */
function movesMoney(c: OtherCommand) {
  return c.kind === 'cancel' || (c.kind === 'outcome' && c.result.status === 'failed')
}
