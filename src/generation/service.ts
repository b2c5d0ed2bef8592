import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { NotFound, ValidationFailed, type ValidationIssue } from '../errors'
import { decodeCursor, encodeCursor, isTimeIdCursor, pageLimit } from '../db/keyset'
import { isHexColour } from '../media/colour'
import type { Claim } from '../idempotency/idempotency'
import type { MediaUrls } from '../media/signed-urls'
import type { GenerationCommand, GenerationResult } from './commands'
import { presentItem, presentSummary } from './present'
import { checkPrompt } from './prompt'
import * as repo from './repository'
import type { GenerationRequest, GenerationStatus } from './table'

/**
 * What the HTTP edge asks of generations. Reads go to Postgres (`readDb` for
 * the GET endpoints, `db` for the generation an accept or cancel returns);
 * every change goes through the user's actor (`ask`).
 */
export type GenerationsDeps = {
  db: Kysely<DB>
  /** Where GET /v1/generations[/:id] reads: a replica outside the primary region (default `db`). */
  readDb?: Kysely<DB>
  ask: (userId: string, command: GenerationCommand) => Promise<GenerationResult>
  urls: MediaUrls
  pricing: { perImage: number; perBackground: number }
  /** The ids among `ids` that are poses of the library. */
  existingPoses: (ids: string[]) => Promise<Set<string>>
  /** Whether `uploadId` is one of this user's uploads. */
  ownsUpload: (userId: string, uploadId: string) => Promise<boolean>
  /** Tells this instance's renderer pool that work arrived (no wait for its next poll). */
  wake: () => void
}

export type Generations = ReturnType<typeof makeGenerations>

export function makeGenerations(deps: GenerationsDeps) {
  const readDb = deps.readDb ?? deps.db

  /**
   * The create through the user's actor, with the request's Idempotency-Key
   * claim: the answer is the one the create wrote (202, or the recorded first
   * response), or, for a charge already made under the key whose record is
   * gone, that generation as it stands now.
   */
  async function accept(userId: string, body: GenerationRequest, claim: Claim) {
    const request = await normalize(deps, userId, body)
    const items = itemsOf(request)
    const pricePerItem =
      deps.pricing.perImage + (request.background ? deps.pricing.perBackground : 0)
    const result = await deps.ask(userId, {
      kind: 'create',
      generationId: Bun.randomUUIDv7(),
      request,
      items,
      pricePerItem,
      // counted from the database's now() when the row is written: one clock for deadlines
      deadlineSeconds: request.deadlineSeconds ?? null,
      commandKey: claim.commandKey,
      ...(claim.record ? { idem: claim.record } : {}),
    })
    if (result.applied) deps.wake()
    if (result.answer) return result.answer
    // from the database the actor just wrote: a replica may not have it yet
    const replay = await load(deps, deps.db, userId, result.generationId)
    return { status: 202, body: replay, replayed: false }
  }

  async function list(
    userId: string,
    query: { limit?: string; cursor?: string; status?: GenerationStatus },
  ) {
    const limit = pageLimit(query.limit)
    const after = decodeCursor(query.cursor, isTimeIdCursor)
    const rows = await repo.listGenerations(readDb, userId, {
      limit: limit + 1,
      status: query.status,
      before: after,
    })
    const page = rows.slice(0, limit)
    const positions = await repo.queuePositions(
      readDb,
      page.filter((r) => r.status === 'queued' || r.status === 'running').map((r) => r.id),
    )
    const last = page.at(-1)
    return {
      items: page.map((r) => presentSummary(r, positions)),
      nextCursor:
        rows.length > limit && last ? encodeCursor([last.created_at.toISOString(), last.id]) : null,
    }
  }

  async function cancel(userId: string, id: string) {
    await deps.ask(userId, { kind: 'cancel', generationId: id, reason: 'user' })
    return load(deps, deps.db, userId, id)
  }

  const get = (userId: string, id: string) => load(deps, readDb, userId, id)
  return { accept, get, list, cancel }
}

/** One generation with its items, from `db`; 404 for anyone else's. */
async function load(deps: GenerationsDeps, db: Kysely<DB>, userId: string, id: string) {
  const [found, positions] = await Promise.all([
    repo.findGenerationWithItems(db, id, userId),
    repo.queuePositions(db, [id]),
  ])
  if (!found) throw new NotFound('Generation')
  const { items, ...row } = found
  return {
    ...presentSummary(row, positions),
    // a renderer claims items before the user's actor records that their generation started:
    // in between, the generation is already running
    ...(row.status === 'queued' && items.some((i) => i.status !== 'queued')
      ? { status: 'running' as const }
      : {}),
    items: items.map((i) => presentItem(i, deps.urls)),
  }
}

/** The request as it is stored: checks the schema cannot make (poses, the upload, colours, prompts). */
async function normalize(
  deps: GenerationsDeps,
  userId: string,
  body: GenerationRequest,
): Promise<GenerationRequest> {
  const issues: ValidationIssue[] = []
  const out: GenerationRequest = { ...body }
  if (body.mode === 'library') {
    if (!body.poseIds) issues.push({ path: '/poseIds', message: 'Required in library mode' })
    if (body.prompt !== undefined) issues.push({ path: '/prompt', message: 'Only in text mode' })
    if (body.poseIds) {
      const found = await deps.existingPoses(body.poseIds)
      body.poseIds.forEach((id, i) => {
        if (!found.has(id)) issues.push({ path: `/poseIds/${i}`, message: 'No such pose' })
      })
    }
  } else {
    if (body.poseIds !== undefined)
      issues.push({ path: '/poseIds', message: 'Only in library mode' })
    if (body.prompt === undefined)
      issues.push({ path: '/prompt', message: 'Required in text mode' })
    else {
      const checked = checkPrompt(body.prompt, '/prompt')
      issues.push(...checked.issues)
      out.prompt = checked.prompt
    }
  }
  // someone else's upload is "no such upload" too: no existence leak
  if (body.uploadId !== undefined && !(await deps.ownsUpload(userId, body.uploadId)))
    issues.push({ path: '/uploadId', message: 'No such upload' })
  if (body.background?.mode === 'color' && !isHexColour(body.background.value))
    issues.push({ path: '/background/value', message: 'Expected a colour like #aabbcc' })
  if (body.background?.mode === 'prompt') {
    const checked = checkPrompt(body.background.value, '/background/value')
    issues.push(...checked.issues)
    out.background = { mode: 'prompt', value: checked.prompt }
  }
  if (issues.length > 0) throw new ValidationFailed(issues)
  return out
}

/** One work item per pose (one in text mode) and variation. */
function itemsOf(request: GenerationRequest): repo.NewItem[] {
  const variations = Array.from({ length: request.variations }, (_, v) => v)
  const targets = request.mode === 'library' ? request.poseIds! : [null]
  return targets.flatMap((poseId) =>
    variations.map((v) => ({
      id: Bun.randomUUIDv7(),
      key: `${poseId ?? 'text'}-v${v}`,
      poseId,
      variation: v,
    })),
  )
}
