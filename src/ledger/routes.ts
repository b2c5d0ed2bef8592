import { Elysia, t } from 'elysia'
import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { IdempotencyConflict, Unavailable, ValidationFailed } from '../errors'
import type { Guards } from '../http/guards'
import { contextOf } from '../http/request-context'
import { Page, PageQuery, errors } from '../http/schemas'
import { pageLimit } from '../db/keyset'
import { IdempotencyKeyHeader } from '../idempotency/header'
import type { Idempotency } from '../idempotency/idempotency'
import type { Credits } from './credits'
import { ledgerKeys } from './keys'
import {
  Balance,
  GrantBody,
  GrantResult,
  LedgerCheckSchema,
  LedgerEntrySchema,
  PaymentEvent,
} from './model'
import { checkLedger, pageEntries, readBalance, userExists } from './service'
import { verifySignature } from './webhook-signature'

export type LedgerRoutesDeps = {
  db: Kysely<DB>
  guards: Guards
  credits: Credits
  idempotency: Idempotency
  webhookSecret: string | undefined
}

async function requireUser(db: Kysely<DB>, userId: string) {
  if (!(await userExists(db, userId)))
    throw new ValidationFailed([{ path: '/userId', message: 'No such user' }])
}

export function creditRoutes(deps: LedgerRoutesDeps) {
  const { db, guards, credits } = deps
  return new Elysia({ detail: { tags: ['credits'] } })
    .use(guards)
    .get(
      '/v1/credits',
      async ({ principal }) => ({ balance: await readBalance(db, principal.userId) }),
      {
        auth: true,
        detail: { summary: 'The caller’s balance (read from Postgres, the truth)' },
        response: { 200: Balance, ...errors(401) },
      },
    )
    .get(
      '/v1/credits/ledger',
      ({ principal, query }) =>
        pageEntries(db, principal.userId, pageLimit(query.limit), query.cursor),
      {
        auth: true,
        query: t.Object(PageQuery),
        detail: { summary: 'The caller’s ledger entries, newest first (keyset pages)' },
        response: { 200: Page(LedgerEntrySchema), ...errors(401, 422) },
      },
    )
    .post(
      '/v1/webhooks/payments',
      async ({ body }) => {
        await requireUser(db, body.userId)
        await credits
          .apply(body.userId, {
            kind: 'purchase',
            amount: body.credits,
            reason: `payment ${body.id}`,
            key: ledgerKeys.purchase(body.id),
            externalId: body.id,
          })
          .catch((error: unknown) => {
            // the event id is the key here: say so, no Idempotency-Key was sent
            if (!(error instanceof IdempotencyConflict)) throw error
            throw new IdempotencyConflict('This event id was already received with another body')
          })
        return { received: true as const }
      },
      {
        // the signature is checked on the raw bytes before the body is validated or used
        transform({ request }) {
          if (!deps.webhookSecret) throw new Unavailable('Payment webhooks are not configured', 60)
          const raw = contextOf(request).rawBody
          if (raw === undefined)
            throw new ValidationFailed([{ path: '/', message: 'Expected a JSON body' }])
          verifySignature(
            request.headers.get('atelier-signature'),
            raw,
            deps.webhookSecret,
            Date.now() / 1000,
          )
        },
        body: PaymentEvent,
        detail: {
          tags: ['payments'],
          summary:
            'Payment provider webhook (Atelier-Signature: t=<unix>,v1=<hex HMAC-SHA256>); idempotent by event id',
        },
        response: {
          200: t.Object({ received: t.Literal(true) }),
          ...errors(400, 401, 409, 413, 415, 422, 503),
        },
      },
    )
}

export function creditAdminRoutes(deps: LedgerRoutesDeps) {
  const { db, credits, idempotency } = deps
  return new Elysia({ detail: { tags: ['admin'] } })
    .use(deps.guards)
    .post(
      '/credits/grants',
      ({ body, principal, request, set }) =>
        idempotency.run({ request, set, userId: principal.userId, body }, async (commandKey) => {
          await requireUser(db, body.userId)
          const { entry, balance } = await credits.apply(body.userId, {
            kind: body.kind ?? 'grant',
            amount: body.amount,
            reason: body.reason,
            key: ledgerKeys.adminGrant(principal.userId, commandKey),
          })
          set.status = 201
          return { entry, balance }
        }),
      {
        admin: true,
        body: GrantBody,
        headers: IdempotencyKeyHeader,
        detail: { summary: 'Grant credits to a user (Idempotency-Key supported)' },
        response: { 201: GrantResult, ...errors(400, 401, 403, 409, 413, 415, 422, 503) },
      },
    )
    .get('/ledger/check', () => checkLedger(db), {
      admin: true,
      detail: { summary: 'Reconciliation: balances equal entry sums and balance_after chains' },
      response: { 200: LedgerCheckSchema, ...errors(401, 403) },
    })
}
