import type { Kysely, Selectable, Transaction } from 'kysely'
import type { Outcome } from '../actors/actor-system'
import { anySignal, inBatch, outsideBatch } from '../db/batch-scope'
import { isRequestFault, toCommandError } from '../db/errors'
import {
  makeGroupCommit,
  othersAgain,
  type GroupCommitLimits,
  type Member,
} from '../db/group-commit'
import type { DB } from '../db/schema'
import {
  IdempotencyConflict,
  InsufficientCredits,
  RateLimited,
  StaleEpoch,
  unreachable,
} from '../errors'
import { keyInFlight } from '../idempotency/idempotency'
import type { RecordedResponse } from '../idempotency/repository'
import { ledgerKeys } from '../ledger/keys'
import type { MediaUrls } from '../media/signed-urls'
import type { GenerationCommandOf, GenerationResult } from './commands'
import { presentItem, presentSummary, type ItemView } from './present'
import { createMany, type CreatedMany, type CreateRow } from './repository'
import type { GenerationRow } from './table'

/**
 * Accepts batched across users (issue #14): each user actor hands its run of
 * `create` commands to one group commit shared by all actors, and each group
 * is one transaction of three statements whatever its size: the creates of
 * every user in it (generation_create_many, as sql/0025 defines it: per user
 * under its account lock and epoch the Idempotency-Key record and the limits,
 * then the group's charges in one ledger write, one insert for the
 * generations and one for the items, generation.queued), then the
 * Idempotency-Key records with their first responses, then COMMIT. The
 * response is built from the rows as written, so it is what GET shows.
 *
 * One create at fault (a value Postgres refuses, SQLSTATE class 22/23) fails
 * alone: the group falls back to one transaction per user, and that user's
 * run to one per create. A database that does not answer fails the group.
 */
export type CreateCommand = GenerationCommandOf<'create'>

export type CreateWriterDeps = {
  db: Kysely<DB>
  limits: { imagesPerHour: number; activeGenerations: number }
  urls: Pick<MediaUrls, 'url'>
  /** Records first responses in the transaction of their effect (the idempotency room). */
  record: (trx: Transaction<DB>, records: readonly RecordedResponse[]) => Promise<void>
  /** After a commit: the outbox relay goes at once. */
  committed: () => void
  /** Transactions in flight and users per transaction (default 4 and 64). */
  group?: GroupCommitLimits
}

/** One user's run of creates, as its actor batch hands it in. */
type Run = { userId: string; epoch?: number; creates: CreateCommand[] }
type Answers = Outcome<GenerationResult>[]

export type CreateWriter = ReturnType<typeof makeCreateWriter>

export function makeCreateWriter(deps: CreateWriterDeps) {
  const commit = makeGroupCommit<Run, Answers>(
    (group, requeue) => flush(deps, group, requeue),
    deps.group,
  )
  return {
    /** One outcome per create, in order. `epoch`: the owner's (fenced); `signal`: its batch's. */
    create(
      userId: string,
      creates: CreateCommand[],
      epoch?: number,
      signal?: AbortSignal,
    ): Promise<Answers> {
      return commit.submit({ userId, epoch, creates }, signal)
    },
  }
}

/** One group in one transaction; when that fails at a create's fault, each user alone, then each create. */
async function flush(
  deps: CreateWriterDeps,
  group: Member<Run, Answers>[],
  requeue: (members: Member<Run, Answers>[]) => void,
) {
  try {
    const answers = await write(deps, group)
    group.forEach((m, i) => m.resolve(answers[i]!))
  } catch (error) {
    if (othersAgain(group, error, requeue)) return
    if (!isRequestFault(error)) return group.forEach((m) => m.reject(toCommandError(error)))
    if (group.length > 1)
      return void (await Promise.all(group.map((m) => flush(deps, [m], requeue))))
    const [m] = group as [Member<Run, Answers>]
    if (m.input.creates.length === 1) return m.reject(toCommandError(error))
    // in order, one transaction each: rare (a value Postgres refuses got past the edge)
    const out: Answers = []
    for (const c of m.input.creates) {
      const [answer] = await new Promise<Answers>((resolve) =>
        flush(
          deps,
          [
            {
              ...m,
              input: { ...m.input, creates: [c] },
              resolve,
              reject: (e) => resolve([{ ok: false, error: e }]),
            },
          ],
          // a group of one has no others to hand back
          () => {},
        ),
      )
      out.push(answer!)
    }
    m.resolve(out)
  }
}

async function write(deps: CreateWriterDeps, group: Member<Run, Answers>[]): Promise<Answers[]> {
  // a create twice in one run (one delivered twice, or one request through two instances
  // at once) is written once, and the copy answered as the first
  const firsts = group.map((m) => firstOfEach(m.input.creates))
  const payload = JSON.stringify(
    group.map((m, i) => ({
      userId: m.input.userId,
      epoch: m.input.epoch ?? null,
      creates: m.input.creates.filter((_, j) => !firsts[i]!.has(j)).map(toPayload),
    })),
  )
  const answers = await inBatch(anySignal(group.map((m) => m.signal)), () =>
    deps.db.transaction().execute(async (trx) => {
      const written = await createMany(trx, payload, deps.limits)
      const records: RecordedResponse[] = []
      const answers = group.map((m, i) => {
        const out: Answers = []
        m.input.creates.forEach((c, j) => {
          const first = firsts[i]!.get(j)
          if (first !== undefined) return out.push(sameAs(c, m.input.creates[first]!, out[first]!))
          const answer = answerOf(deps, written, c)
          out.push(answer)
          if (answer.ok && answer.value.applied && c.idem)
            records.push({
              userId: m.input.userId,
              key: c.idem.key,
              requestHash: c.idem.requestHash,
              status: answer.value.answer!.status,
              body: answer.value.answer!.body,
            })
        })
        return out
      })
      await deps.record(trx, records)
      return answers
    }),
  )
  // the relay's wake-up is not part of any batch: its work must not follow their signals
  outsideBatch(deps.committed)
  return answers
}

/** For each create whose commandKey an earlier create of the run has: that one's position. */
function firstOfEach(creates: CreateCommand[]) {
  const seen = new Map<string, number>()
  const firsts = new Map<number, number>()
  creates.forEach((c, j) => {
    const first = seen.get(c.commandKey)
    if (first === undefined) seen.set(c.commandKey, j)
    else firsts.set(j, first)
  })
  return firsts
}

/** A copy's answer: the first's, as a replay; another request under the same key, a conflict. */
function sameAs(
  c: CreateCommand,
  first: CreateCommand,
  answer: Outcome<GenerationResult>,
): Outcome<GenerationResult> {
  if (c.idem?.requestHash !== first.idem?.requestHash)
    return { ok: false, error: new IdempotencyConflict() }
  if (!answer.ok || !answer.value.answer) return answer
  return {
    ok: true,
    value: { ...answer.value, applied: false, answer: { ...answer.value.answer, replayed: true } },
  }
}

function toPayload(c: CreateCommand) {
  return {
    generationId: c.generationId,
    chargeId: Bun.randomUUIDv7(),
    mode: c.request.mode,
    request: c.request,
    pricePerItem: c.pricePerItem,
    deadlineSeconds: c.deadlineSeconds,
    chargeKey: ledgerKeys.generationCharge(c.commandKey),
    items: c.items,
    idem: c.idem ? { key: c.idem.key, hash: c.idem.requestHash } : null,
  }
}

function answerOf(
  deps: CreateWriterDeps,
  written: CreatedMany,
  c: CreateCommand,
): Outcome<GenerationResult> {
  const r: CreateRow = written.results[c.generationId]!
  if (r.ok) {
    if ('generation' in r) {
      const body = presentCreated(deps.urls, written.ahead, r.generation, r.items)
      return {
        ok: true,
        value: {
          generationId: c.generationId,
          applied: true,
          answer: { status: 202, body, replayed: false },
        },
      }
    }
    if ('replayOf' in r) return { ok: true, value: { generationId: r.replayOf, applied: false } }
    const body = r.recorded.body as { id?: string }
    return {
      ok: true,
      value: {
        generationId: String(body.id),
        applied: false,
        answer: { status: r.recorded.status, body, replayed: true },
      },
    }
  }
  return { ok: false, error: refusal(deps, r) }
}

function refusal(deps: CreateWriterDeps, r: Extract<CreateRow, { ok: false }>): Error {
  switch (r.code) {
    case 'fenced':
      return new StaleEpoch()
    case 'idempotency_conflict':
      return new IdempotencyConflict()
    case 'in_flight':
      return keyInFlight(Number(r.holdsFor))
    case 'hourly_limit':
      return new RateLimited(
        Number(r.freesIn),
        `At most ${deps.limits.imagesPerHour} images per hour`,
      )
    case 'active_limit':
      return new RateLimited(
        10,
        `At most ${deps.limits.activeGenerations} unfinished generations at once`,
      )
    case 'insufficient_credits':
      return new InsufficientCredits(Number(r.required), Number(r.available))
    default:
      throw unreachable(r)
  }
}

/** The new generation as GET shows it, from its rows as the insert returned them (JSON). */
function presentCreated(
  urls: Pick<MediaUrls, 'url'>,
  ahead: number,
  generation: Record<string, unknown>,
  items: Record<string, unknown>[],
) {
  const g = generation as unknown as Selectable<GenerationRow> & Record<string, unknown>
  const row: GenerationRow = {
    ...g,
    created_at: new Date(generation.created_at as string),
    started_at: null,
    finished_at: null,
    deadline_at: generation.deadline_at ? new Date(generation.deadline_at as string) : null,
  } as GenerationRow
  return {
    ...presentSummary(row, new Map([[row.id, Number(ahead)]])),
    items: items.map((i) => presentItem(i as unknown as ItemView, urls)),
  }
}
